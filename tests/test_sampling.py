"""Stratified top-K sampling (paper Algorithm 1): crafted cases, a literal reference implementation, files and CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wm_hub.bootstrap.sampling import (
    SamplingConfig,
    sample_annotations,
    score_statistics,
    stratified_top_k,
    stratified_top_k_indices,
)
from wm_hub.cli import main


def _rows(spec: dict[str, list[float]], prefix: str = "") -> list[dict]:
    """``{class: [scores]}`` -> rows with ids ``<prefix><class><n>`` (n from 1, in the order given)."""
    return [
        {"id": f"{prefix}{name}{n}", "score": score, "action_class": name}
        for name, scores in spec.items()
        for n, score in enumerate(scores, start=1)
    ]


def _ids(rows: list[dict]) -> list:
    return [row["id"] for row in rows]


def _id_key(value):
    return (0, value) if isinstance(value, int) else (1, value)


def reference_sampling(rows: list[dict], k: int) -> list[dict]:
    """Algorithm 1 transcribed line by line (with the documented class order and tie rule), quadratic and plain."""
    remaining = sorted(rows, key=lambda row: (-row["score"], _id_key(row["id"])))  # 1: sort X descending by score
    classes = sorted(
        {row["action_class"] for row in rows},
        key=lambda name: (-max(row["score"] for row in rows if row["action_class"] == name), name),
    )
    selected = []  # 2: S <- {}
    while len(selected) < k:  # 3
        taken_this_round = 0
        for name in classes:  # 4: round-robin over classes
            top = next((row for row in remaining if row["action_class"] == name), None)  # 5
            if top is not None:  # 6
                selected.append(top)  # 7
                remaining.remove(top)  # 8
                taken_this_round += 1
            if len(selected) == k:  # 11
                break
        if taken_this_round == 0:  # nothing left in any class (the paper's loop assumes K <= |X|)
            break
    return selected


def test_round_robin_order_of_classes_best_class_first():
    rows = _rows({"c": [0.7, 0.1, -1.0], "a": [0.9, 0.2, -2.0], "b": [0.8, 0.3, -3.0]})
    picked = stratified_top_k(rows, 7)
    # Classes keep their order (a, b, c: best scores 0.9, 0.8, 0.7) in every round, even where b2 > a2.
    assert _ids(picked) == ["a1", "b1", "c1", "a2", "b2", "c2", "a3"]


def test_best_first_inside_each_class_whatever_the_input_order():
    rows = _rows({"a": [-5.0, 3.0, -1.0, 2.0], "b": [0.0, -0.5, 1.0, -7.0]})
    random.Random(0).shuffle(rows)
    picked = stratified_top_k(rows, 6)
    assert _ids(picked) == ["a2", "b3", "a4", "b1", "a3", "b2"]
    for name in ("a", "b"):
        scores = [row["score"] for row in picked if row["action_class"] == name]
        assert scores == sorted(scores, reverse=True)


def test_k_larger_than_the_data_returns_every_row_round_by_round():
    rows = _rows({"a": [1.0, 0.0], "b": [2.0]})
    picked = stratified_top_k(rows, 100)
    assert _ids(picked) == ["b1", "a1", "a2"]
    assert stratified_top_k(rows, 0) == []
    assert stratified_top_k([], 5) == []


def test_classes_that_run_out_are_passed_over_and_the_budget_goes_to_the_others():
    rows = _rows({"big": [float(-i) for i in range(10)], "small": [5.0], "mid": [4.0, 3.0, 2.0]})
    picked = stratified_top_k(rows, 9)
    assert _ids(picked) == ["small1", "mid1", "big1", "mid2", "big2", "mid3", "big3", "big4", "big5"]
    counts = {name: sum(row["action_class"] == name for row in picked) for name in ("big", "small", "mid")}
    assert counts == {"big": 5, "small": 1, "mid": 3}


def test_ties_broken_by_id_and_equal_best_classes_by_name():
    rows = [
        {"id": "x2", "score": 1.0, "action_class": "zeta"},
        {"id": "x1", "score": 1.0, "action_class": "zeta"},
        {"id": "y9", "score": 1.0, "action_class": "alpha"},
        {"id": "y3", "score": 0.5, "action_class": "alpha"},
    ]
    assert _ids(stratified_top_k(rows, 4)) == ["y9", "x1", "y3", "x2"]  # alpha before zeta: same best score
    numeric = [{"id": i, "score": 0.0, "action_class": "a"} for i in (10, 2, 33)] + [
        {"id": "1", "score": 0.0, "action_class": "a"}
    ]
    assert _ids(stratified_top_k(numeric, 4)) == [2, 10, 33, "1"]  # integers numerically, before strings


def test_custom_fields_and_rows_returned_unchanged():
    rows = [
        {"key": "p", "ll": -1.0, "verb": "open", "extra": [1, 2]},
        {"key": "q", "ll": -0.5, "verb": "close", "extra": None},
    ]
    picked = stratified_top_k(rows, 1, score_field="ll", class_field="verb", id_field="key")
    assert picked == [rows[1]] and picked[0] is rows[1]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "b", "action_class": "a"}, "row 1: no 'score' field"),
        ({"id": "b", "score": float("nan"), "action_class": "a"}, "row 1: 'score' is nan, not finite"),
        ({"id": "b", "score": "high", "action_class": "a"}, "row 1: 'score' is 'high', not a number"),
        ({"id": "b", "score": 1.0}, "row 1: no 'action_class' field"),
        ({"id": "b", "score": 1.0, "action_class": ""}, "row 1: 'action_class' is '', not a non-empty string"),
        ({"id": "a", "score": 1.0, "action_class": "a"}, "row 1: duplicate id 'a' (first at row 0)"),
    ],
)
def test_library_rejects_bad_rows(row, message):
    with pytest.raises(ValueError) as error:
        stratified_top_k([{"id": "a", "score": 0.0, "action_class": "a"}, row], 2)
    assert str(error.value) == message


def test_negative_k_is_an_error():
    with pytest.raises(ValueError, match="non-negative"):
        stratified_top_k([], -1)
    with pytest.raises(ValueError, match="positive integer"):
        SamplingConfig(k=-3)


def test_k_0_keeps_nothing_in_the_library_and_is_refused_by_the_command(shards, tmp_path):
    assert stratified_top_k([{"id": "a", "score": 0.0, "action_class": "a"}], 0) == []
    folder, _ = shards
    out = tmp_path / "o.jsonl"
    with pytest.raises(SystemExit, match="k must be a positive integer .*got 0"):
        main(["sample", "--input", str(folder), "--k", "0", "--out", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("seed", range(8))
def test_equals_the_reference_implementation_on_random_data(seed):
    rng = random.Random(seed)
    num_classes = rng.randint(1, 9)
    sizes = [rng.choice([1, 2, rng.randint(1, 40)]) for _ in range(num_classes)]
    rows = []
    for c, size in enumerate(sizes):
        for _ in range(size):
            # Few distinct scores, so ties inside and across classes happen; ids mix integers and strings.
            score = rng.choice([-3.0, -2.5, -1.0, 0.0]) if seed % 2 else rng.gauss(-2.0, 1.0)
            row_id = len(rows) if rng.random() < 0.3 else f"r{len(rows)}"
            rows.append({"id": row_id, "score": score, "action_class": f"class{c}"})
    rng.shuffle(rows)
    for k in {0, 1, num_classes, rng.randint(0, len(rows)), len(rows), len(rows) + 5}:
        expected = reference_sampling(rows, k)
        assert _ids(stratified_top_k(rows, k)) == _ids(expected), (seed, k)
        assert len(expected) == min(k, len(rows))


def best_names(rows: list[dict]) -> list[str]:
    return sorted({row["action_class"] for row in rows})


def _write_jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(row) for row in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def shards(tmp_path):
    """A folder of two annotation shards (as written by annotation: score_sum and score_mean) plus a stray file."""
    rng = random.Random(7)
    folder = tmp_path / "annotated"
    folder.mkdir()
    rows = []
    for i in range(60):
        name = ["move", "add", "remove"][i % 3] if i < 57 else "rare"
        mean = round(rng.gauss(-2.0, 0.7), 4)
        rows.append(
            {
                "id": f"video-{i:03d}",
                "source": f"frames/{i}-a.png",
                "target": f"frames/{i}-b.png",
                "action": f"déplacer l'objet {i}",
                "score_sum": round(mean * rng.randint(3, 9), 4),
                "score_mean": mean,
                "action_class": name,
                "frames": [i, i + 3],
            }
        )
    _write_jsonl(folder / "annotations-00000.jsonl", rows[:30])
    (folder / "annotations-00001.jsonl").write_text(
        "\n".join(json.dumps(row, ensure_ascii=False) for row in rows[30:]) + "\n\n", encoding="utf-8"
    )
    (folder / "annotations-00002.jsonl.tmp").write_text("not json, being written\n")
    return folder, rows


def test_cli_end_to_end_files_report_and_plot(shards, tmp_path, capsys):
    folder, rows = shards
    out = tmp_path / "sampled" / "top.jsonl"
    assert main(["sample", "--input", str(folder), "--k", "20", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows_read"] == 60 and summary["rows_selected"] == 20 and summary["score_field"] == "score_mean"

    input_lines = {}
    for shard in sorted(folder.glob("*.jsonl")):
        for line in shard.read_text(encoding="utf-8").splitlines():
            if line:
                input_lines[json.loads(line)["id"]] = line
    out_lines = out.read_text(encoding="utf-8").splitlines()
    picked = [json.loads(line) for line in out_lines]
    assert all(line == input_lines[row["id"]] for line, row in zip(out_lines, picked))  # original lines, unchanged
    expected = stratified_top_k(rows, 20, score_field="score_mean")
    assert _ids(picked) == _ids(expected)
    assert sorted(path.name for path in out.parent.iterdir()) == ["top.jsonl", "top.report.json", "top.scores.png"]

    report = json.loads((tmp_path / "sampled" / "top.report.json").read_text())
    assert report["inputs"] == [str(folder / "annotations-00000.jsonl"), str(folder / "annotations-00001.jsonl")]
    assert report["counts"]["before"] == {"move": 19, "add": 19, "remove": 19, "rare": 3}
    best = {name: max(row["score_mean"] for row in rows if row["action_class"] == name) for name in best_names(rows)}
    assert report["class_order"] == sorted(best, key=lambda name: (-best[name], name))
    # 3 full rounds (rare runs out), then 8 rows over the 3 big classes: 6, 6, 5 in round-robin order.
    big = [name for name in report["class_order"] if name != "rare"]
    assert report["counts"]["after"] == {big[0]: 6, big[1]: 6, big[2]: 5, "rare": 3}
    move_after = [row["score_mean"] for row in picked if row["action_class"] == "move"]
    stats = report["scores"]["after"]["per_class"]["move"]
    assert stats["count"] == len(move_after)
    assert stats["mean"] == pytest.approx(np.mean(move_after)) and stats["std"] == pytest.approx(np.std(move_after))
    assert stats["min"] == min(move_after) and stats["max"] == max(move_after)
    assert stats["quantiles"]["0.5"] == pytest.approx(np.median(move_after))
    everything = [row["score_mean"] for row in rows]
    assert report["scores"]["before"]["all"]["mean"] == pytest.approx(np.mean(everything))
    assert report["scores"]["before"]["all"]["quantiles"]["0.05"] == pytest.approx(np.quantile(everything, 0.05))
    assert report["scores"]["after"]["all"]["mean"] > report["scores"]["before"]["all"]["mean"]

    with Image.open(tmp_path / "sampled" / "top.scores.png") as plot:
        assert plot.format == "PNG" and plot.width >= 400 and plot.height >= 400
        assert len(np.unique(np.asarray(plot.convert("L")))) > 10  # something is drawn


def test_score_field_choice_and_plain_score_column(shards, tmp_path):
    folder, rows = shards
    report = sample_annotations(folder, tmp_path / "sum.jsonl", SamplingConfig(k=10, score_field="sum"))
    assert report.score_field == "score_sum"
    picked = [json.loads(line) for line in (tmp_path / "sum.jsonl").read_text().splitlines()]
    assert _ids(picked) == _ids(stratified_top_k(rows, 10, score_field="score_sum"))
    assert _ids(picked) != _ids(stratified_top_k(rows, 10, score_field="score_mean"))

    plain = tmp_path / "plain.jsonl"
    _write_jsonl(
        plain, [{"id": row["id"], "score": row["score_sum"], "action_class": row["action_class"]} for row in rows]
    )
    report = sample_annotations(plain, tmp_path / "plain-out.jsonl", SamplingConfig(k=10))
    assert report.score_field == "score" and report.inputs == [str(plain)]
    assert _ids([json.loads(line) for line in (tmp_path / "plain-out.jsonl").read_text().splitlines()]) == _ids(picked)


def test_output_inside_the_input_folder_is_not_read_back(shards):
    folder, _ = shards
    first = sample_annotations(folder, folder / "sampled.jsonl", SamplingConfig(k=5))
    again = sample_annotations(folder, folder / "sampled.jsonl", SamplingConfig(k=5))  # no duplicate-id error
    assert first.rows_read == again.rows_read == 60
    assert str(folder / "sampled.jsonl") not in again.inputs


def test_an_annotation_folder_is_read_as_its_shards_only(shards, tmp_path):
    """Two samples written into the annotation folder: the second reads the 60 annotated rows, not the first sample."""
    folder, _ = shards
    sample_annotations(folder, folder / "top5.jsonl", SamplingConfig(k=5))
    report = sample_annotations(folder, folder / "top9.jsonl", SamplingConfig(k=9))
    assert report.rows_read == 60 and report.rows_selected == 9
    assert sorted(Path(name).name for name in report.inputs) == ["annotations-00000.jsonl", "annotations-00001.jsonl"]
    plain = tmp_path / "plain"
    plain.mkdir()
    _write_jsonl(plain / "rows.jsonl", [{"id": "a", "score": 1.0, "action_class": "x"}])
    assert sample_annotations(plain, tmp_path / "out.jsonl", SamplingConfig(k=1)).rows_selected == 1


def _bad_folder(tmp_path, bad_line: str):
    folder = tmp_path / "bad"
    folder.mkdir(parents=True)
    good = [{"id": f"g{i}", "score_mean": -1.0 * i, "action_class": "a"} for i in range(3)]
    _write_jsonl(folder / "annotations-00000.jsonl", good)
    _write_jsonl(
        folder / "annotations-00001.jsonl",
        [{"id": "h0", "score_mean": -0.5, "action_class": "b"}],
        extra_lines=["", bad_line],
    )
    return folder, folder / "annotations-00001.jsonl"


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"id": "h1", "action_class": "b"}', "no 'score_mean' field"),
        ('{"id": "h1", "score_mean": NaN, "action_class": "b"}', "'score_mean' is nan, not finite"),
        ('{"id": "h1", "score_mean": -Infinity, "action_class": "b"}', "'score_mean' is -inf, not finite"),
        ('{"id": "h1", "score_mean": null, "action_class": "b"}', "'score_mean' is None, not a number"),
        ('{"id": "h1", "score_mean": -1.0}', "no 'action_class' field"),
        ('{"id": "h1", "score_mean": -1.0, "action_class": null}', "'action_class' is None, not a non-empty string"),
        ('{"score_mean": -1.0, "action_class": "b"}', "no 'id' field"),
        ('["h1", -1.0]', "not a JSON object (list)"),
    ],
)
def test_bad_rows_name_file_and_line_or_are_skipped_and_reported(tmp_path, capsys, bad_line, reason):
    folder, shard = _bad_folder(tmp_path, bad_line)
    with pytest.raises(SystemExit) as error:
        main(["sample", "--input", str(folder), "--k", "2", "--out", str(tmp_path / "out.jsonl")])
    assert str(error.value).startswith(f"error: {shard}:3: {reason}")  # line 2 is blank
    assert not (tmp_path / "out.jsonl").exists()

    argv = ["sample", "--input", str(folder), "--k", "9", "--out", str(tmp_path / "out.jsonl"), "--skip-invalid"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["rows_skipped"] == 1
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["skipped"] == [{"location": f"{shard}:3", "reason": reason}]
    assert report["rows_read"] == report["rows_selected"] == 4


def test_unparsable_lines_and_duplicate_ids_always_fail(tmp_path):
    folder, shard = _bad_folder(tmp_path, '{"id": "h1", "score_mean": -1.0, "action_class": "b"')
    with pytest.raises(ValueError, match=rf"^{shard}:3: not valid JSON"):
        sample_annotations(folder, tmp_path / "o.jsonl", SamplingConfig(k=2, skip_invalid=True))
    folder, shard = _bad_folder(tmp_path / "dup", '{"id": "g1", "score_mean": 0.0, "action_class": "b"}')
    first = folder / "annotations-00000.jsonl"
    with pytest.raises(ValueError) as error:
        sample_annotations(folder, tmp_path / "o.jsonl", SamplingConfig(k=2, skip_invalid=True))
    assert str(error.value) == f"{shard}:3: duplicate id 'g1' (first at {first}:2)"


def test_missing_input_and_empty_input_are_clear_errors(tmp_path):
    with pytest.raises(SystemExit, match="no such file or folder"):
        main(["sample", "--input", str(tmp_path / "nothing"), "--k", "2", "--out", str(tmp_path / "o.jsonl")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"no \*\.jsonl file"):
        main(["sample", "--input", str(tmp_path / "empty"), "--k", "2", "--out", str(tmp_path / "o.jsonl")])
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    with pytest.raises(SystemExit, match="no row to sample"):
        main(["sample", "--input", str(blank), "--k", "2", "--out", str(tmp_path / "o.jsonl")])


def test_output_that_is_the_input_is_refused_and_the_input_kept(shards, tmp_path):
    folder, _ = shards
    single = tmp_path / "x.jsonl"
    single.write_text((folder / "annotations-00000.jsonl").read_text())
    before = single.read_bytes()
    with pytest.raises(SystemExit, match="would overwrite the input .*x.jsonl"):
        main(["sample", "--input", str(single), "--k", "5", "--out", str(single)])
    assert single.read_bytes() == before
    shard = folder / "annotations-00001.jsonl"
    before = shard.read_bytes()
    with pytest.raises(ValueError, match="would overwrite the input"):
        sample_annotations(folder, shard, SamplingConfig(k=5))  # a shard of the folder being read
    assert shard.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("x")) == ["x.jsonl"]


def test_score_statistics_values():
    stats = score_statistics([1.0, 2.0, 3.0, 4.0])
    assert stats["count"] == 4 and stats["mean"] == 2.5 and stats["std"] == pytest.approx(np.sqrt(1.25))
    assert stats["min"] == 1.0 and stats["max"] == 4.0
    assert stats["quantiles"]["0.5"] == 2.5 and stats["quantiles"]["0.25"] == 1.75
    assert score_statistics([])["count"] == 0 and score_statistics([])["mean"] is None


def test_indices_on_dataset_columns_match_the_row_api():
    import datasets

    rng = random.Random(3)
    rows = [{"id": f"p{i}", "score": rng.gauss(0, 1), "action_class": f"c{i % 4}", "x": i} for i in range(30)]
    table = datasets.Dataset.from_list(rows)
    picked, class_order = stratified_top_k_indices(table["score"], table["action_class"], table["id"], 11)
    assert table.select(picked)["id"] == _ids(stratified_top_k(rows, 11))
    assert sorted(class_order) == ["c0", "c1", "c2", "c3"]
    with pytest.raises(ValueError, match="differ in length: 2, 1, 2"):
        stratified_top_k_indices([0.0, 1.0], ["a"], ["x", "y"], 1)
    with pytest.raises(ValueError, match="row 1: score inf is not a finite number"):
        stratified_top_k_indices([0.0, float("inf")], ["a", "a"], ["x", "y"], 1)
    with pytest.raises(ValueError, match="row 0: score None is not a finite number"):
        stratified_top_k_indices([None, 1.0], ["a", "a"], ["x", "y"], 1)


def test_rows_whose_idm_wrote_no_action_are_left_out_counted_not_ranked_first(tmp_path, capsys):
    # Blank actions form their own class, "(none)", which the round robin visits first here (its best score, eos
    # alone, is the highest): Algorithm 1 would keep one at any K
    rows = [
        {"id": "a1", "score_mean": -0.01, "action_class": "(none)", "action": ""},
        {"id": "a2", "score_mean": -0.02, "action_class": "(none)", "action": "  "},
        {"id": "b1", "score_mean": -0.5, "action_class": "move", "action": "move the red square left"},
        {"id": "b2", "score_mean": -0.9, "action_class": "move", "action": "move the blue circle up"},
        {"id": "c1", "score_mean": -0.7, "action_class": "swap"},  # no action field: kept
    ]
    source = tmp_path / "annotated.jsonl"
    _write_jsonl(source, rows)
    out = tmp_path / "top.jsonl"
    assert main(["sample", "--input", str(source), "--k", "2", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["blank_actions_left_out"] == 2
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["b1", "c1"]
    report = json.loads(out.with_name("top.report.json").read_text())
    assert (report["blank_actions"], report["rows_read"], report["counts"]["before"]) == (
        2,
        3,
        {"move": 2, "swap": 1},
    )

    kept = sample_annotations(source, tmp_path / "all.jsonl", SamplingConfig(k=2, keep_blank_actions=True))
    assert (kept.blank_actions, kept.rows_read) == (0, 5)
    assert [json.loads(line)["id"] for line in (tmp_path / "all.jsonl").read_text().splitlines()] == ["a1", "b1"]

    blank = tmp_path / "blank.jsonl"
    _write_jsonl(blank, rows[:2])
    with pytest.raises(SystemExit) as error:
        main(["sample", "--input", str(blank), "--k", "2", "--out", str(tmp_path / "none.jsonl")])
    assert str(error.value) == (
        f"error: {blank}: no row to sample (2 rows with a blank 'action' left out: the IDM wrote nothing; "
        "keep_blank_actions / --keep-blank-actions samples them)"
    )
    assert not (tmp_path / "none.jsonl").exists()


def test_an_output_whose_report_or_plot_is_an_input_or_a_symlink_loop_is_refused(shards, tmp_path):
    folder, _ = shards
    single = tmp_path / "x.report.json"  # the report of --out x.jsonl
    single.write_text((folder / "annotations-00000.jsonl").read_text())
    before = single.read_bytes()
    with pytest.raises(SystemExit, match="would write its report over the input .*x.report.json"):
        main(["sample", "--input", str(single), "--k", "5", "--out", str(tmp_path / "x.jsonl")])
    assert single.read_bytes() == before and not (tmp_path / "x.jsonl").exists()
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ValueError, match="--out .*loop: cannot write"):
        sample_annotations(folder, loop, SamplingConfig(k=5))


def test_non_utf8_lines_and_non_string_actions_are_named(tmp_path):
    good = '{"id": "a", "score_mean": -1, "action_class": "x", "action": "go"}\n'
    path = tmp_path / "rows.jsonl"
    path.write_bytes(good.encode() + b'{"id": "b", "score_mean": -1, "action_class": "x\xff", "action": "go"}\n')
    with pytest.raises(ValueError, match="rows.jsonl:2: not UTF-8 text"):
        sample_annotations(path, tmp_path / "out.jsonl", SamplingConfig(k=5))
    path.write_text(good + '{"id": "b", "score_mean": -1, "action_class": "x", "action": 5}\n')
    with pytest.raises(ValueError, match="rows.jsonl:2: action must be a string, got 5"):
        sample_annotations(path, tmp_path / "out.jsonl", SamplingConfig(k=5))
    # null is what an IDM that wrote nothing leaves: counted with the blank actions, not sampled
    path.write_text(good + '{"id": "b", "score_mean": -1, "action_class": "x", "action": null}\n')
    report = sample_annotations(path, tmp_path / "out.jsonl", SamplingConfig(k=5))
    assert report.blank_actions == 1 and report.rows_selected == 1


@pytest.mark.parametrize("field", ["class_field", "id_field", "action_field"])
def test_a_field_setting_that_names_no_field_is_refused(field):
    for value in (None, " "):
        with pytest.raises(ValueError, match=f"{field} must name a row field, got {value!r}"):
            SamplingConfig(k=1, **{field: value})

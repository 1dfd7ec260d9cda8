"""Human evaluation: study building, the answers store, the Flask app (test client) and scoring (Table 5)."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import BENCH_MINI
from human_eval_study import MODELS, SUBSETS, build_args, write_aurora_checkout, write_predictions
from PIL import Image
from scipy.stats import wilcoxon
from shared_data import require

from wm_hub.cli import main
from wm_hub.human_eval.app import create_app
from wm_hub.human_eval.scoring import MARKER, ScoreConfig, markdown_report, read_answers, score_answers, score_study
from wm_hub.human_eval.storage import Answer, AnswerStore
from wm_hub.human_eval.study import load_key, load_study


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    root = tmp_path_factory.mktemp("aurora")
    write_aurora_checkout(root)
    return root, write_predictions(root, tmp_path_factory.mktemp("predictions"))


@pytest.fixture(scope="module")
def study(checkout, tmp_path_factory):
    root, predictions = checkout
    out = tmp_path_factory.mktemp("studies") / "study"
    assert main(build_args(root, predictions, out)) == 0
    return out


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_build_samples_per_subset_and_anonymises(study, checkout):
    root, predictions = checkout
    loaded, key = load_study(study), load_key(study)
    assert len(loaded.rows) == 10 and loaded.num_outputs == 4
    assert sorted(row.subset for row in loaded.rows) == sorted(SUBSETS * 2)
    assert [row.row for row in loaded.rows] == [f"r{n:03d}" for n in range(1, 11)]
    # what annotators see names no model and no prediction folder; the key does
    text = (study / "study.json").read_text()
    assert not any(model in text for model in MODELS) and "predictions-" not in text
    assert key.models == list(MODELS) and key.subsets == list(SUBSETS)
    assert all(sorted(order) == sorted(MODELS) for order in key.orders.values())
    assert len({tuple(order) for order in key.orders.values()}) > 1, "model order must change between rows"
    rows = json.loads((root / "test.json").read_text())
    for row in loaded.rows:
        index = int(row.id.split("/")[1])
        assert rows[index]["task"] == row.subset and rows[index]["instruction"] == row.instruction
        assert (study / row.input).read_bytes() == (root / rows[index]["input"]).read_bytes()
        for position, output in enumerate(row.outputs, start=1):
            model = key.orders[row.row][position - 1]
            assert output == f"images/{row.row}/output-{position}.png"
            assert np.array_equal(_pixels(study / output), _pixels(predictions[model] / f"{row.id}.png"))


def test_build_is_seeded(study, checkout, tmp_path):
    root, predictions = checkout
    assert main(build_args(root, predictions, tmp_path / "same")) == 0
    assert (tmp_path / "same/study.json").read_text() == (study / "study.json").read_text()
    assert load_key(tmp_path / "same").orders == load_key(study).orders
    assert main(build_args(root, predictions, tmp_path / "other", seed=4)) == 0
    assert load_key(tmp_path / "other").orders != load_key(study).orders


def test_build_names_missing_predictions_and_refuses_a_used_folder(study, checkout, tmp_path):
    root, predictions = checkout
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in predictions["beta"].rglob("*.png"):
        if path.parent.name != "kubric":
            target = broken / path.relative_to(predictions["beta"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    args = build_args(root, {**predictions, "beta": broken}, tmp_path / "study")
    with pytest.raises(SystemExit, match=r"2 prediction image\(s\) missing") as error:
        main(args)
    assert str(error.value).count("model beta, row kubric/") == 2 and "alpha" not in str(error.value)
    assert not (tmp_path / "study").exists()
    with pytest.raises(SystemExit, match="exists and is not an empty folder"):
        main(build_args(root, predictions, study))
    with pytest.raises(SystemExit, match="needs that many usable rows per subset: magicbrush has 3"):
        main(build_args(root, predictions, tmp_path / "big", per_subset=4))


def test_build_on_real_aurora_bench(tmp_path):
    require(BENCH_MINI)
    rows = json.loads((BENCH_MINI / "test.json").read_text())
    predictions = {}
    for model, size in (("one", 96), ("two", 64)):
        for index, row in enumerate(rows):
            if row["task"] in ("ag", "kubric") and row.get("output"):
                path = tmp_path / model / row["task"] / f"{index}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (size, size), (index, 0, 0)).save(path)
        predictions[model] = tmp_path / model
    out = tmp_path / "study"
    args = build_args(BENCH_MINI, predictions, out, per_subset=3) + ["--subsets", "ag,kubric"]
    assert main(args) == 0
    loaded = load_study(out)
    assert sorted(row.subset for row in loaded.rows) == ["ag"] * 3 + ["kubric"] * 3
    for row in loaded.rows:
        source = BENCH_MINI / rows[int(row.id.split("/")[1])]["input"]
        assert row.input.endswith(source.suffix.lower()) and (out / row.input).read_bytes() == source.read_bytes()
        for output in row.outputs:
            with Image.open(out / output) as image:
                assert image.format == "PNG"


def test_store_counts_each_annotator_row_once_under_concurrency(tmp_path):
    store = AnswerStore(tmp_path / "answers.sqlite", "study-a")
    for name in ("ann", "bob"):
        store.add_annotator(name)
    results: list[bool] = []
    lock = threading.Lock()

    def submit(answer: Answer) -> None:
        stored = AnswerStore(tmp_path / "answers.sqlite", "study-a").record(answer)
        with lock:
            results.append(stored)

    threads = [threading.Thread(target=submit, args=(Answer("ann", "r001", 1 + i % 2, 3),)) for i in range(6)]
    threads += [threading.Thread(target=submit, args=(Answer("bob", f"r{n:03d}", 2, 4),)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.count(True) == 7 and results.count(False) == 5
    answers = store.answers()
    assert len([a for a in answers if a.annotator == "ann"]) == 1
    assert store.answered("bob") == {f"r{n:03d}" for n in range(1, 7)}
    with pytest.raises(ValueError, match="must differ"):
        store.record(Answer("ann", "r002", 2, 2))
    with pytest.raises(ValueError, match="FOREIGN KEY"):
        store.record(Answer("nobody", "r002", 1, 2))
    with sqlite3.connect(tmp_path / "answers.sqlite") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute("INSERT INTO answers VALUES (99, 'bob', 'r009', 3, 3, 'now')")
    with pytest.raises(ValueError, match="belongs to another study"):
        AnswerStore(tmp_path / "answers.sqlite", "study-b")
    with pytest.raises(ValueError, match="annotator name"):
        store.add_annotator("../etc")


def test_app_forms(study, tmp_path):
    app = create_app(study, db_path=tmp_path / "answers.sqlite")
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "Criterion 1: Realism" in page and "Criterion 3: Over-editing" in page and "prioritise" in page
    response = client.post("/start", data={"name": "bad name!"})
    assert response.status_code == 400 and "annotator name" in response.get_data(as_text=True)
    response = client.post("/start", data={"name": "ann"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/a/ann")
    page = client.get("/a/ann").get_data(as_text=True)
    first = load_study(study).rows[0]
    assert "Row 1 of 10" in page and first.instruction in page and "Model 4" in page
    response = client.post(f"/a/ann/{first.row}", data={"best": "2", "worst": "2"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "must differ" in page
    assert re.search(r'id="best-2"\s+checked', page) and re.search(r'id="worst-2"\s+checked', page)  # kept
    assert not re.search(r'id="best-1"\s+checked', page)
    response = client.post(f"/a/ann/{first.row}", data={"best": "2"})
    assert response.status_code == 400 and "Please select the WORST model" in response.get_data(as_text=True)
    assert client.post(f"/a/ann/{first.row}", data={"best": "2", "worst": "9"}).status_code == 400
    response = client.post(f"/a/ann/{first.row}", data={"best": "2", "worst": "3"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/a/ann")
    response = client.post(f"/a/ann/{first.row}", data={"best": "1", "worst": "4"})  # double submit
    assert response.status_code == 303 and "note=duplicate" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Row 2 of 10" in page and "first answer was kept" in page
    assert app.config["STORE"].answers() == [Answer("ann", first.row, 2, 3)]
    assert client.get("/a/nobody").status_code == 404
    assert client.post("/a/ann/r999", data={"best": "1", "worst": "2"}).status_code == 404
    image = client.get(f"/{first.outputs[0]}")
    assert image.status_code == 200 and image.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/images/../key.json").status_code == 404
    assert client.get("/health").get_json() == {"status": "ok", "rows": 10, "answers": 1}


# A crafted study: 3 models, rows r1, r2 (subset s1) and r3 (s2); orders give the model behind each position.
_KEY = {
    "models": ["X", "Y", "Z"],
    "subsets": ["s1", "s2"],
    "orders": {"r1": ["X", "Y", "Z"], "r2": ["Z", "X", "Y"], "r3": ["Y", "Z", "X"]},
    "row_subsets": {"r1": "s1", "r2": "s1", "r3": "s2"},
    "row_ids": {"r1": "s1/0", "r2": "s1/1", "r3": "s2/2"},
    "seed": 0,
    "predictions": {},
    "data_dir": "",
}
_ANSWERS = [  # (annotator, row, best, worst) -> points X, Y, Z
    ("a", "r1", 1, 3),  # X +1, Z -1
    ("a", "r2", 2, 1),  # X +1, Z -1
    ("a", "r3", 3, 1),  # X +1, Y -1
    ("b", "r1", 2, 3),  # Y +1, Z -1
    ("b", "r2", 2, 3),  # X +1, Y -1
    ("b", "r3", 2, 1),  # Z +1, Y -1
    ("c", "r1", 1, 2),  # X +1, Y -1
]


@pytest.fixture
def crafted(tmp_path):
    study = tmp_path / "crafted"
    study.mkdir()
    rows = [
        {"row": row, "id": _KEY["row_ids"][row], "subset": subset, "instruction": "i", "input": "x", "outputs": []}
        for row, subset in _KEY["row_subsets"].items()
    ]
    for row in rows:
        row["outputs"] = ["a.png", "b.png", "c.png"]
    (study / "study.json").write_text(json.dumps({"version": 1, "title": "t", "rows": rows}))
    (study / "key.json").write_text(json.dumps(_KEY))
    answers = study / "answers.jsonl"
    answers.write_text(
        "\n".join(json.dumps(dict(zip(("annotator", "row", "best", "worst"), a))) for a in _ANSWERS) + "\n"
    )
    return study, answers


def test_score_equals_hand_computation(crafted, capsys):
    study, answers = crafted
    assert main(["human-eval", "score", str(study), "--answers", str(answers)]) == 0
    assert "# Human evaluation" in capsys.readouterr().out
    scores = json.loads((study / "scores.json").read_text())
    assert scores["reference"] == "X"
    s1, s2, overall = scores["subsets"]["s1"], scores["subsets"]["s2"], scores["overall"]
    assert (s1["n"], s1["rows"], s2["n"], overall["n"], overall["rows"]) == (5, 2, 2, 7, 3)
    assert s1["scores"] == pytest.approx({"X": 4 / 5, "Y": -1 / 5, "Z": -3 / 5})
    assert s2["scores"] == pytest.approx({"X": 1 / 2, "Y": -1, "Z": 1 / 2})
    assert overall["scores"] == pytest.approx({"X": 5 / 7, "Y": -3 / 7, "Z": -2 / 7})
    assert scores["annotators"] == {"a": 3, "b": 3, "c": 1}
    # Wilcoxon of each model against X on the same paired vectors (answers in file order)
    vectors = {
        "X": [1, 1, 1, 0, 1, 0, 1],
        "Y": [0, 0, -1, 1, -1, -1, -1],
        "Z": [-1, -1, 0, -1, 0, 1, 0],
    }
    for model in ("Y", "Z"):
        expected = wilcoxon(vectors[model], vectors["X"])
        test = overall["wilcoxon"][model]
        assert test["p_value"] == pytest.approx(float(expected.pvalue), rel=1e-12)
        assert test["statistic"] == pytest.approx(float(expected.statistic))
        assert test["significant"] == (expected.pvalue < 0.05)
        s1_indices = [0, 1, 3, 4, 6]
        expected_s1 = wilcoxon([vectors[model][i] for i in s1_indices], [vectors["X"][i] for i in s1_indices])
        assert s1["wilcoxon"][model]["p_value"] == pytest.approx(float(expected_s1.pvalue), rel=1e-12)
    assert "X" not in overall["wilcoxon"]
    # agreement: r1 (a, b, c), r2 (a, b), r3 (a, b) -> 5 pairs; best: r1 X,Y,X r2 X,X r3 X,Z; worst: r1 Z,Z,Y ...
    agreement = scores["agreement"]
    assert (agreement["rows"], agreement["pairs"], agreement["chance"]) == (3, 5, pytest.approx(1 / 3))
    for field in ("best", "worst"):
        assert agreement[field]["pairwise"] == pytest.approx(2 / 5)
        # Fleiss' kappa on r2, r3 (2 annotators each): P = 0.5, Pe = 0.75^2 + 0.25^2 = 0.625
        assert agreement[field]["fleiss_kappa"] == pytest.approx((0.5 - 0.625) / (1 - 0.625))
        assert (agreement[field]["kappa_rows"], agreement[field]["kappa_annotators"]) == (2, 2)
    markdown = (study / "scores.md").read_text()
    marker_y = f" {MARKER}" if overall["wilcoxon"]["Y"]["significant"] else ""
    assert f"| All | **0.71** | -0.43{marker_y} | -0.29" in markdown
    assert "| s2 | **0.50** | -1.00" in markdown and "| s2 | **0.50** | -1.00" in markdown_report(scores)


def test_score_reference_and_bad_answers(crafted, tmp_path):
    study, answers = crafted
    scores = score_answers(read_answers(answers), load_key(study), ScoreConfig(study, reference="Z"))
    assert set(scores["overall"]["wilcoxon"]) == {"X", "Y"}
    with pytest.raises(SystemExit, match="reference 'W' is not a model"):
        main(["human-eval", "score", str(study), "--answers", str(answers), "--reference", "W"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"annotator": "a", "row": "r1", "best": "1", "worst": 2}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'best' must be a int"):
        read_answers(bad)
    rows = [("a", "r9", 1, 2), ("a", "r1", 2, 2), ("b", "r2", 1, 4), ("c", "r1", 1, 2), ("c", "r1", 2, 1)]
    bad.write_text("\n".join(json.dumps(dict(zip(("annotator", "row", "best", "worst"), r))) for r in rows))
    with pytest.raises(ValueError, match="4 bad answer") as error:
        score_study(ScoreConfig(study, answers=bad))
    for text in ("row r9: no such row", "best and worst are both 2", "worst 4 is not a displayed", "answered twice"):
        assert text in str(error.value)


def test_build_refuses_one_prediction_folder_under_two_names(checkout, tmp_path):
    root, predictions = checkout
    twice = {"alpha": predictions["alpha"], "copy": Path(f"{predictions['alpha']}/"), "beta": predictions["beta"]}
    with pytest.raises(SystemExit, match="same prediction folder would be one model shown twice: alpha and copy"):
        main(build_args(root, twice, tmp_path / "study"))
    assert not (tmp_path / "study").exists()


def test_score_refuses_no_answers_a_bad_alpha_a_file_as_out_and_a_non_database(crafted, tmp_path):
    study, answers = crafted
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(SystemExit, match="empty.jsonl: no answers yet"):
        main(["human-eval", "score", str(study), "--answers", str(empty)])
    with pytest.raises(SystemExit, match=r"alpha must be in \(0, 1\), got 2.0"):
        main(["human-eval", "score", str(study), "--answers", str(answers), "--alpha", "2"])
    a_file = tmp_path / "scores"
    a_file.write_text("x")
    with pytest.raises(SystemExit, match="--out .*scores is a file"):
        main(["human-eval", "score", str(study), "--answers", str(answers), "--out", str(a_file)])
    garbage = tmp_path / "answers.sqlite"
    garbage.write_text("not a database")
    with pytest.raises(SystemExit, match="answers.sqlite: not an answers database .*file is not a database"):
        main(["human-eval", "score", str(study), "--answers", str(garbage)])
    assert not (study / "scores.json").exists() and a_file.read_text() == "x"
    picture = tmp_path / "answers.jsonl"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(SystemExit, match=r"answers.jsonl: not a JSON Lines answers file \(not UTF-8 text"):
        main(["human-eval", "score", str(study), "--answers", str(picture)])
    kept = study / "scores.json"  # answers kept where the scores go would be replaced by them
    kept.write_text(answers.read_text())
    with pytest.raises(SystemExit, match=r"--answers .*scores.json is the scores.json this writes"):
        main(["human-eval", "score", str(study), "--answers", str(kept)])
    assert kept.read_text() == answers.read_text()


@pytest.mark.parametrize("port", ["0", "-1", "70000"])
def test_serve_refuses_a_port_outside_the_tcp_range(study, port):
    # 70000 used to bind to port 4464 (70000 mod 65536) and -1 ended in an OverflowError traceback
    with pytest.raises(SystemExit, match=f"--port must be in 1..65535, got {port}"):
        main(["human-eval", "serve", str(study), "--port", port])


def test_serve_names_an_answers_database_it_cannot_open(study, tmp_path):
    garbage = tmp_path / "answers.sqlite"
    garbage.write_text("not a database")
    for db, cause in ((tmp_path, "unable to open database file"), (garbage, "file is not a database")):
        with pytest.raises(SystemExit, match=f"cannot open the answers database there \\({cause}\\)"):
            main(["human-eval", "serve", str(study), "--db", str(db)])


def test_build_with_skip_missing_counts_and_lists_the_rows_it_leaves_out(tmp_path, capsys):
    root = write_aurora_checkout(tmp_path / "aurora")
    predictions = write_predictions(root, tmp_path / "predictions")
    rows = json.loads((root / "test.json").read_text())
    lost = next(index for index, row in enumerate(rows) if row["task"] == "ag")
    (root / rows[lost]["input"]).unlink()
    out = tmp_path / "study"
    assert main([*build_args(root, predictions, out), "--skip-missing"]) == 0
    printed = capsys.readouterr().out
    assert (
        f"Left out 1 AURORA-BENCH row(s) with missing or unreadable images (listed in key.json): ag/{lost}" in printed
    )
    key = load_key(out)
    assert [(bad["id"], bad["field"]) for bad in key.skipped] == [(f"ag/{lost}", "input")]  # AURORA names it
    assert f"ag/{lost}" not in key.row_ids.values() and len(key.row_ids) == 10

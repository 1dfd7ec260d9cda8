"""AuroraBuilder: training configs on the real annotation files with generated images, and the real bench sample."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from shared_data import require

from dataset_builders.aurora import PAPER_SUBSETS
from wm_hub.data.builder_registry import builder_class
from wm_hub.data.reporting_builder import MissingFilesError
from wm_hub.data.schema import TRIPLET_FEATURES

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN_ANNOTATIONS = SHARED_DATA / "aurora-train-annotations"
BENCH_MINI = SHARED_DATA / "aurora-bench-mini"
NUM_ROWS = 12


def _build(root: Path, cache: Path, config: str, **kwargs) -> datasets.DatasetBuilder:
    builder = builder_class("aurora")(config_name=config, data_dir=str(root), cache_dir=str(cache), **kwargs)
    builder.download_and_prepare()
    return builder


def _aurora_root(root: Path, name: str, rows: list[dict]) -> Path:
    """An AURORA checkout holding ``data/<name>/train.json`` = ``rows`` and a small PNG at every image path."""
    (root / "data" / name).mkdir(parents=True)
    (root / "data" / name / "train.json").write_text(json.dumps(rows))
    for index, row in enumerate(rows):
        for field, shade in (("input", 60), ("output", 200)):
            path = root / row[field]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 6), (index * 10 % 256, shade, 0)).save(path)
    return root


def _real_rows(name: str) -> list[dict]:
    path = TRAIN_ANNOTATIONS / name / "train.json"
    require(path)
    return json.loads(path.read_text())[:NUM_ROWS]


@pytest.mark.parametrize("name", ["ag", "magicbrush"])
def test_training_config_reads_the_real_annotation_file(tmp_path, name):
    rows = _real_rows(name)
    root = _aurora_root(tmp_path / "AURORA", name, rows)
    builder = _build(root, tmp_path / "cache", name)
    ds = builder.as_dataset("train")

    assert ds.features == TRIPLET_FEATURES
    assert ds["id"] == [f"{name}/{index}" for index in range(NUM_ROWS)]
    assert ds["action"] == [row["instruction"] for row in rows]
    assert set(ds["origin"]) == {f"aurora/{name}"}
    assert isinstance(ds[0]["source"], Image.Image) and ds[0]["source"].size == (8, 6)
    raw = ds.cast_column("target", datasets.Image(decode=False))
    assert raw[3]["target"]["bytes"] == (root / rows[3]["output"]).read_bytes()  # file bytes kept as they are
    report = builder.build_report.splits["train"]
    assert (report.annotation_file, report.rows, report.examples) == (f"data/{name}/train.json", NUM_ROWS, NUM_ROWS)


def test_something_and_kubric_configs_follow_the_upstream_layout(tmp_path):
    rows = [
        {
            "instruction": f"move it {i}",
            "input": f"data/kubric/images/{i}/a.png",
            "output": f"data/kubric/images/{i}/b.png",
        }
        for i in range(3)
    ]
    root = _aurora_root(tmp_path / "AURORA", "kubric", rows)
    ds = _build(root, tmp_path / "cache", "kubric").as_dataset("train")
    assert ds["id"] == ["kubric/0", "kubric/1", "kubric/2"] and set(ds["origin"]) == {"aurora/kubric"}
    with pytest.raises(FileNotFoundError, match="data/something/train.json"):
        _build(root, tmp_path / "cache", "something")


def test_missing_and_unreadable_images_are_all_named_or_skipped_and_reported(tmp_path):
    rows = _real_rows("ag")
    root = _aurora_root(tmp_path / "AURORA", "ag", rows)
    (root / rows[2]["input"]).unlink()
    (root / rows[5]["output"]).unlink()
    (root / rows[7]["output"]).write_bytes(b"not an image")
    truncated = root / rows[9]["input"]
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])  # a valid header, the pixels cut off

    with pytest.raises(MissingFilesError) as error:
        _build(root, tmp_path / "cache", "ag")
    message = str(error.value)
    assert "4 row(s)" in message
    assert f"train row 9 (id ag/9), field 'input': {rows[9]['input']}: unreadable (" in message
    assert f"train row 2 (id ag/2), field 'input': {rows[2]['input']}: no such file" in message
    assert f"train row 5 (id ag/5), field 'output': {rows[5]['output']}: no such file" in message
    assert f"train row 7 (id ag/7), field 'output': {rows[7]['output']}: not an image PIL can read" in message

    builder = _build(root, tmp_path / "cache", "ag", skip_missing=True)
    assert len(builder.as_dataset("train")) == NUM_ROWS - 4
    report = builder.build_report.splits["train"]
    skipped = [(bad.row, bad.field) for bad in report.skipped]
    assert skipped == [(2, "input"), (5, "output"), (7, "output"), (9, "input")]
    assert report.origins["aurora/ag"].skipped == 4 and report.examples == NUM_ROWS - 4
    # A cached build keeps its report beside the data.
    cached = builder_class("aurora")(
        config_name="ag", data_dir=str(root), cache_dir=str(tmp_path / "cache"), skip_missing=True
    )
    cached.download_and_prepare()
    assert cached.build_report == builder.build_report


def _bench_rows() -> list[dict]:
    require(BENCH_MINI)
    return json.loads((BENCH_MINI / "test.json").read_text())


def test_bench_counts_every_row_against_the_json(tmp_path):
    rows = _bench_rows()
    complete = Counter(
        row["task"]
        for row in rows
        if row["task"] in PAPER_SUBSETS
        and "output" in row
        and all((BENCH_MINI / row[f]).is_file() for f in ("input", "output"))
    )
    builder = _build(BENCH_MINI, tmp_path / "cache", "bench", skip_missing=True)
    ds = builder.as_dataset("test")

    assert Counter(origin.removeprefix("aurora/") for origin in ds["origin"]) == complete
    report = builder.build_report.splits["test"]
    assert report.rows == len(rows)
    assert report.not_selected == dict(Counter(row["task"] for row in rows if row["task"] not in PAPER_SUBSETS))
    assert [(bad.id, bad.field, bad.path) for bad in report.skipped] == [
        ("something/17", "output", "data/something/images/214831/last.jpg")
    ]
    assert rows[17]["output"] == "data/something/images/214831/last.jpg"


def test_bench_rows_without_output_are_counted_not_written(tmp_path):
    rows = _bench_rows()
    builder = _build(BENCH_MINI, tmp_path / "cache", "bench", subsets=("clevr", "ag"))
    ds = builder.as_dataset("test")
    assert set(ds["origin"]) == {"aurora/ag"}
    counts = builder.build_report.splits["test"].origins["aurora/clevr"]
    assert (counts.rows, counts.without_target, counts.examples) == (6, 6, 0)
    assert sum(row["task"] == "clevr" and "output" not in row for row in rows) == 6


def test_bad_config_and_annotation_errors(tmp_path):
    _bench_rows()
    with pytest.raises(ValueError, match=r"Unknown AURORA subset\(s\) \['pets'\]"):
        _build(BENCH_MINI, tmp_path / "cache", "bench", subsets=("ag", "pets"))
    with pytest.raises(ValueError, match="not found"):
        _build(BENCH_MINI, tmp_path / "cache", "nope")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        _build(tmp_path / "absent", tmp_path / "cache", "bench")
    root = tmp_path / "AURORA"
    (root / "data" / "ag").mkdir(parents=True)
    (root / "data" / "ag" / "train.json").write_text(json.dumps([{"input": "a.png", "output": "b.png"}]))
    with pytest.raises(ValueError, match="rows without a string 'instruction' and 'input':\n  row 0:"):
        _build(root, tmp_path / "cache", "ag")
    (root / "data" / "ag" / "train.json").write_text(json.dumps([{"instruction": " ", "input": "a.png"}]))
    with pytest.raises(ValueError, match="rows with a blank 'instruction' or 'input':\n  row 0:"):
        _build(root, tmp_path / "cache", "ag")
    (root / "data" / "ag" / "train.json").write_text(json.dumps([{"instruction": "x", "input": "a.png", "output": 7}]))
    with pytest.raises(ValueError, match="rows whose 'output' is not a string path:\n  row 0:"):
        _build(root, tmp_path / "cache", "ag")
    # a benchmark row without its subset would silently drop out of every subset's results
    rows = [{"instruction": "x", "input": "a.png", "task": "ag"}, {"instruction": "y", "input": "b.png"}]
    (root / "test.json").write_text(json.dumps(rows + [{"instruction": "z", "input": "c.png", "task": None}]))
    with pytest.raises(ValueError, match="rows without a 'task' \\(their subset\\):\n  row 1: .*\n  row 2:"):
        _build(root, tmp_path / "cache", "bench", subsets=("ag",))

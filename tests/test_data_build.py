"""``wm-hub data build``: Hub-layout folders that ``datasets.load_dataset`` reads without wm-hub."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import pytest
from PIL import Image
from shared_data import require

from dataset_builders.aurora import PAPER_SUBSETS, AuroraBuilder
from wm_hub.cli import build_parser, main
from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet
from wm_hub.hub import dataset_folder

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCH_MINI = SHARED_DATA / "aurora-bench-mini"
MISSING = "data/something/images/214831/last.jpg"


@pytest.fixture
def bench_rows() -> list[dict]:
    require(BENCH_MINI)
    return json.loads((BENCH_MINI / "test.json").read_text())


def _build(out: Path, *extra: str) -> int:
    return main(
        ["data", "build", "aurora", "--config", "bench", "--data-dir", str(BENCH_MINI), "--out", str(out), *extra]
    )


def test_bench_build_loads_without_wm_hub(tmp_path, bench_rows, capsys):
    out = tmp_path / "aurora-bench"
    assert _build(out, "--skip-missing") == 0
    summary = json.loads(capsys.readouterr().out)

    expected = Counter(
        f"aurora/{row['task']}"
        for row in bench_rows
        if row["task"] in PAPER_SUBSETS and all((BENCH_MINI / row.get(f, "-")).is_file() for f in ("input", "output"))
    )
    assert sum(expected.values()) == summary["examples"]["test"] == len(bench_rows) - 3 * 6 - 1
    assert sorted(p.name for p in (out / "data").iterdir()) == ["test-00000-of-00001.parquet"]
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))["test"]
    assert ds.features == TRIPLET_FEATURES
    assert Counter(ds["origin"]) == expected
    assert isinstance(ds[0]["source"], Image.Image) and isinstance(ds[0]["target"], Image.Image)

    report = json.loads((out / "build_report.json").read_text())
    split = report["splits"]["test"]
    assert split["skipped"] == [
        {
            "split": "test",
            "row": 17,
            "id": "something/17",
            "field": "output",
            "path": MISSING,
            "reason": "no such file",
        }
    ]
    assert {origin: counts["examples"] for origin, counts in split["origins"].items()} == dict(expected)
    assert split["origins"]["aurora/something"]["skipped"] == 1
    assert sorted(tmp_path.iterdir()) == [out, tmp_path / "hf-cache"]  # no temporary folder left behind

    # A fresh interpreter reads it, map-style and streaming, without importing wm-hub or the builders.
    check = f"""
import sys, datasets
ds = datasets.load_dataset({str(out)!r}, cache_dir={str(tmp_path / "hf-cache-2")!r})["test"]
stream = datasets.load_dataset({str(out)!r}, streaming=True)["test"]
first = next(iter(stream))
assert first["id"] == ds[0]["id"] and type(first["source"]).__module__.startswith("PIL")
assert stream.features == ds.features
assert not any(name.split(".")[0] in ("wm_hub", "dataset_builders") for name in sys.modules)
print(len(ds), repr(ds.features["source"]))
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert result.stdout.split() == [str(sum(expected.values())), "Image(mode=None,", "decode=True)"]


def test_bench_build_without_skip_fails_naming_the_row(tmp_path, bench_rows):
    out = tmp_path / "aurora-bench"
    with pytest.raises(SystemExit) as error:
        _build(out)
    message = str(error.value)
    assert message.startswith("error: 1 row(s) reference missing or unreadable files")
    assert f"test row 17 (id something/17), field 'output': {MISSING}: no such file" in message
    assert list(tmp_path.iterdir()) == []  # neither OUT nor a temporary folder


def test_shards_are_named_like_the_hub(tmp_path, bench_rows, monkeypatch):
    monkeypatch.setattr(AuroraBuilder, "DEFAULT_WRITER_BATCH_SIZE", 4)
    out = tmp_path / "sharded"
    assert _build(out, "--skip-missing", "--max-shard-size", "1MB") == 0
    shards = sorted(p.name for p in (out / "data").iterdir())
    assert len(shards) > 1 and shards == [f"test-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))["test"]
    assert ds["id"] == [
        f"{row['task']}/{i}" for i, row in enumerate(bench_rows) if row["task"] in PAPER_SUBSETS and i != 17
    ]
    readme = (out / "README.md").read_text()
    assert "path: data/test-*" in readme and f"num_examples: {len(ds)}" in readme


class GeneratedTriplets(datasets.GeneratorBasedBuilder):
    """A builder that generates its data (no data_dir) and keeps no build report."""

    def _info(self):
        return datasets.DatasetInfo(features=TRIPLET_FEATURES)

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name="train")]

    def _generate_examples(self):
        for index in range(3):
            image = Image.new("RGB", (4, 4), (index, 0, 0))
            yield index, make_triplet(f"g/{index}", image, image, "wait", "generated")


def test_generated_data_needs_no_data_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dataset_folder, "builder_class", lambda name: GeneratedTriplets)
    out = tmp_path / "generated"
    assert main(["data", "build", "generated", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == {"train": 3}
    assert json.loads((out / "build_report.json").read_text()) == {
        "builder": "generated",
        "config": "default",
        "splits": {},
    }
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert ds["id"] == ["g/0", "g/1", "g/2"] and ds.features == TRIPLET_FEATURES


def test_a_killed_build_leaves_no_partial_folder_after_the_next_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dataset_folder, "builder_class", lambda name: GeneratedTriplets)
    stale = tmp_path / ".generated.k1ll3d.partial"  # what a build killed with SIGKILL leaves beside its out
    (stale / "cache").mkdir(parents=True)
    other = tmp_path / ".other.k1ll3d.partial"  # another folder's build is left alone
    other.mkdir()
    assert main(["data", "build", "generated", "--out", str(tmp_path / "generated")]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [".other.k1ll3d.partial", "generated"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nope", "--data-dir", "."], "Unknown dataset builder 'nope'"),
        (["aurora", "--config", "nope", "--data-dir", "."], "BuilderConfig 'nope' not found"),
        (
            ["aurora", "--data-dir", "."],
            "builder 'aurora' has configs ['ag', 'magicbrush', 'something', 'kubric', 'bench']",
        ),
        (["aurora", "--config", "bench", "--data-dir", "absent"], "data_dir absent: no such folder"),
        (["aurora", "--config", "bench"], "AuroraBuilder needs data_dir="),
        (["aurora", "--config", "bench", "--data-dir", ".", "--max-shard-size", "big"], "big"),
        (["aurora", "--config", "bench", "--data-dir", ".", "--max-shard-size", "0"], "--max-shard-size '0': give a"),
        (["aurora", "--config", "bench", "--data-dir", ".", "--max-shard-size", "-5"], "--max-shard-size '-5'"),
    ],
)
def test_bad_input_exits_with_one_clear_message(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as error:
        main(["data", "build", *argv, "--out", "out"])
    assert str(error.value).startswith("error: ") and message in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["aurora", "--builder", "epic_kitchens"], ["--builder", "epic_kitchens", "aurora"]])
def test_two_different_builders_are_refused(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as error:
        main(["data", "build", *argv, "--data-dir", ".", "--out", "out"])
    assert error.value.code == 2
    assert "two builders" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_build_that_skips_every_row_is_an_error(tmp_path, bench_rows):
    empty = tmp_path / "AURORA"
    empty.mkdir()
    (empty / "test.json").write_text((BENCH_MINI / "test.json").read_text())  # the rows, none of their images
    with pytest.raises(SystemExit, match=r"no triplet left for split 'test' .*30 skipped .*first skipped: test row 0"):
        main(["data", "build", "aurora", "--config", "bench", "--data-dir", str(empty), "--out",
              str(tmp_path / "out"), "--skip-missing"])  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_out_must_be_new_or_empty(tmp_path, bench_rows):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="exists and is not an empty folder"):
        _build(out, "--skip-missing")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SystemExit, match="afile is a file, so no folder can be made under it"):
        _build(tmp_path / "afile" / "out", "--skip-missing")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(SystemExit, match="loop is a symbolic link to nothing usable"):
        _build(loop, "--skip-missing")
    assert (tmp_path / "afile").read_text() == "mine" and not list(tmp_path.glob(".*.partial"))


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["data", "build", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "datasets.load_dataset(OUT)" in text and "build_report.json" in text
    assert "wm-hub data build aurora --config bench --data-dir AURORA --out aurora-bench --skip-missing" in text


def test_max_shard_size_takes_plain_bytes_as_its_help_says():
    for given, passed in (("1000000", 1_000_000), ("500MB", "500MB")):
        config = dataset_folder.DatasetBuildConfig(out="o", builder="aurora", max_shard_size=given)
        assert config.build_options()["max_shard_size"] == passed

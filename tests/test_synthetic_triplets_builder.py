"""synthetic_triplets: IDM annotation folders (annotations*.jsonl + images) -> triplets, with clear errors."""

from __future__ import annotations

import json
import logging

import datasets
import pytest

from dataset_builders.synthetic_triplets import SyntheticTripletsBuilder
from wm_hub.cli import main
from wm_hub.data.builder_registry import builder_class
from wm_hub.data.reporting_builder import BuildReport, MissingFilesError
from wm_hub.data.schema import TRIPLET_FEATURES
from wm_hub.data.shapes_world import ShapesWorld


def annotation(index: int, **fields) -> dict:
    row = {
        "id": f"pair-{index}",
        "source": f"frames/{index}-a.png",
        "target": f"frames/{index}-b.png",
        "action": f"action {index}",
        "score": -float(index),
        "action_class": "move" if index % 2 else "swap",
        "video": f"video-{index // 2}",
        "frames": [index, index + 3],
        "origin": "shapes_world/videos",
    }
    return {**row, **fields}


def write_jsonl(path, rows) -> None:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))


@pytest.fixture
def folder(tmp_path):
    """Five annotated pairs of shapes-world frames: three in annotations.jsonl, two in a shard (one bare)."""
    root = tmp_path / "annotated"
    (root / "frames").mkdir(parents=True)
    world = ShapesWorld()
    for index in range(5):
        example = world.triplet("train", index)
        example.source.save(root / f"frames/{index}-a.png")
        example.target.save(root / f"frames/{index}-b.png")
    reasoned = annotation(1, rationale="row 1, column 2: red square -> nothing")  # what a reasoning IDM wrote
    write_jsonl(root / "annotations.jsonl", [annotation(0), reasoned, "", annotation(2)])
    bare = {key: annotation(4)[key] for key in ("id", "source", "target", "action")}
    write_jsonl(root / "annotations-00001.jsonl", [annotation(3), bare])
    (root / "annotations-00002.jsonl.tmp").write_text("{not json\n")  # an unfinished shard: ignored
    return root


def build(folder, cache, **config) -> tuple[datasets.Dataset, BuildReport]:
    builder = SyntheticTripletsBuilder(cache_dir=str(cache), data_dir=str(folder), **config)
    builder.download_and_prepare()
    return builder.as_dataset("train"), builder.build_report


def test_rows_keep_score_class_video_frames_and_embed_the_images(folder, tmp_path):
    assert builder_class("synthetic_triplets") is SyntheticTripletsBuilder
    dataset, report = build(folder, tmp_path / "cache")
    assert report.splits["train"].annotation_file == "annotations.jsonl, annotations-00001.jsonl"
    assert report.splits["train"].rows == report.splits["train"].examples == 5
    assert dataset.features == TRIPLET_FEATURES
    assert dataset["id"] == [f"pair-{index}" for index in range(5)]
    assert dataset["score"] == [0.0, -1.0, -2.0, -3.0, None]
    assert dataset["action_class"] == ["swap", "move", "swap", "move", None]
    assert dataset["frames"][:4] == [[0, 3], [1, 4], [2, 5], [3, 6]] and dataset["frames"][4] is None
    assert dataset["origin"] == ["synthetic/shapes_world/videos"] * 4 + ["synthetic"]
    assert dataset["rationale"] == [None, "row 1, column 2: red square -> nothing", None, None, None]
    raw = dataset.cast_column("target", datasets.Image(decode=False))
    assert raw[2]["target"]["bytes"] == (folder / "frames/2-b.png").read_bytes()


def test_min_score_keeps_rows_at_or_above_it_and_drops_unscored(folder, tmp_path):
    dataset, report = build(folder, tmp_path / "cache", min_score=-1.0)
    assert dataset["id"] == ["pair-0", "pair-1"]
    assert report.splits["train"].not_selected == {"synthetic/shapes_world/videos": 2, "synthetic": 1}
    with pytest.raises(ValueError, match="no triplet left"):
        build(folder, tmp_path / "cache", min_score=1.0)


def test_bad_images_are_all_named_or_skipped_and_counted(folder, tmp_path, caplog):
    (folder / "frames/1-b.png").unlink()
    (folder / "frames/3-a.png").write_bytes(b"not a png")
    with pytest.raises(MissingFilesError, match="2 row") as error:
        build(folder, tmp_path / "cache")
    message = str(error.value)
    assert "row 1 (id pair-1), field 'target': frames/1-b.png: no such file" in message
    assert "row 3 (id pair-3), field 'source': frames/3-a.png: not an image" in message
    with caplog.at_level(logging.WARNING):
        dataset, report = build(folder, tmp_path / "cache", skip_missing=True)
    assert dataset["id"] == ["pair-0", "pair-2", "pair-4"]
    assert report.splits["train"].skipped_rows == 2 and len(report.bad_files) == 2
    assert "Skipped 2 of 5" in caplog.text


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "annotations-00001.jsonl:2: not valid JSON"),
        ("[1, 2]", "annotations-00001.jsonl:2: expected a JSON object"),
        (
            json.dumps({"id": "x", "source": "a.png", "target": "b.png"}),
            r"missing or non-string field\(s\) \['action'\]",
        ),
        (json.dumps(annotation(9, score="high")), "score must be a number"),
        (
            json.dumps(annotation(9, score=float("nan"))),
            "score must be a finite number within float32's range, got nan",
        ),
        (json.dumps(annotation(9, score=float("inf"))), "score must be a finite number .*, got inf"),
        (json.dumps(annotation(9, score=1e39)), "score must be a finite number within float32's range, got 1e"),
        (json.dumps(annotation(9, source=" ")), r"annotations-00001.jsonl:2: blank field\(s\) \['source'\]"),
        (json.dumps(annotation(9, frames=[1.5, 2])), "frames must be a list of frame numbers"),
        (json.dumps(annotation(9, frames=[2**40, 2])), r"frames must be a list of frame numbers \(integers in 0"),
        (json.dumps(annotation(9, action_class=["a", 1])), r"action_class must be a string, got \['a', 1\]"),
        (json.dumps(annotation(9, video=5)), "video must be a string, got 5"),
        (json.dumps(annotation(9, origin={"a": 1})), "origin must be a string"),
        (json.dumps(annotation(9, rationale=["row 1"])), "rationale must be a string"),
        (json.dumps(annotation(0)), "id 'pair-0' already used at annotations.jsonl:1"),
    ],
)
def test_malformed_lines_are_named_by_file_and_line(folder, tmp_path, line, message):
    write_jsonl(folder / "annotations-00001.jsonl", [annotation(3), line])
    with pytest.raises(ValueError, match=message):
        build(folder, tmp_path / "cache")


def test_a_folder_without_annotations_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no annotations.jsonl"):
        build(tmp_path, tmp_path / "cache")
    with pytest.raises(ValueError, match="needs data_dir"):
        SyntheticTripletsBuilder(cache_dir=str(tmp_path / "cache")).download_and_prepare()


def test_data_build_writes_a_folder_that_loads_without_wm_hub(folder, tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert main(["data", "build", "synthetic_triplets", "--data-dir", str(folder), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == {"train": 5}
    dataset = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert dataset.features == TRIPLET_FEATURES and dataset["score"][:2] == [0.0, -1.0]


def test_annotation_files_reads_only_the_files_named(folder, tmp_path):
    """A `wm-hub sample` output written into the annotation folder is built alone, not added to the shards."""
    write_jsonl(folder / "sampled.jsonl", [annotation(3), annotation(1)])
    dataset, _ = build(folder, tmp_path / "cache", annotation_files=["sampled.jsonl"])
    assert dataset["id"] == ["pair-3", "pair-1"]
    with pytest.raises(FileNotFoundError, match=r"not found: \['nope.jsonl'\]"):
        build(folder, tmp_path / "cache2", annotation_files=["nope.jsonl"])


def test_data_build_annotations_option(folder, tmp_path, capsys):
    write_jsonl(folder / "sampled.jsonl", [annotation(2)])
    out = tmp_path / "sampled-data"
    args = ["data", "build", "synthetic_triplets", "--data-dir", str(folder), "--out", str(out)]
    assert main([*args, "--annotations", "sampled.jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == {"train": 1}
    with pytest.raises(SystemExit, match="--annotations is an option of the synthetic_triplets builder"):
        main(["data", "build", "shapes_world", "--out", str(tmp_path / "x"), "--annotations", "a.jsonl"])

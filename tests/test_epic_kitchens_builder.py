"""EpicKitchensBuilder on a generated EPIC-KITCHENS-100 layout: CSVs, extracted JPEG frames and a tiny MP4."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from wm_hub.data.builder_registry import builder_class
from wm_hub.data.reporting_builder import MissingFilesError
from wm_hub.data.schema import TRIPLET_FEATURES

HEADER = [
    "narration_id",
    "participant_id",
    "video_id",
    "narration_timestamp",
    "start_timestamp",
    "stop_timestamp",
    "start_frame",
    "stop_frame",
    "narration",
    "verb",
    "verb_class",
    "noun",
    "noun_class",
    "all_nouns",
    "all_noun_classes",
]
VIDEO_FRAMES = 24


def _shade(number: int) -> int:
    """Grey level of frame ``number`` in the fixture, so a decoded image tells which frame it is."""
    return 8 * number


def _segment(narration_id: str, start: int, stop: int, narration: str, verb: str) -> list:
    participant, video = narration_id.split("_")[0], "_".join(narration_id.split("_")[:2])
    stamps = ["00:00:01.00", "00:00:01.00", "00:00:02.00"]
    return [narration_id, participant, video, *stamps, start, stop, narration, verb, 0, "x", 0, "['x']", "[0]"]


TRAIN = [
    _segment("P01_01_0", 3, 9, "open drawer", "open"),
    _segment("P01_01_1", 12, 20, "take knife", "take"),
    _segment("P02_01_0", 2, 10, "wash plate", "wash"),
    _segment("P02_01_1", 5, 5, "look at plate", "look"),
    _segment("P02_01_2", 8, 24, "put plate", "put"),
]
VALIDATION = [_segment("P01_01_2", 1, 4, "close drawer", "close")]


def _write_csv(path: Path, rows: list[list]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        writer.writerows(rows)


def _write_video(path: Path, num_frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.options = {"qscale": "1"}
        for number in range(1, num_frames + 1):
            pixels = np.full((24, 32, 3), _shade(number), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture
def epic_root(tmp_path) -> Path:
    """P01_01 as extracted JPEG frames, P02_01 as an MP4, train and validation CSVs."""
    root = tmp_path / "EPIC-KITCHENS"
    frames = root / "P01" / "rgb_frames" / "P01_01"
    frames.mkdir(parents=True)
    for number in {n for row in TRAIN + VALIDATION if row[2] == "P01_01" for n in row[6:8]}:
        Image.new("RGB", (32, 24), (_shade(number),) * 3).save(frames / f"frame_{number:010d}.jpg", quality=95)
    _write_video(root / "P02" / "videos" / "P02_01.MP4", VIDEO_FRAMES)
    _write_csv(root / "EPIC_100_train.csv", TRAIN)
    _write_csv(root / "EPIC_100_validation.csv", VALIDATION)
    return root


def _build(root: Path, cache: Path, **kwargs):
    builder = builder_class("epic_kitchens")(data_dir=str(root), cache_dir=str(cache), **kwargs)
    builder.download_and_prepare()
    return builder


def _grey(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L")).mean())


def test_frames_and_video_segments_become_triplets(epic_root, tmp_path):
    builder = _build(epic_root, tmp_path / "cache")
    train, validation = builder.as_dataset("train"), builder.as_dataset("validation")

    assert train.features == TRIPLET_FEATURES
    assert validation["id"] == ["P01_01_2"]
    rows = {row["id"]: row for row in train}
    assert set(rows) == {row[0] for row in TRAIN}
    for narration_id, *_, start, stop, narration, verb in (row[:10] for row in TRAIN):
        row = rows[narration_id]
        assert (row["action"], row["action_class"], row["origin"]) == (narration, verb, "epic_kitchens")
        assert (row["video"], row["frames"]) == (narration_id[:6], [start, stop])
        # Frame n is the n-th frame (1-based) in both the JPEG folder and the decoded MP4.
        assert _grey(row["source"]) == pytest.approx(_shade(start), abs=3)
        assert _grey(row["target"]) == pytest.approx(_shade(stop), abs=3)
    assert rows["P02_01_0"]["source"].format == "JPEG"
    report = builder.build_report
    assert {split: r.examples for split, r in report.splits.items()} == {"train": 5, "validation": 1}
    assert report.splits["train"].annotation_file == "EPIC_100_train.csv"


def test_missing_files_are_all_named_or_skipped_and_reported(epic_root, tmp_path):
    (epic_root / "P01" / "rgb_frames" / "P01_01" / "frame_0000000020.jpg").unlink()
    extra = [
        _segment("P02_01_3", 20, VIDEO_FRAMES + 6, "dry plate", "dry"),
        _segment("P03_01_0", 1, 2, "stir", "stir"),
    ]
    _write_csv(epic_root / "EPIC_100_train.csv", TRAIN + extra)

    with pytest.raises(MissingFilesError) as error:
        _build(epic_root, tmp_path / "cache")
    message = str(error.value)
    assert "3 row(s)" in message
    assert (
        "train row 1 (id P01_01_1), field 'stop_frame': P01/rgb_frames/P01_01/frame_0000000020.jpg: no such file"
        in message
    )
    assert (
        f"train row 5 (id P02_01_3), field 'stop_frame': P02/videos/P02_01.MP4: no frame 30 (1..{VIDEO_FRAMES})"
        in message
    )
    assert "train row 6 (id P03_01_0), field 'video_id': P03/videos/P03_01.MP4: no such file" in message

    builder = _build(epic_root, tmp_path / "cache", skip_missing=True)
    assert sorted(builder.as_dataset("train")["id"]) == ["P01_01_0", "P02_01_0", "P02_01_1", "P02_01_2"]
    report = builder.build_report.splits["train"]
    assert [bad.id for bad in report.skipped] == ["P01_01_1", "P02_01_3", "P03_01_0"]
    assert (report.rows, report.examples, report.skipped_rows) == (7, 4, 3)

    _write_csv(epic_root / "EPIC_100_validation.csv", extra[1:])  # a split left empty would not load: an error
    with pytest.raises(ValueError, match=r"no triplet left for split 'validation' \(1 rows: 1 skipped .*P03_01_0"):
        _build(epic_root, tmp_path / "fresh-cache", skip_missing=True)


def test_annotation_errors(tmp_path):
    root = tmp_path / "EPIC-KITCHENS"
    root.mkdir()
    with pytest.raises(FileNotFoundError, match="EPIC_100_train.csv"):
        _build(root, tmp_path / "cache")
    (root / "EPIC_100_train.csv").write_text("narration_id,video_id\nP01_01_0,P01_01\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['participant_id', 'start_frame'"):
        _build(root, tmp_path / "cache")
    bad = _segment("P01_01_0", 1, 2, "open", "open")
    bad[7] = "end"
    _write_csv(root / "EPIC_100_train.csv", [bad])
    with pytest.raises(ValueError, match="row 0, column stop_frame: not a frame number: 'end'"):
        _build(root, tmp_path / "cache")
    for rows, message in (
        ([_segment("P01_01_0", 9, 3, "open", "open")], "row 0: start_frame 9 is after stop_frame 3"),
        ([_segment("P01_01_0", 0, 3, "open", "open")], "row 0, column start_frame: frames .* from 1, got 0"),
        ([_segment("P01_01_0", 1, 3, " ", "open")], r"row 0: blank or missing column\(s\) \['narration'\]"),
        (
            [_segment("P01_01_0", 1, 3, "open", "open"), _segment("P01_01_0", 1, 9, "wash", "wash")],
            "rows 0 and 1: the same narration_id 'P01_01_0'",
        ),
    ):
        _write_csv(root / "EPIC_100_train.csv", rows)
        with pytest.raises(ValueError, match=message):
            _build(root, tmp_path / "cache")
    (root / "EPIC_100_train.csv").write_text(
        "narration_id,participant_id,video_id,start_frame,stop_frame,narration,verb\nB,P01,P01_01,1,5\n"
    )
    with pytest.raises(ValueError, match=r"row 0: blank or missing column\(s\) \['narration', 'verb'\]"):
        _build(root, tmp_path / "cache")

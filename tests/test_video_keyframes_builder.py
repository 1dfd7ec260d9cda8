"""VideoKeyframesBuilder: class folders of generated videos -> key-frame-pair triplets; a bad video is an error
naming it, or with skip_missing a skip counted in the build report."""

from __future__ import annotations

import logging
from itertools import pairwise

import numpy as np
import pytest
from test_keyframes import write_video

from dataset_builders.video_keyframes import VideoKeyframesBuilder
from wm_hub.bootstrap.keyframes import KeyframeConfig, find_keyframes, read_frames
from wm_hub.data.builder_registry import builder_class
from wm_hub.data.reporting_builder import prepare_builder
from wm_hub.data.schema import TRIPLET_FEATURES


def test_builder_yields_consecutive_keyframe_pairs_and_skips_bad_videos_when_asked(tmp_path, caplog):
    root = tmp_path / "videos"
    (root / "jumping").mkdir(parents=True)
    (root / "waving" / "outdoor").mkdir(parents=True)
    write_video(root / "jumping" / "a.mp4", 50, [(5, 10), (22, 27), (40, 45)])
    write_video(root / "waving" / "outdoor" / "b.mp4", 45, [(8, 12), (30, 34)], size=(128, 80))
    (root / "jumping" / "broken.mp4").write_text("not a video\n" * 20)
    write_video(root / "no_class.mp4", 30)

    settings = {"data_dir": str(root), "num_keyframes": 3, "min_interval": 10}
    refused = VideoKeyframesBuilder(cache_dir=str(tmp_path / "refused"), **settings)
    with pytest.raises(ValueError, match="broken.mp4: cannot be decoded .*--skip-missing"):
        prepare_builder(refused)
    with caplog.at_level(logging.WARNING):
        builder = VideoKeyframesBuilder(cache_dir=str(tmp_path / "cache"), skip_missing=True, **settings)
        builder.download_and_prepare()
    dataset = builder.as_dataset(split="train")
    report = builder.build_report.splits["train"]  # a row is a video: 3 in class folders, one skipped
    assert (report.rows, report.examples, report.skipped_rows) == (3, 2, 1)
    assert [(bad.id, bad.field) for bad in report.skipped] == [("jumping/broken.mp4", "video")]
    assert report.skipped[0].reason.startswith("not a readable video")

    assert builder_class("video_keyframes") is VideoKeyframesBuilder
    assert dataset.features == TRIPLET_FEATURES and dataset.column_names == list(TRIPLET_FEATURES)
    assert "Skipped 1 of 3 video(s) that could not be decoded: jumping/broken.mp4 (not a readable video" in caplog.text
    assert "Left out 1 video(s) not in a class folder" in caplog.text and "no_class.mp4" in caplog.text

    config = KeyframeConfig(num_keyframes=3, min_interval=10)
    expected = {}
    for video, action_class in (("jumping/a.mp4", "jumping"), ("waving/outdoor/b.mp4", "waving")):
        frames = find_keyframes(root / video, config).frames
        assert len(frames) == 3
        images = read_frames(root / video, frames)
        for (i, j), (source, target) in zip(pairwise(frames), pairwise(images)):
            expected[f"{video}:{i}-{j}"] = (video, action_class, [i, j], source, target)
    assert sorted(dataset["id"]) == sorted(expected)
    for row in dataset:
        video, action_class, frames, source, target = expected[row["id"]]
        assert row["action"] == "" and row["score"] is None
        assert row["origin"] == f"video_keyframes/{action_class}" and row["action_class"] == action_class
        assert row["video"] == video and row["frames"] == frames and frames[1] - frames[0] >= 10
        assert np.array_equal(np.asarray(row["source"]), np.asarray(source))  # full resolution, lossless PNG
        assert np.array_equal(np.asarray(row["target"]), np.asarray(target))
    assert dataset.filter(lambda row: row["action_class"] == "waving")[0]["source"].size == (128, 80)


def test_builder_origin_prefix_names_the_source(tmp_path):
    (tmp_path / "videos" / "run").mkdir(parents=True)
    write_video(tmp_path / "videos" / "run" / "c.mp4", 40, [(5, 10), (28, 33)])
    builder = VideoKeyframesBuilder(
        data_dir=str(tmp_path / "videos"), cache_dir=str(tmp_path / "cache"), origin_prefix="ucf101"
    )
    builder.download_and_prepare()
    [row] = builder.as_dataset(split="train")
    assert row["origin"] == "ucf101/run" and row["frames"][1] - row["frames"][0] >= 20  # two bursts: 2 key frames


def test_a_video_without_a_pair_of_key_frames_is_named_or_skipped_not_counted_as_an_example(tmp_path, caplog):
    root = tmp_path / "videos"
    (root / "jump").mkdir(parents=True)
    write_video(root / "jump" / "long.mp4", 50, [(5, 10), (30, 35)])
    write_video(root / "jump" / "one.mp4", 1)  # a single frame: one key frame, no pair
    settings = {"data_dir": str(root), "num_keyframes": 3, "min_interval": 10}
    with pytest.raises(ValueError, match=r"one.mp4: 1 key frame\(s\): no pair; fix or remove it.*--skip-missing"):
        prepare_builder(VideoKeyframesBuilder(cache_dir=str(tmp_path / "refused"), **settings))
    with caplog.at_level(logging.WARNING):
        builder = VideoKeyframesBuilder(cache_dir=str(tmp_path / "cache"), skip_missing=True, **settings)
        builder.download_and_prepare()
    report = builder.build_report.splits["train"]
    assert (report.rows, report.examples, report.skipped_rows) == (2, 1, 1)
    assert [(bad.id, bad.reason) for bad in report.skipped] == [("jump/one.mp4", "1 key frame(s): no pair")]
    assert {row["video"] for row in builder.as_dataset(split="train")} == {"jump/long.mp4"}
    assert "Skipped 1 of 2 video(s) that gave fewer than 2 key frames (no pair): jump/one.mp4" in caplog.text

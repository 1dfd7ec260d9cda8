"""Key-frame selection (wm_hub.bootstrap.keyframes) and ``wm-hub keyframes``: generated videos with known motion,
the real sample videos, bad files as reported skips, resuming."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from fake_slurm import install_fake_slurm
from PIL import Image
from shared_data import require

from wm_hub.bootstrap.keyframes import (
    KeyframeConfig,
    VideoDecodeError,
    find_keyframes,
    max_keyframes,
    read_frames,
    select_keyframes,
)
from wm_hub.cli import build_parser, main

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
# Six bursts of motion, each [start, stop): frame t differs from frame t - 1 exactly when t is in a burst.
BURSTS = [(12, 17), (52, 57), (92, 97), (132, 137), (172, 177), (212, 217)]


def write_video(path: Path, num_frames: int, bursts=(), size=(96, 64), faststart=False) -> Path:
    """An H.264 video: a noise-textured square on grey, moving 4 px per frame during ``bursts``, still otherwise.

    Args:
        path: Output file.
        num_frames: Frames to write.
        bursts: ``(start, stop)`` frame ranges in which the square moves (alternately right and left).
        size: ``(width, height)``.
        faststart: Put the index (moov atom) before the data, so a truncated copy still opens.
    """
    width, height = size
    texture = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    x = 20
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(num_frames):
            for number, (start, stop) in enumerate(bursts):
                if start <= t < stop:
                    x += 4 if number % 2 == 0 else -4
            pixels = np.full((height, width, 3), 128, np.uint8)
            pixels[24:40, x : x + 16] = texture
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_select_keyframes_is_greedy_by_score_with_the_interval():
    scores = [0.0] * 60
    scores[5], scores[8], scores[30], scores[50], scores[55] = 9, 8, 7, 6, 5
    assert select_keyframes(scores, 3, 10) == [5, 30, 50]  # 8 lies within 10 of 5
    assert select_keyframes(scores, 2, 10) == [5, 30]
    assert select_keyframes([1.0, 1.0, 1.0], 1, 1) == [0]  # ties: earlier first


def test_select_keyframes_fill_to_count_keeps_room_for_all_k():
    scores = [0.0] * 41
    scores[10] = 5.0  # taking it would leave room for 2 frames in all, and 41 frames hold 3 that are 20 apart
    assert select_keyframes(scores, 3, 20, fill_to_count=True) == [0, 20, 40]
    assert select_keyframes(scores, 3, 20) == [10, 30]  # the paper's reading keeps the best frame, and gets fewer


def test_select_keyframes_fill_to_count_gives_fewer_only_when_the_video_cannot_hold_k():
    rng = random.Random(0)
    for _ in range(300):
        num_frames, interval, k = rng.randint(1, 80), rng.randint(1, 25), rng.randint(1, 7)
        frames = select_keyframes([rng.random() for _ in range(num_frames)], k, interval, fill_to_count=True)
        assert len(frames) == min(k, max_keyframes(num_frames, interval))
        assert all(b - a >= interval for a, b in zip(frames, frames[1:]))
    assert max_keyframes(120, 20) == 6 and max_keyframes(100, 20) == 5 and max_keyframes(0, 20) == 0


def test_select_keyframes_is_the_papers_non_maximum_suppression():
    rng = random.Random(1)
    for _ in range(300):
        num_frames, interval, k = rng.randint(1, 80), rng.randint(1, 25), rng.randint(1, 7)
        scores = [rng.random() for _ in range(num_frames)]
        frames = select_keyframes(scores, k, interval)
        assert 1 <= len(frames) <= k and all(b - a >= interval for a, b in zip(frames, frames[1:]))
        if len(frames) < k:  # every frame left out lies within the interval of a better kept one
            for index in set(range(num_frames)) - set(frames):
                assert any(abs(index - kept) < interval and scores[kept] >= scores[index] for kept in frames)


def test_carphone_key_frames_follow_the_motion_not_a_grid():
    require(VIDEOS)
    video = VIDEOS / "carphone_pristine.mp4"
    every = find_keyframes(video, KeyframeConfig(num_keyframes=120, min_interval=1))
    median = statistics.median(every.scores)
    paper = find_keyframes(video)
    assert paper.frames == [8, 31, 58, 82, 117] and min(paper.scores) > median  # 5 frames, all of them motion
    assert paper.note.startswith("5 of 6 key frames: every other frame is within 20 frames")
    filled = find_keyframes(video, KeyframeConfig(fill_to_count=True))  # the fixed-count variant: a near-grid
    assert filled.frames == [1, 21, 41, 61, 82, 117] and min(filled.scores) < median and filled.note is None


def test_the_analysis_runs_on_reproducible_opencv_and_gives_the_settings_back(tmp_path, monkeypatch):
    """OpenCV's optimised Farneback differs in its last bits with its buffers' addresses and its thread pool: a
    datatrove worker and the parent process wrote different rows for the same video (1 in 400)."""
    from wm_hub.bootstrap import keyframes as module

    seen = []
    flow, resize = cv2.calcOpticalFlowFarneback, cv2.resize

    def spy(function):
        return lambda *args, **kwargs: (
            seen.append((cv2.getNumThreads(), cv2.useOptimized())) or function(*args, **kwargs)
        )

    monkeypatch.setattr(module.cv2, "calcOpticalFlowFarneback", spy(flow))
    monkeypatch.setattr(module.cv2, "resize", spy(resize))
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(5)
        find_keyframes(write_video(tmp_path / "clip.mp4", 30, [(5, 12)], size=(320, 200)))  # resized for the flow
        assert cv2.getNumThreads() == 5 and cv2.useOptimized()
    finally:
        cv2.setNumThreads(threads)
    assert len(seen) > 30 and set(seen) == {(1, False)}


def test_keyframes_fall_inside_the_motion(tmp_path):
    video = write_video(tmp_path / "bursts.mp4", 240, BURSTS)
    keyframes = find_keyframes(video)
    assert keyframes.num_frames == 240 and keyframes.fps == 25.0 and keyframes.note is None
    assert len(keyframes.frames) == 6
    for frame, (start, stop) in zip(keyframes.frames, BURSTS):
        assert start <= frame < stop
    assert min(keyframes.scores) > 0.3  # mean over the frame (px per frame step) of the square's 4 px moves


def test_short_video_gives_fewer_keyframes_with_a_note(tmp_path):
    video = write_video(tmp_path / "short.mp4", 30, [(3, 8), (22, 26)])
    keyframes = find_keyframes(video)
    assert len(keyframes.frames) == 2 and keyframes.frames[1] - keyframes.frames[0] >= 20
    assert keyframes.note == "30 frames hold at most 2 key frames 20 frames apart (asked for 6)"
    images = read_frames(video, keyframes.frames)
    assert [image.size for image in images] == [(96, 64), (96, 64)]


def test_a_custom_estimator_decides_the_selection(tmp_path):
    video = write_video(tmp_path / "still.mp4", 60, size=(96, 64))
    known = {5: 9.0, 8: 8.0, 30: 7.0, 50: 6.0, 55: 5.0}
    calls = []

    def estimator(previous: np.ndarray, current: np.ndarray) -> float:
        calls.append((previous.shape, current.shape, current.dtype))
        return known.get(len(calls), 0.5)  # the n-th call scores frame n

    keyframes = find_keyframes(
        video, KeyframeConfig(num_keyframes=3, min_interval=10, max_side=48, estimator=estimator)
    )
    assert keyframes.frames == [5, 30, 50] and keyframes.scores == [9.0, 7.0, 6.0]
    assert len(calls) == 59 and set(calls) == {((32, 48), (32, 48), np.dtype(np.uint8))}  # grey, longer side 48


def test_read_frames_gives_full_resolution_frames_in_the_order_asked(tmp_path):
    video = write_video(tmp_path / "bursts.mp4", 40, [(10, 20)], size=(320, 192))
    late, early = read_frames(video, [30, 5])
    assert late.size == early.size == (320, 192) and late.mode == "RGB"
    assert np.abs(np.asarray(late, float) - np.asarray(early, float)).max() > 100  # the square moved
    assert np.array_equal(np.asarray(read_frames(video, [5])[0]), np.asarray(early))
    with pytest.raises(VideoDecodeError, match=r"bursts.mp4: has no frame\(s\) \[40\]"):
        read_frames(video, [39, 40])


def test_bad_files_raise_a_decode_error_naming_them(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    with pytest.raises(VideoDecodeError, match="notes.mp4: not a readable video") as error:
        find_keyframes(text)
    assert error.value.video == str(text)
    data = write_video(tmp_path / "whole.mp4", 60, [(10, 20)], faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # the index is whole, the frame data is not
    with pytest.raises(VideoDecodeError, match="cut.mp4: truncated or corrupt"):
        find_keyframes(cut)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        find_keyframes(tmp_path / "missing.mp4")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_writes_rows_and_images_and_reports_skips_then_resumes(tmp_path, capsys):
    folder = tmp_path / "videos"
    (folder / "walk").mkdir(parents=True)
    write_video(folder / "walk" / "good.mp4", 240, BURSTS)
    data = write_video(tmp_path / "whole.mp4", 60, [(10, 20)]).read_bytes()
    (folder / "walk" / "truncated.mp4").write_bytes(data[: int(len(data) * 0.3)])
    faststart = write_video(tmp_path / "faststart.mp4", 60, [(10, 20)], faststart=True).read_bytes()
    (folder / "cut.mp4").write_bytes(faststart[: int(len(faststart) * 0.6)])
    (folder / "readme.txt").write_text("not a video, not picked up: wrong extension")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    out = tmp_path / "out"

    assert main(["keyframes", str(folder), str(text), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary == {
        "keyframes": str(out / "keyframes.jsonl"),
        "videos": 1,
        "already_done": 0,
        "redone_missing_images": 0,
        "skipped": 3,
        "skipped_videos": str(out / "skipped.jsonl"),
        "without_pair": 0,
    }
    assert "Skipped 3 of 4 videos that could not be decoded" in captured.err
    skipped = _rows(out / "skipped.jsonl")
    assert sorted(Path(row["video"]).name for row in skipped) == ["cut.mp4", "notes.mp4", "truncated.mp4"]
    reasons = {Path(row["video"]).name: row["reason"] for row in skipped}
    assert reasons["cut.mp4"].startswith("truncated or corrupt")
    assert reasons["notes.mp4"].startswith("not a readable video")
    [row] = _rows(out / "keyframes.jsonl")
    assert row["video"] == str((folder / "walk" / "good.mp4").resolve())
    assert row["num_frames"] == 240 and row["fps"] == 25.0 and row["note"] is None
    assert [start <= frame < stop for frame, (start, stop) in zip(row["frames"], BURSTS)] == [True] * 6
    assert row["images"] == [f"walk/good/frame_{frame:06d}.png" for frame in row["frames"]]
    assert all((out / image).is_file() for image in row["images"]) and not list(out.rglob("*.tmp"))

    with (out / "keyframes.jsonl").open("a") as rows:
        rows.write('{"video": "/cut/short')  # a row torn by a crash
    assert main(["keyframes", str(folder), str(text), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 0 and summary["already_done"] == 1 and summary["skipped"] == 3
    assert _rows(out / "keyframes.jsonl") == [row]

    (out / row["images"][2]).unlink()  # an image deleted since: that video is done again, not counted as done
    assert main(["keyframes", str(folder), str(text), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["videos"], summary["already_done"], summary["redone_missing_images"]) == (1, 0, 1)
    assert _rows(out / "keyframes.jsonl") == [row] and all((out / image).is_file() for image in row["images"])


def test_a_video_with_fewer_than_two_key_frames_is_kept_and_counted_as_giving_no_pair(tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    still = write_video(tmp_path / "videos" / "still.mp4", 12)  # 12 frames hold one key frame 20 apart
    write_video(tmp_path / "videos" / "walk.mp4", 240, BURSTS)
    out = tmp_path / "out"
    assert main(["keyframes", str(tmp_path / "videos"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["without_pair"] == 1
    assert f"1 videos gave fewer than 2 key frames, no pair to label: {still.resolve()}" in captured.err
    assert sorted(len(row["frames"]) for row in _rows(out / "keyframes.jsonl")) == [1, 6]
    assert main(["keyframes", str(tmp_path / "videos"), "--out", str(out)]) == 0  # counted over the whole index
    assert json.loads(capsys.readouterr().out)["without_pair"] == 1


def test_cli_refuses_two_videos_writing_the_same_folder(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_video(tmp_path / name / "clip.mp4", 25)
    with pytest.raises(SystemExit, match="would both write"):
        main(["keyframes", str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4"), "--out", str(tmp_path)])
    assert not (tmp_path / "keyframes_config.json").exists()  # a refused run does not tie the folder to its settings
    out = tmp_path / "kf"
    with pytest.raises(SystemExit, match="would both write"):
        main(["keyframes", str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4"), "--out", str(out)])
    assert main(["keyframes", str(tmp_path / "a" / "clip.mp4"), "--out", str(out), "--num-keyframes", "2"]) == 0
    with pytest.raises(SystemExit, match="nothing.mp4: no such file or folder"):
        main(["keyframes", str(tmp_path / "nothing.mp4"), "--out", str(tmp_path)])


def test_cli_refuses_a_resume_with_other_settings_a_file_as_out_and_all_videos_broken(tmp_path, capsys):
    write_video(tmp_path / "clip.mp4", 60, [(10, 20)])
    out = tmp_path / "out"
    assert main(["keyframes", str(tmp_path / "clip.mp4"), "--out", str(out), "--num-keyframes", "2"]) == 0
    rows = (out / "keyframes.jsonl").read_text()
    for flag, value in (("--num-keyframes", "3"), ("--min-interval", "5"), ("--max-side", "64")):
        with pytest.raises(SystemExit, match=f"started with {flag} .*, now {value}"):
            main(["keyframes", str(tmp_path / "clip.mp4"), "--out", str(out), "--num-keyframes", "2", flag, value])
    assert (out / "keyframes.jsonl").read_text() == rows  # nothing mixed in
    settings = (out / "keyframes_config.json").read_text()
    (out / "keyframes_config.json").write_text(settings[:-5])  # cut short
    with pytest.raises(SystemExit, match="keyframes_config.json: not valid JSON"):
        main(["keyframes", str(tmp_path / "clip.mp4"), "--out", str(out), "--num-keyframes", "2"])
    (out / "keyframes_config.json").write_text(settings)
    with pytest.raises(SystemExit, match="is a file: give a folder"):
        main(["keyframes", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "clip.mp4")])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.mp4").write_text("not a video\n" * 20)
    with pytest.raises(SystemExit, match="none of the 1 videos could be decoded"):
        main(["keyframes", str(tmp_path / "broken"), "--out", str(tmp_path / "out-broken")])
    assert not (tmp_path / "out-broken" / "keyframes_config.json").exists()  # other settings may still start it
    assert main(["keyframes", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out-broken")]) == 0
    foreign = tmp_path / "a-dataset"  # e.g. a data-build or annotation folder given by mistake
    (foreign / "data").mkdir(parents=True)
    (foreign / "README.md").write_text("mine")
    with pytest.raises(SystemExit, match=r"--out .*a-dataset holds files and no key frames \(keyframes_config.json\)"):
        main(["keyframes", str(tmp_path / "clip.mp4"), "--out", str(foreign)])
    assert sorted(path.name for path in foreign.iterdir()) == ["README.md", "data"]
    kept = tmp_path / "kept"  # a folder kept in git by a hidden file is an empty one
    kept.mkdir()
    (kept / ".gitkeep").write_text("")
    assert main(["keyframes", str(tmp_path / "clip.mp4"), "--out", str(kept)]) == 0
    capsys.readouterr()


def test_cli_help_explains_keyframes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["keyframes", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: wm-hub keyframes" in text and "--min-interval" in text and "wm-hub keyframes UCF-101/" in text


def test_real_videos_get_six_keyframes_and_full_resolution_images(tmp_path, capsys):
    require(VIDEOS)
    truncated = tmp_path / "bikes_truncated.mp4"
    data = (VIDEOS / "bikes.mp4").read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.3)])
    assert main(["keyframes", str(VIDEOS), str(truncated), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 2 and summary["skipped"] == 1
    rows = {Path(row["video"]).name: row for row in _rows(tmp_path / "out" / "keyframes.jsonl")}
    expected = {"bikes.mp4": (250, (640, 272), 6), "carphone_pristine.mp4": (120, (176, 144), 5)}
    assert set(rows) == set(expected)
    for name, (num_frames, size, count) in expected.items():
        row = rows[name]
        assert row["num_frames"] == num_frames and len(row["frames"]) == count
        assert (row["note"] is None) == (count == 6)
        assert all(b - a >= 20 for a, b in zip(row["frames"], row["frames"][1:]))
        for image in row["images"]:
            with Image.open(tmp_path / "out" / image) as frame:
                assert frame.size == size
    [skip] = _rows(tmp_path / "out" / "skipped.jsonl")
    assert skip["video"] == str(truncated.resolve())


@pytest.mark.parametrize("pixel_format", ["rgb24", "bgr24", "rgba", "bgra", "bgr0"])
def test_packed_rgb_frames_are_read_as_ffmpeg_reads_their_luma(pixel_format):
    # packed RGB (the sandbox videos are FFV1 bgr0) is converted by OpenCV, not by a scaler built for every frame
    from wm_hub.bootstrap.keyframes import _grey

    channels = 3 if pixel_format.endswith("24") else 4
    pixels = np.random.default_rng(1).integers(0, 256, (30, 44, channels), dtype=np.uint8)
    if pixel_format == "bgr0":
        frame = av.VideoFrame.from_ndarray(pixels, format="bgra").reformat(format="bgr0")
    else:
        frame = av.VideoFrame.from_ndarray(pixels, format=pixel_format)
    assert frame.format.name == pixel_format
    expected = frame.to_ndarray(format="gray").astype(int)
    grey = _grey(frame, (44, 30))
    assert grey.shape == (30, 44) and grey.dtype == np.uint8
    assert np.abs(grey.astype(int) - expected).max() <= 1


def test_the_default_flow_scores_a_repeated_frame_zero_without_running(monkeypatch):
    from wm_hub.bootstrap import keyframes as module

    frame = np.random.default_rng(2).integers(0, 256, (32, 48), dtype=np.uint8)
    moved = np.roll(frame, 3, axis=1)
    assert module.FarnebackFlow()(frame, moved) > 0.5
    monkeypatch.setattr(module.cv2, "calcOpticalFlowFarneback", lambda *args: pytest.fail("ran the flow"))
    assert module.FarnebackFlow()(frame, frame.copy()) == 0.0


@pytest.fixture(scope="module")
def video_tree(tmp_path_factory):
    """Five generated videos in two class folders and a file that is not a video."""
    root = tmp_path_factory.mktemp("tree")
    for index in range(5):
        folder = root / ("run" if index % 2 else "jump")
        folder.mkdir(exist_ok=True)
        bursts = [(5 + 7 * index, 10 + 7 * index), (40 + 3 * index, 44 + 3 * index)]
        write_video(folder / f"clip{index}.mp4", 70 + 10 * index, bursts)
    (root / "jump" / "broken.mp4").write_bytes(b"not a video at all")
    return root


def _folder_contents(out: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.parts[len(out.parts)] not in ("shards", ".datatrove")
    }


def test_datatrove_tasks_write_what_one_process_writes_and_report_the_corrupt_video(video_tree, tmp_path, capsys):
    assert main(["keyframes", str(video_tree), "--out", str(tmp_path / "one")]) == 0
    one = json.loads(capsys.readouterr().out)
    args = ["--executor", "local", "--tasks", "3", "--workers", "2"]
    assert main(["keyframes", str(video_tree), "--out", str(tmp_path / "tasks"), *args]) == 0
    tasks = json.loads(capsys.readouterr().out)
    assert one["videos"] == tasks["videos"] == 5 and one["skipped"] == tasks["skipped"] == 1
    assert _folder_contents(tmp_path / "one") == _folder_contents(tmp_path / "tasks")  # row for row, image for image
    [skip] = _rows(tmp_path / "tasks" / "skipped.jsonl")
    assert skip["video"].endswith("broken.mp4")
    assert main(["keyframes", str(video_tree), "--out", str(tmp_path / "tasks"), *args]) == 0  # only the broken
    again = json.loads(capsys.readouterr().out)  # one is tried again, as one process does
    assert (again["already_done"], again["videos"], again["skipped"]) == (5, 0, 1)


def test_a_killed_datatrove_run_resumes_and_does_every_video_once(video_tree, tmp_path, monkeypatch):
    from wm_hub.bootstrap import keyframe_pipeline, keyframes
    from wm_hub.bootstrap.keyframe_pipeline import keyframe_runner
    from wm_hub.bootstrap.keyframes import KeyframeExtractionConfig, extract_keyframes

    config = KeyframeExtractionConfig(out=str(tmp_path / "out"), videos=[str(video_tree)], executor="local", tasks=2)
    config.workers = 1  # in this process, so that the kill below is seen
    calls: list[str] = []
    real = keyframes.process_video

    def dies_on_the_fourth(video, *args):
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        calls.append(video)
        return real(video, *args)

    monkeypatch.setattr(keyframe_pipeline, "process_video", dies_on_the_fourth)
    with pytest.raises((RuntimeError, KeyboardInterrupt)):
        extract_keyframes(config, keyframe_runner(config))
    assert not (tmp_path / "out" / "keyframes.jsonl").exists() or not _rows(tmp_path / "out" / "keyframes.jsonl")
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(
        keyframe_pipeline, "process_video", lambda video, *args: (calls.append(video), real(video, *args))[1]
    )
    summary = extract_keyframes(config, keyframe_runner(config))
    assert summary["videos"] == 5 and summary["skipped"] == 1
    assert sorted(first + calls) == sorted({*first, *calls}) and len(first) + len(calls) == 6  # each video once
    assert [row["video"] for row in _rows(tmp_path / "out" / "keyframes.jsonl")] == sorted(
        str(path.resolve()) for path in video_tree.rglob("clip*.mp4")
    )


def test_ray_tasks_write_what_one_process_writes_and_report_the_corrupt_video(video_tree, tmp_path, capsys):
    assert main(["keyframes", str(video_tree), "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    import ray

    args = ["--executor", "ray", "--tasks", "3", "--workers", "2"]
    try:
        assert main(["keyframes", str(video_tree), "--out", str(tmp_path / "ray"), *args]) == 0  # a local cluster
    finally:
        ray.shutdown()
    summary = json.loads(capsys.readouterr().out)
    assert (summary["videos"], summary["skipped"]) == (5, 1)
    assert _folder_contents(tmp_path / "one") == _folder_contents(tmp_path / "ray")
    [skip] = _rows(tmp_path / "ray" / "skipped.jsonl")
    assert skip["video"].endswith("broken.mp4")


@pytest.fixture()
def fake_slurm(tmp_path, monkeypatch):
    return install_fake_slurm(tmp_path, monkeypatch)


def test_slurm_submits_resubmits_the_killed_tasks_then_merges_what_one_process_writes(
    video_tree, tmp_path, capsys, monkeypatch, fake_slurm
):
    assert main(["keyframes", str(video_tree), "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    command = ["keyframes", str(video_tree), "--out", str(tmp_path / "slurm"), "--executor", "slurm", "--tasks", "3"]
    command += ["--slurm-partition", "cpu"]
    monkeypatch.setenv("FAKE_SLURM_ONLY", "1")  # tasks 0 and 2 die
    assert main(command) == 0
    submitted = json.loads(capsys.readouterr().out)
    assert submitted["pending"]["state"] == "submitted" and submitted["pending"]["slurm_job"] == "4242"
    assert submitted["videos"] == 6 and not (tmp_path / "slurm" / "keyframes.jsonl").exists()
    monkeypatch.delenv("FAKE_SLURM_ONLY")
    monkeypatch.setenv("FAKE_SQUEUE_RUNNING", "1")  # still listed by squeue: report, submit nothing
    assert main(command) == 0
    running = json.loads(capsys.readouterr().out)["pending"]
    assert (running["state"], running["tasks_done"], running["tasks"]) == ("running", 1, 3)
    monkeypatch.delenv("FAKE_SQUEUE_RUNNING")  # the job is over: the two dead tasks are submitted again
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)["pending"]["state"] == "submitted"
    assert main(command) == 0  # every task done: merged
    summary = json.loads(capsys.readouterr().out)
    assert (summary["videos"], summary["skipped"]) == (5, 1)
    assert _folder_contents(tmp_path / "one") == _folder_contents(tmp_path / "slurm")
    jobs = [line.split()[-1] for line in fake_slurm.read_text().splitlines() if "RUN_OFFSET" in line]  # not stats
    assert jobs == ["array=0-2", "array=0-1"]  # 3 tasks, then the 2 that died (datatrove renumbers them)
    shards = [row["video"] for path in (tmp_path / "slurm" / "shards").glob("*.jsonl") for row in _rows(path)]
    assert len(shards) == len(set(shards)) == 6  # every video (the broken one too) done exactly once


def test_slurm_without_a_partition_or_sbatch_is_one_clear_error(video_tree, tmp_path, monkeypatch):
    command = ["keyframes", str(video_tree), "--out", str(tmp_path / "s"), "--executor", "slurm", "--tasks", "2"]
    with pytest.raises(SystemExit, match="--slurm-partition"):
        main(command)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    with pytest.raises(SystemExit, match="sbatch"):
        main([*command, "--slurm-partition", "cpu"])


@pytest.mark.parametrize("entry", [5, None, "  ", ["a.mp4"]])
def test_a_recipe_video_entry_that_is_not_a_path_is_named(tmp_path, entry):
    recipe = tmp_path / "keyframes.yaml"
    recipe.write_text(json.dumps({"videos": ["a.mp4", entry], "out": str(tmp_path / "out")}))
    with pytest.raises(SystemExit, match=r"videos\[1\]: a video file or folder path is needed"):
        main(["keyframes", "--config", str(recipe)])
    assert not (tmp_path / "out").exists()

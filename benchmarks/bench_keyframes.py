"""CPU benchmark of key-frame selection: wm-hub's reduced-resolution flow against straightforward full-resolution flow.

For each video (default: ``bikes.mp4`` and ``carphone_pristine.mp4`` of ``../shared/data/videos``) it times, in
round-robin order after a warm-up (median of ``--repeats``):

- **reference**: the straightforward version, every frame decoded to BGR at full resolution, converted to grey with
  OpenCV, Farneback flow (OpenCV's tutorial parameters, the same as :class:`FarnebackFlow`) on every pair of
  consecutive frames, mean magnitude per frame, and the same selection rule (:func:`select_keyframes`);
- **wm-hub** at each ``--max-sides`` setting: :func:`find_keyframes` (luma plane, area-downscaled so the longer
  side is at most ``max_side``, same Farneback parameters); the default setting is the headline;
- **extraction**: :func:`read_frames` of the default setting's key frames at full resolution (the second pass).

It reports frames/s, x real time (video seconds per wall second), the speed-up over the reference, and how many of
the reference's key frames wm-hub also selects within +-2 frames (``match``). Only ratios within one run compare
well on a shared machine. Usage::

    .venv/bin/python benchmarks/bench_keyframes.py [--videos V.mp4 ...] [--max-sides 320 240 160 128 96]
        [--repeats 3] [--out benchmarks/results/keyframes_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from wm_hub.bootstrap.keyframes import (
    FarnebackFlow,
    KeyframeConfig,
    find_keyframes,
    read_frames,
    select_keyframes,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
VIDEOS = REPO_ROOT.parent / "shared" / "data" / "videos"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "keyframes_cpu.json"
DEFAULT = KeyframeConfig()
TOLERANCE = 2  # frames


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--videos", nargs="+", type=Path, default=[VIDEOS / "bikes.mp4", VIDEOS / "carphone_pristine.mp4"]
    )
    parser.add_argument("--max-sides", nargs="+", type=int, default=[320, 240, 160, 128, 96], help="wm-hub settings.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds (medians are reported).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    return parser.parse_args()


def reference_keyframes(video: Path, config: KeyframeConfig) -> list[int]:
    """The straightforward full-resolution selection: BGR decode, OpenCV grey, Farneback on every frame."""
    flow = FarnebackFlow()
    scores, previous = [], None
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            grey = cv2.cvtColor(frame.to_ndarray(format="bgr24"), cv2.COLOR_BGR2GRAY)
            scores.append(0.0 if previous is None else flow(previous, grey))
            previous = grey
    return select_keyframes(scores, config.num_keyframes, config.min_interval)


def match_rate(reference: list[int], frames: list[int]) -> float:
    """Share of ``reference`` frames with a frame of ``frames`` within ``TOLERANCE`` frames."""
    return sum(any(abs(a - b) <= TOLERANCE for b in frames) for a in reference) / len(reference)


def interleaved_timings(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[dict[str, float], Any]]:
    """Median, min and max seconds of each case, timed round-robin after one warm-up call each.

    Returns:
        Per case: the timings and what the warm-up call returned.
    """
    results = {name: fn() for name, fn in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: ({"median_s": statistics.median(values), "min_s": min(values), "max_s": max(values)}, results[name])
        for name, values in times.items()
    }


def bench_video(video: Path, max_sides: list[int], repeats: int) -> dict[str, Any]:
    """Timings, throughput and selections of the reference and of every wm-hub setting on one video."""
    info = find_keyframes(video, DEFAULT)
    cases: dict[str, Callable[[], Any]] = {"reference": lambda: reference_keyframes(video, DEFAULT)}
    for side in max_sides:
        config = KeyframeConfig(max_side=side)
        cases[f"max_side={side}"] = lambda config=config: find_keyframes(video, config).frames
    cases["extraction"] = lambda: read_frames(video, info.frames)
    timings = interleaved_timings(cases, repeats)
    reference_s, reference = timings["reference"][0]["median_s"], timings["reference"][1]
    duration = info.num_frames / info.fps
    results = {}
    for name, (timing, output) in timings.items():
        seconds = timing["median_s"]
        row = {
            **timing,
            "frames_per_s": info.num_frames / seconds,
            "x_real_time": duration / seconds,
            "speedup": reference_s / seconds,
        }
        if name != "extraction":
            row["frames"] = output
        if name.startswith("max_side="):
            row["match"] = match_rate(reference, output)
        results[name] = row
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        size = [stream.codec_context.width, stream.codec_context.height]
    return {"num_frames": info.num_frames, "fps": info.fps, "size": size, "cases": results}


def print_table(name: str, result: dict[str, Any]) -> None:
    width, height = result["size"]
    print(f"\n{name}: {width}x{height}, {result['num_frames']} frames at {result['fps']:.2f} fps")
    print(f"{'case':<16}{'median s':>10}{'frames/s':>10}{'x real':>9}{'speed-up':>10}{'match':>7}  frames")
    for case, row in result["cases"].items():
        match = f"{row['match']:.2f}" if "match" in row else "-"
        frames = row.get("frames", "(full-resolution images of the default's key frames)")
        print(
            f"{case:<16}{row['median_s']:>10.3f}{row['frames_per_s']:>10.1f}{row['x_real_time']:>9.2f}"
            f"{row['speedup']:>10.1f}{match:>7}  {frames}"
        )


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def main() -> None:
    args = parse_args()
    missing = [str(video) for video in args.videos if not video.is_file()]
    if missing:
        raise SystemExit(f"error: no such video(s): {', '.join(missing)} (the samples live in ../shared/data)")
    payload: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "opencv_threads": cv2.getNumThreads(),
            "opencv": cv2.__version__,
            "pyav": av.__version__,
            "numpy": np.__version__,
        },
        "selection": {
            "num_keyframes": DEFAULT.num_keyframes,
            "min_interval": DEFAULT.min_interval,
            "match_tolerance_frames": TOLERANCE,
        },
        "default_setting": f"max_side={DEFAULT.max_side}",
        "trade_off": "max_side sets the frame size the flow runs on: flow cost falls with the pixel count, and "
        "decoding (always full resolution for H.264) becomes the floor. Small frames lose fine motion, so scores "
        "drift from the full-resolution ones and near-tied frames can swap; a key frame that moves a few frames "
        "within the same motion still counts as a match within the tolerance.",
        "videos": {},
    }
    for video in args.videos:
        payload["videos"][video.name] = result = bench_video(video, args.max_sides, args.repeats)
        print_table(video.name, result)
        default = result["cases"][payload["default_setting"]]
        payload.setdefault("headline", {})[video.name] = {
            key: default[key] for key in ("frames_per_s", "x_real_time", "speedup", "match")
        } | {"reference_frames_per_s": result["cases"]["reference"]["frames_per_s"]}
        write_json(args.out, payload)
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()

"""``wm-hub keyframes``: the motion key frames of videos, saved as images."""

from __future__ import annotations

import argparse
import json
import sys

from wm_hub.cli._tasks import Task


def _keyframes(config) -> int:
    from wm_hub.bootstrap.keyframes import extract_keyframes

    runner = None
    if config.executor is not None:
        from wm_hub.bootstrap.keyframe_pipeline import keyframe_runner  # imports datatrove: only when asked for

        runner = keyframe_runner(config)
    try:
        summary = extract_keyframes(config, runner)
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # RuntimeError: a task or the scheduler failed
        raise SystemExit(f"error: {error}") from None
    if "pending" in summary:
        from wm_hub.bootstrap.executors import pending_message

        print(pending_message(summary["pending"]), file=sys.stderr)
        print(json.dumps(summary, indent=2))
        return 0
    skipped = summary.pop("skipped_rows")
    if skipped:
        listing = "; ".join(f"{row['video']} ({row['reason']})" for row in skipped)
        done = summary["videos"] + len(skipped)
        print(f"Skipped {len(skipped)} of {done} videos that could not be decoded: {listing}", file=sys.stderr)
    without_pair = summary.pop("without_pair_videos")
    if without_pair:
        listing = "; ".join(without_pair[:5]) + (
            f"; and {len(without_pair) - 5} more" if len(without_pair) > 5 else ""
        )
        print(f"{len(without_pair)} videos gave fewer than 2 key frames, no pair to label: {listing}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.bootstrap.keyframes import KeyframeExtractionConfig

    return (KeyframeExtractionConfig,)


def _videos(parser: argparse.ArgumentParser) -> None:
    """The videos as positional arguments too (``wm-hub keyframes a.mp4 dir/ --out x``), what --videos takes."""
    parser.add_argument(
        "videos", nargs="*", default=argparse.SUPPRESS, metavar="VIDEO_OR_DIR", help="the videos, as --videos takes"
    )


TASKS = (
    Task(
        words=("keyframes",),
        help="select the motion key frames of videos (optical flow) and save them as images",
        configs=_configs,
        run=_keyframes,
        arguments=_videos,
        description="Motion key frames of videos, the frames whose consecutive pairs become (source, target) "
        "pairs.\n\n"
        "For each video (folders are searched recursively for video files), every frame is scored by the mean "
        "optical-flow magnitude (Farneback) from the frame before, on frames downscaled to --max-side; the "
        "--num-keyframes highest-scoring frames at least --min-interval frames apart are kept, in temporal order "
        "(the paper's K_f=6, I_f=20; a video too short for them gets fewer, and a note says so).\n\n"
        "Writes one row per video to OUT/keyframes.jsonl (video, fps, num_frames, frames, scores, note, images) "
        "and the key frames at full resolution as OUT/<name>/frame_<index>.png, <name> being the video's path "
        "under the folder given, or its file name. Videos that cannot be decoded are skipped, counted and listed "
        "in OUT/skipped.jsonl. Rerunning resumes: videos already in keyframes.jsonl are not redone. In a "
        "--config YAML, videos is a list.",
        epilog="examples:\n"
        "  wm-hub keyframes UCF-101/ --out ucf101-keyframes\n"
        "  wm-hub keyframes UCF-101/ --out ucf101-keyframes --executor local --tasks 8 --workers 2   # datatrove\n"
        "  wm-hub keyframes UCF-101/ --out ucf101-keyframes --executor ray --tasks 64 --workers 32\n"
        "  wm-hub keyframes UCF-101/ --out ucf101-keyframes --executor slurm --tasks 256 --slurm-partition cpu \\\n"
        "      --slurm-env-command 'source .venv/bin/activate'   # submits; rerun the same command to merge\n"
        "  wm-hub keyframes clip1.mp4 clip2.mp4 --out keyframes --num-keyframes 4 --min-interval 10",
    ),
)

"""Key frames of many videos spread over processes or machines with ``datatrove`` (``wm-hub keyframes --executor``).

The videos still to do are split over ``tasks`` datatrove tasks (task ``r`` takes every ``tasks``-th video from
``r``, in sorted order), run by :func:`wm_hub.bootstrap.executors.run_tasks` (local processes, Ray or Slurm).
Each task writes its rows to ``OUT/shards/keyframes-<r>.jsonl`` (append-only, a torn last line repaired, videos already
in it not redone) and its undecodable videos to ``OUT/shards/skipped-<r>.jsonl``; datatrove records finished tasks
under ``OUT/.datatrove/<plan>`` and a rerun skips them. When every task is done, the shards are merged into
``OUT/keyframes.jsonl`` and ``OUT/skipped.jsonl`` in the order one process writes them, so the folder is the one
``wm-hub keyframes`` writes without an executor, row for row, and ``wm-hub annotate`` reads it as it is.

``<plan>`` is a hash of the videos to do, the selection settings and ``tasks``: a rerun with the same ones resumes,
and adding videos makes a new plan rather than reusing finished-task records for another split.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep

from wm_hub.atomic_io import read_jsonl_log
from wm_hub.bootstrap.executors import run_tasks
from wm_hub.bootstrap.keyframes import KeyframeConfig, KeyframeExtractionConfig, VideoRunner, process_video

SHARDS = "shards"


class KeyframeTask(PipelineStep):
    """One datatrove task's share of the videos: key frames found, images saved, rows appended to its shard.

    Args:
        videos: ``(video path, image folder under out)`` of every video to do, in order.
        out: The output folder.
        selection: How key frames are chosen.
    """

    name = "wm-hub key frames"
    type = "📹 - VIDEO"

    def __init__(self, videos: list[tuple[str, str]], out: str, selection: KeyframeConfig):
        super().__init__()
        self.videos, self.out, self.selection = videos, out, selection

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        """Process this rank's videos (datatrove's entry point); yields nothing."""
        out = Path(self.out)
        rows_path, skipped_path = shard_paths(out, rank)
        done = {row["video"] for path in (rows_path, skipped_path) for row in read_jsonl_log(path)}
        mine = self.videos[rank::world_size]
        with rows_path.open("a") as rows, skipped_path.open("a") as skipped:
            for video, folder in mine:
                if video in done:
                    continue
                with self.track_time(unit="video"):
                    row, reason = process_video(video, Path(folder), out, self.selection)
                if row is None:
                    skipped.write(json.dumps({"video": video, "reason": reason}) + "\n")
                    skipped.flush()
                    self.stat_update("skipped")
                else:
                    rows.write(json.dumps(row) + "\n")  # images first, then the row
                    rows.flush()
                    self.stat_update("videos")
        yield from ()


def shard_paths(out: Path, rank: int) -> tuple[Path, Path]:
    """The rows and skipped-videos shards of task ``rank``."""
    folder = out / SHARDS
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"keyframes-{rank:05d}.jsonl", folder / f"skipped-{rank:05d}.jsonl"


def keyframe_runner(config: KeyframeExtractionConfig) -> VideoRunner:
    """The :func:`~wm_hub.bootstrap.keyframes.extract_keyframes` runner of ``config.executor``."""

    def run(videos: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        return run_keyframe_tasks(videos, config)

    return run


def run_keyframe_tasks(
    videos: list[tuple[str, str]], config: KeyframeExtractionConfig
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Run the key-frame tasks on ``config.executor`` and read back every row and skipped video, in ``videos`` order.

    Args:
        videos: ``(video, image folder)`` of the videos to do.
        config: The output folder, the selection, ``tasks``, ``workers`` and the executor's settings.

    Returns:
        The new index rows and the skipped videos, in the order of ``videos``.

    Raises:
        TasksPending: Slurm tasks were submitted, or are still queued or running.
        RuntimeError: A task failed (its log is named), or Slurm's commands are missing.
    """
    out = Path(config.out)
    selection = config.selection
    settings = {name: getattr(selection, name) for name in ("num_keyframes", "min_interval", "max_side")}
    settings["fill_to_count"] = selection.fill_to_count
    plan = hashlib.sha256(json.dumps([videos, settings, config.tasks], sort_keys=True).encode()).hexdigest()[:12]
    logs = out / ".datatrove" / plan
    run_tasks([KeyframeTask(videos, str(out), selection)], config, logs, "wm-hub-keyframes")
    rows: dict[str, dict[str, Any]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for rank in range(config.tasks):
        rows_path, skipped_path = shard_paths(out, rank)
        rows.update((row["video"], row) for row in read_jsonl_log(rows_path))
        skipped.update((row["video"], row) for row in read_jsonl_log(skipped_path))
    order = [video for video, _ in videos]
    return [rows[v] for v in order if v in rows], [skipped[v] for v in order if v in skipped]

"""Key frames of many videos spread over processes with ``datatrove`` (``wm-hub keyframes --executor local``).

The videos still to do are split over ``tasks`` datatrove tasks (task ``r`` takes every ``tasks``-th video from
``r``, in sorted order), run by ``workers`` processes of a :class:`datatrove.executor.LocalPipelineExecutor`. Each
task writes its rows to ``OUT/shards/keyframes-<r>.jsonl`` (append-only, a torn last line repaired, videos already
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

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep

from wm_hub.atomic_io import read_jsonl_log
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
    """The :func:`~wm_hub.bootstrap.keyframes.extract_keyframes` runner of ``config.executor`` (``local``)."""
    workers = config.workers or config.tasks

    def run(videos: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        return run_keyframe_tasks(videos, Path(config.out), config.selection, config.tasks, workers)

    return run


def run_keyframe_tasks(
    videos: list[tuple[str, str]], out: Path, selection: KeyframeConfig, tasks: int, workers: int
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Run the key-frame tasks on a local executor and read back every row and skipped video, in ``videos`` order.

    Args:
        videos: ``(video, image folder)`` of the videos to do.
        out: The output folder.
        selection: How key frames are chosen.
        tasks: datatrove tasks (shares of the videos).
        workers: Processes running them at once.

    Returns:
        The new index rows and the skipped videos, in the order of ``videos``.

    Raises:
        RuntimeError: A task failed (its log is named).
    """
    settings = {name: getattr(selection, name) for name in ("num_keyframes", "min_interval", "max_side")}
    settings["fill_to_count"] = selection.fill_to_count
    plan = hashlib.sha256(json.dumps([videos, settings, tasks], sort_keys=True).encode()).hexdigest()[:12]
    logs = out / ".datatrove" / plan
    executor = LocalPipelineExecutor(
        pipeline=[KeyframeTask(videos, str(out), selection)],
        tasks=tasks,
        workers=workers,
        logging_dir=str(logs),
        start_method="spawn",
    )
    executor.run()
    incomplete = executor.get_incomplete_ranks(range(tasks), skip_completed=True)
    if incomplete:
        raise RuntimeError(f"key-frame tasks {incomplete} did not finish: see {logs / 'logs'}")
    rows: dict[str, dict[str, Any]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for rank in range(tasks):
        rows_path, skipped_path = shard_paths(out, rank)
        rows.update((row["video"], row) for row in read_jsonl_log(rows_path))
        skipped.update((row["video"], row) for row in read_jsonl_log(skipped_path))
    order = [video for video, _ in videos]
    return [rows[v] for v in order if v in rows], [skipped[v] for v in order if v in skipped]

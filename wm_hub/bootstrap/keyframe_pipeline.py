"""Key frames of many videos spread over processes or machines with ``datatrove`` (``wm-hub keyframes --executor``).

The videos still to do are split over ``tasks`` datatrove tasks (task ``r`` takes every ``tasks``-th video from
``r``, in sorted order), run by one of datatrove's executors:

- ``local``: ``workers`` processes of this machine (:class:`datatrove.executor.LocalPipelineExecutor`);
- ``ray``: ``workers`` tasks at once on the Ray cluster that ``ray.init()`` finds, or a local one
  (:class:`datatrove.executor.RayPipelineExecutor`; ``pip install ray``);
- ``slurm``: one Slurm array job of ``tasks`` tasks, ``workers`` at once (:class:`datatrove.executor.
  SlurmPipelineExecutor`). Submitting returns at once; rerun the same command: while the job is queued or
  running it reports how many tasks are done, once it is over it merges (or submits again the tasks that did not
  finish, e.g. a job killed at its time limit).

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
import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

from datatrove.executor import LocalPipelineExecutor, RayPipelineExecutor, SlurmPipelineExecutor
from datatrove.executor.base import PipelineExecutor
from datatrove.pipeline.base import PipelineStep

from wm_hub.atomic_io import read_jsonl_log, write_json
from wm_hub.bootstrap.keyframes import (
    KeyframeConfig,
    KeyframeExtractionConfig,
    TasksPending,
    VideoRunner,
    process_video,
)

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
    executor = build_executor([KeyframeTask(videos, str(out), selection)], config, logs)
    ranks = range(config.tasks)
    if config.executor == "slurm":
        _run_on_slurm(executor, logs, config.tasks)
    else:
        executor.run()
    incomplete = executor.get_incomplete_ranks(ranks, skip_completed=True)
    if incomplete:
        raise RuntimeError(f"key-frame tasks {incomplete} did not finish: see {logs / 'logs'}")
    rows: dict[str, dict[str, Any]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for rank in ranks:
        rows_path, skipped_path = shard_paths(out, rank)
        rows.update((row["video"], row) for row in read_jsonl_log(rows_path))
        skipped.update((row["video"], row) for row in read_jsonl_log(skipped_path))
    order = [video for video, _ in videos]
    return [rows[v] for v in order if v in rows], [skipped[v] for v in order if v in skipped]


def build_executor(pipeline: list[PipelineStep], config: KeyframeExtractionConfig, logs: Path) -> PipelineExecutor:
    """The datatrove executor of ``config.executor``: ``pipeline`` as ``config.tasks`` tasks, logs in ``logs``."""
    workers = config.workers or config.tasks
    if config.executor == "local":
        return LocalPipelineExecutor(
            pipeline=pipeline, tasks=config.tasks, workers=workers, logging_dir=str(logs), start_method="spawn"
        )
    if config.executor == "ray":
        if importlib.util.find_spec("ray") is None:
            raise RuntimeError("--executor ray needs Ray: pip install 'wm-hub[ray]' (or ray)")
        return RayPipelineExecutor(
            pipeline=pipeline,
            tasks=config.tasks,
            workers=workers,
            logging_dir=str(logs),
            cpus_per_task=config.cpus_per_task,
            mem_per_cpu_gb=config.mem_per_cpu_gb,
        )
    return SlurmPipelineExecutor(
        pipeline=pipeline,
        tasks=config.tasks,
        workers=config.workers or -1,
        time=config.slurm_time,
        partition=config.slurm_partition,
        cpus_per_task=config.cpus_per_task,
        mem_per_cpu_gb=config.mem_per_cpu_gb,
        job_name="wm-hub-keyframes",
        env_command=config.slurm_env_command,
        logging_dir=str(logs),
    )


def _run_on_slurm(executor: SlurmPipelineExecutor, logs: Path, tasks: int) -> None:
    """Return when every task is complete; otherwise report the job still running, or submit the unfinished tasks."""
    incomplete = executor.get_incomplete_ranks(range(tasks), skip_completed=True)
    if not incomplete:
        return
    record = logs / "slurm_job.json"
    status = {"executor": "slurm", "tasks": tasks, "tasks_done": tasks - len(incomplete), "logs": str(logs)}
    if record.is_file():
        job = json.loads(record.read_text())["job_id"]
        if _slurm_job_queued_or_running(job):
            raise TasksPending({**status, "slurm_job": job, "state": "running"})
    try:
        executor.run()
    except FileNotFoundError as error:
        raise RuntimeError(f"--executor slurm needs Slurm's sbatch on PATH ({error})") from None
    write_json(record, {"job_id": executor.job_id, "ranks": incomplete})
    raise TasksPending({**status, "slurm_job": executor.job_id, "state": "submitted"})


def _slurm_job_queued_or_running(job: str) -> bool:
    """Whether ``squeue`` still lists any task of Slurm job ``job`` (a finished job is no longer listed)."""
    try:
        listed = subprocess.run(["squeue", "--noheader", "--jobs", str(job)], capture_output=True, text=True)
    except FileNotFoundError as error:
        raise RuntimeError(f"--executor slurm needs Slurm's squeue on PATH ({error})") from None
    return listed.returncode == 0 and bool(listed.stdout.strip())

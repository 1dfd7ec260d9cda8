"""datatrove executors for the data side: key frames and IDM annotation spread over processes, a Ray cluster or Slurm.

:class:`ExecutorOptions` are the command-line options both ``wm-hub keyframes`` and ``wm-hub annotate`` take
(``--executor local|ray|slurm --tasks N --workers W`` and the scheduler's settings); :func:`run_tasks` runs a
pipeline of datatrove steps as ``tasks`` tasks on the chosen executor and returns once every task is complete:

- ``local``: ``workers`` processes of this machine (:class:`datatrove.executor.LocalPipelineExecutor`);
- ``ray``: ``workers`` tasks at once on the Ray cluster that ``ray.init()`` finds, or a local one
  (:class:`datatrove.executor.RayPipelineExecutor`; ``pip install 'wm-hub[ray]'``);
- ``slurm``: one Slurm array job of ``tasks`` tasks, ``workers`` at once
  (:class:`datatrove.executor.SlurmPipelineExecutor`). Submitting returns at once (:class:`TasksPending`); rerun
  the same command: while ``squeue`` lists the job it reports how many tasks are done, once the job is over it
  returns (every task complete) or submits again the tasks that did not finish (time limit, node failure).

datatrove records each finished task under the logging folder, so a killed run rerun with the same plan redoes only
the unfinished tasks. datatrove is imported only when tasks run: the options load without it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wm_hub.atomic_io import write_json

EXECUTORS = ("local", "ray", "slurm")


class TasksPending(Exception):
    """The tasks were handed to a scheduler and are not all done yet (``--executor slurm``).

    Attributes:
        status: ``executor``, ``state`` (``submitted`` or ``running``), ``tasks``, ``tasks_done``, ``slurm_job``
            and ``logs`` (the datatrove logging folder).
    """

    def __init__(self, status: dict[str, Any]):
        super().__init__(f"{status['tasks_done']} of {status['tasks']} tasks done ({status['state']})")
        self.status = status


@dataclass(kw_only=True)
class ExecutorOptions:
    """Where datatrove runs the tasks (left out: everything in this process).

    Args:
        executor: ``local`` processes, a ``ray`` cluster or a ``slurm`` array job (submitted: rerun the command to
            merge once it is over); ``None`` works in this process.
        tasks: datatrove tasks (shares of the work) with an executor.
        workers: Tasks running at once (default: every task).
        cpus_per_task: CPUs of each Ray or Slurm task.
        gpus_per_task: GPUs of each Ray or Slurm task.
        mem_per_cpu_gb: Memory per CPU of each Ray or Slurm task, in GB.
        slurm_partition: The Slurm partition (required with ``slurm``).
        slurm_time: Time limit of each Slurm task (``HH:MM:SS``).
        slurm_env_command: Shell command run before each Slurm task, e.g. ``source .venv/bin/activate``.
    """

    executor: Literal["local", "ray", "slurm"] | None = None
    tasks: int = 1
    workers: int | None = None
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem_per_cpu_gb: float = 2.0
    slurm_partition: str | None = None
    slurm_time: str = "04:00:00"
    slurm_env_command: str | None = None

    def __post_init__(self):
        if self.executor not in (None, *EXECUTORS):
            raise ValueError(
                f"executor must be one of {', '.join(EXECUTORS)} (or left out for one process), got {self.executor!r}"
            )
        if self.tasks < 1 or (self.workers is not None and self.workers < 1):
            raise ValueError(f"tasks and workers must be >= 1, got {self.tasks} and {self.workers}")
        if self.executor == "slurm" and not self.slurm_partition:
            raise ValueError("--executor slurm needs --slurm-partition (the partition the array job is queued on)")


def run_tasks(pipeline: list[Any], options: ExecutorOptions, logs: Path, job_name: str) -> None:
    """Run ``pipeline`` (datatrove steps) as ``options.tasks`` tasks on ``options.executor``, logging in ``logs``.

    Returns once every task is complete (a rerun with the same ``logs`` skips the complete ones).

    Raises:
        TasksPending: Slurm tasks were submitted, or are still queued or running.
        RuntimeError: A task failed (its log is named), or the executor's software is missing.
    """
    executor = _build(pipeline, options, logs, job_name)
    ranks = range(options.tasks)
    if options.executor == "slurm":
        _run_on_slurm(executor, logs, options.tasks)
    else:
        executor.run()
    incomplete = executor.get_incomplete_ranks(ranks, skip_completed=True)
    if incomplete:
        raise RuntimeError(f"tasks {incomplete} did not finish: see {logs / 'logs'}")


def _build(pipeline: list[Any], options: ExecutorOptions, logs: Path, job_name: str):
    """The datatrove executor of ``options.executor``."""
    from datatrove.executor import LocalPipelineExecutor, RayPipelineExecutor, SlurmPipelineExecutor

    workers = options.workers or options.tasks
    if options.executor == "local":
        return LocalPipelineExecutor(
            pipeline=pipeline, tasks=options.tasks, workers=workers, logging_dir=str(logs), start_method="spawn"
        )
    if options.executor == "ray":
        if importlib.util.find_spec("ray") is None:
            raise RuntimeError("--executor ray needs Ray: pip install 'wm-hub[ray]' (or ray)")
        return RayPipelineExecutor(
            pipeline=pipeline,
            tasks=options.tasks,
            workers=workers,
            logging_dir=str(logs),
            cpus_per_task=options.cpus_per_task,
            gpus_per_task=options.gpus_per_task,
            mem_per_cpu_gb=options.mem_per_cpu_gb,
        )
    return SlurmPipelineExecutor(
        pipeline=pipeline,
        tasks=options.tasks,
        workers=options.workers or -1,
        time=options.slurm_time,
        partition=options.slurm_partition,
        cpus_per_task=options.cpus_per_task,
        gpus_per_task=options.gpus_per_task,
        mem_per_cpu_gb=options.mem_per_cpu_gb,
        job_name=job_name,
        env_command=options.slurm_env_command,
        logging_dir=str(logs),
    )


def _run_on_slurm(executor: Any, logs: Path, tasks: int) -> None:
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


def pending_message(pending: dict[str, Any]) -> str:
    """One line saying what a :class:`TasksPending` status means for the user."""
    return (
        f"{pending['tasks_done']} of {pending['tasks']} tasks done; Slurm job {pending['slurm_job']} "
        f"{pending['state']}: rerun this command once it is over to merge (logs: {pending['logs']})"
    )

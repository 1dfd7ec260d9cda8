"""IDM annotation of key-frame pairs spread over datatrove tasks (``wm-hub annotate --executor local|ray|slurm``).

The shards of the plan (:func:`wm_hub.bootstrap.annotate.plan_annotation`) are split over ``tasks`` datatrove tasks:
task ``r`` writes every unfinished shard ``s`` with ``s % tasks == r``, loading the IDM once (on its GPU with
``--gpus-per-task``, else the CPU). A shard is written whole or not at all, so a killed task redoes only the shard
it was writing, and datatrove's completed-task records let a rerun skip whole tasks. Each task writes its counts to
``OUT/.datatrove/<plan>/annotate-stats/<rank>.json``; once every task is done this process checks the shards and
writes ``annotation_run.json`` with those counts (then removes them: they are reported once), the folder the
single-process and ``accelerate`` runs write, row for row.

``<plan>`` is a hash of the pairs' ids, the shard size and ``tasks``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep

from wm_hub.atomic_io import write_json
from wm_hub.bootstrap.annotate import (
    CONFIG_FILE,
    AnnotateConfig,
    annotate_shards,
    check_config,
    finish_annotation,
    load_idm,
    pending_shards,
    plan_annotation,
    prepare_out,
)
from wm_hub.bootstrap.executors import TasksPending, run_tasks

STATS = "annotate-stats"


class AnnotateTask(PipelineStep):
    """One datatrove task's shards: the IDM loaded once, each unfinished shard of this rank written whole.

    Args:
        config: The run's settings, as a dict (``AnnotateConfig`` fields; pickled into Slurm's job).
        logs: The plan's datatrove logging folder (the task's counts go to its ``annotate-stats``).
    """

    name = "wm-hub annotate"
    type = "🏷 - LABEL"

    def __init__(self, config: dict[str, Any], logs: str):
        super().__init__()
        self.config, self.logs = config, logs

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        """Annotate this rank's unfinished shards (datatrove's entry point); yields nothing."""
        import torch

        config = AnnotateConfig(**self.config)
        out = Path(config.out)
        plan = plan_annotation(config, check_out=False)
        mine = [shard for shard in pending_shards(plan, out) if shard % world_size == rank]
        device = "cuda" if torch.cuda.is_available() else "cpu"
        with self.track_time(unit="shard"):
            stats = annotate_shards(config, plan, out, mine, lambda: load_idm(config, device), rank, world_size)
        self.stat_update("pairs", value=stats["pairs"])
        write_json(Path(self.logs) / STATS / f"{rank:05d}.json", stats)
        yield from ()


def annotate_on_executor(config: AnnotateConfig) -> dict[str, Any]:
    """Annotate ``config.data`` into ``config.out`` with datatrove tasks on ``config.executor`` (see the module).

    Returns:
        The run summary (``annotation_run.json``), or ``{"pending": status}`` while Slurm tasks are not all done.

    Raises:
        ValueError: Bad input, an IDM that does not load, or ``out`` started with other settings.
        FileExistsError: ``out`` holds something that is not an annotation folder.
        RuntimeError: A task failed (its log is named).
    """
    from wm_hub.models.loading import load_model_processor

    out = Path(config.out)
    plan = plan_annotation(config)
    if not (out / CONFIG_FILE).is_file():  # a typo in --idm leaves nothing to clean up (the processor is enough)
        try:
            load_model_processor(config.idm)
        except (OSError, ValueError) as error:
            raise ValueError(f"idm {config.idm}: cannot load it ({error})") from error
    prepare_out(out, config, plan)
    check_config(out, config, plan)
    pending = pending_shards(plan, out)
    logs = out / ".datatrove" / f"{plan.digest()[:12]}-{plan.shard_size}-{config.tasks}"
    if pending:
        task = AnnotateTask({**asdict(config), "executor": None}, str(logs))
        try:
            run_tasks([task], config, logs, "wm-hub-annotate")
        except TasksPending as waiting:
            return {"pending": waiting.status}
    # the tasks' counts since the last merge (a Slurm job's tasks ran between two commands), consumed once reported
    reports = sorted((logs / STATS).glob("*.json"))
    summary = finish_annotation(config, plan, out, [json.loads(path.read_text()) for path in reports], config.tasks)
    for path in reports:
        path.unlink()
    return summary

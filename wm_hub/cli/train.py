"""``wm-hub train idm|fdm``: a training recipe under ``accelerate launch``, the way ``trl sft`` runs its script.

``wm-hub train fdm --config recipes/anole-7b/fdm.yaml --learning_rate 1e-4`` checks the recipe in this process (a
wrong key or value is one ``error:`` line before anything starts), then runs ``accelerate launch -m wm_hub.cli.train
fdm <the same options>``: every process parses the recipe again and trains (:func:`wm_hub.training.run.main`),
publishing with :func:`wm_hub.hub.model_push.push_trained_model` when ``push_to_hub`` is set. It is what
``accelerate launch recipes/fdm.py --config ...`` does from a source checkout, available wherever wm-hub is installed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from wm_hub.cli._tasks import Task

TRAINING_TASKS = ("idm", "fdm")


@dataclass
class LaunchArguments:
    """How ``accelerate launch`` starts the training processes.

    Args:
        num_processes: Processes (GPUs) to train on; ``None``: the accelerate config's, else 1.
        accelerate_config_file: An accelerate config file, e.g. ``recipes/accelerate_configs/zero2.yaml``
            (``None``: the default one ``accelerate config`` wrote, if any).
    """

    num_processes: int | None = None
    accelerate_config_file: str | None = None

    def __post_init__(self) -> None:
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(f"num_processes must be >= 1, got {self.num_processes}")


def _configs() -> tuple[type, ...]:
    from wm_hub.training.configs import DataArguments, ModelArguments, WorldModelSFTConfig

    return (DataArguments, WorldModelSFTConfig, ModelArguments, LaunchArguments)


def launch_command(task: str, argv: Sequence[str], launch: LaunchArguments) -> list[str]:
    """The ``accelerate launch`` command line that trains ``task`` with the recipe options ``argv``."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if launch.accelerate_config_file:
        command += ["--config_file", launch.accelerate_config_file]
    if launch.num_processes:
        command += ["--num_processes", str(launch.num_processes)]
    return [*command, "-m", __name__, task, *argv]


def _launcher(task: str):
    def run(argv: Sequence[str], data_args, training_args, model_args, launch: LaunchArguments) -> int:
        from wm_hub.sandbox.finetune import busy_child_env

        if data_args.task not in (None, task):
            raise SystemExit(
                f"error: this recipe is for the {data_args.task.upper()} (task: {data_args.task}), not the "
                f"{task.upper()}: run wm-hub train {data_args.task}"
            )
        if not model_args.model_name_or_path:
            raise SystemExit("error: no model: give --model_name_or_path (or model_name_or_path: in --config)")
        if not data_args.sources:
            raise SystemExit("error: no training data: give sources: in the --config recipe (see recipes/README.md)")
        _check(training_args, model_args, data_args)
        return subprocess.run(launch_command(task, argv, launch), env=busy_child_env()).returncode

    return run


def train(task: str, argv: Sequence[str] | None = None) -> None:
    """Parse the recipe and train ``task`` in this process (what each ``accelerate launch`` process runs)."""
    from wm_hub.config_parser import parse_config
    from wm_hub.hub.model_push import push_trained_model
    from wm_hub.training.run import main, setup_logging

    data_args, training_args, model_args, _ = parse_config(_task(task).parser(), argv)
    if not data_args.dry_run:
        _check(training_args, model_args, data_args)
    setup_logging(training_args)
    main(task, data_args, training_args, model_args, publish=push_trained_model)


def _check(training_args, model_args, data_args) -> None:
    """:func:`~wm_hub.training.configs.check_run_settings` as one ``error:`` line (exit status 2)."""
    from wm_hub.config_parser import config_error
    from wm_hub.training.configs import check_run_settings

    try:
        check_run_settings(training_args, model_args.model_name_or_path, data_args)
    except ValueError as error:
        config_error(str(error))


def _task(task: str) -> Task:
    return Task(
        words=("train", task),
        help=f"fine-tune an {task.upper()} from a YAML recipe under accelerate launch",
        configs=_configs,
        run=_launcher(task),
        forwards_argv=True,
        description=f"Fine-tune {'an inverse' if task == 'idm' else 'a forward'} dynamics model from a YAML recipe "
        f"(recipes/<model>/{task}.yaml): every field of the recipe's dataclasses (DataArguments, TRL's SFTConfig "
        "with wm-hub's loss weighting, ModelConfig) is an option here and overrides the YAML. The recipe is "
        "checked here, then `accelerate launch` runs it on --num_processes processes (DDP, or DeepSpeed ZeRO with "
        "--accelerate_config_file recipes/accelerate_configs/zero2.yaml). --dry_run builds the data mixture and "
        "prints its sizes. See recipes/README.md and docs/training.md.",
        epilog="examples:\n"
        f"  wm-hub train {task} --config recipes/anole-7b/{task}.yaml --data_root /data --num_processes 8 \\\n"
        "      --accelerate_config_file recipes/accelerate_configs/zero2.yaml\n"
        f"  wm-hub train {task} --config recipes/sandbox/demo-{task}.yaml --max_steps 50 --output_dir /tmp/{task}",
    )


TASKS = tuple(_task(task) for task in TRAINING_TASKS)

if __name__ == "__main__":
    train(sys.argv[1], sys.argv[2:])

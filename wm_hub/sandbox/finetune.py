"""Fine-tuning the sandbox base with the demo's recipes, the real way: ``accelerate launch recipes/<task>.py``.

:func:`fine_tune` is what ``wm-hub demo`` runs for its IDM and FDM stages, and what the fine-tune test and the
sandbox benchmarks run on variants of the same recipes (fewer steps, labelled triplets only, another loss weighting):
one launcher, so a recipe change reaches all of them. ``in_process=True`` runs the same recipe through the same
parser and ``wm_hub.training.run.main`` in the calling process (what ``accelerate launch`` runs with one process),
without the ~20 s of interpreter start and imports per run: the sandbox study trains dozens of models.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


def busy_child_env() -> dict[str, str]:
    """The environment of a subprocess that has the machine to itself while its caller waits for it.

    When the caller's environment sets ``OMP_NUM_THREADS``, it is passed on unchanged (with ``OMP_WAIT_POLICY``):
    whoever set it shares the cores out. Otherwise the child gets every core this process may use and spinning
    OpenMP threads. Without this, ``accelerate launch`` (no ``--cpu`` flag, no ``OMP_NUM_THREADS``) sets
    ``OMP_NUM_THREADS=1`` and a CPU run trains on one core, and passive waiting puts each of the many small ops of
    a tiny model to sleep and wakes it again. Measured on 2 CPU cores, an IDM step of 16 rows from the sandbox base:
    0.26 s on one thread, 0.23 s on two passive threads, 0.15 s on two active ones.
    """
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # not on macOS
        env["OMP_NUM_THREADS"] = str(cores or 1)
        env["OMP_WAIT_POLICY"] = "ACTIVE"
    return env


def demo_recipe(task: str) -> Path:
    """The sandbox recipe of a script of a source checkout: ``recipes/sandbox/demo-<task>.yaml`` for ``"idm"`` and
    ``"fdm"`` (the demo's stages), ``recipes/sandbox/grpo.yaml`` for ``"grpo"`` (GRPO from the verifier)."""
    return RECIPES_DIR / "sandbox" / ("grpo.yaml" if task == "grpo" else f"demo-{task}.yaml")


def fine_tune(
    script: str,
    base: str | Path,
    output_dir: str | Path,
    *,
    recipe: str | Path | None = None,
    data_root: str | Path | None = None,
    labelled_only: bool = False,
    in_process: bool = False,
    **overrides: Any,
) -> Path:
    """Fine-tune ``base`` into ``output_dir`` with ``accelerate launch recipes/<script>.py`` in a subprocess.

    Args:
        script: ``"idm"``, ``"fdm"`` or ``"grpo"``: the recipe script run (a GRPO recipe names the policy's ``task``
            and its ``reward_model``; ``base`` is the SFT policy).
        base: The model to start from (``model_name_or_path``).
        output_dir: Where the fine-tuned model goes.
        recipe: The YAML recipe; :func:`demo_recipe` of ``script`` by default.
        data_root: Folder that relative ``data_files`` of the recipe's sources resolve against.
        labelled_only: Keep only the recipe's ``shapes_world`` sources (the labelled triplets), e.g. before any
            IDM-labelled data exist.
        in_process: Train in this process (one device) instead of an ``accelerate launch`` subprocess.
        **overrides: Recipe fields to replace (``max_steps=60``, ``loss_weighting="none"``, ...).

    Returns:
        ``output_dir``.

    Raises:
        FileNotFoundError: The recipe script or YAML is missing (run from a wm-hub source checkout).
        subprocess.CalledProcessError: Training failed (its own error is printed above).
    """
    script_path, recipe = RECIPES_DIR / f"{script}.py", Path(recipe or demo_recipe(script))
    for path in (script_path, recipe):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the sandbox fine-tunes run from a wm-hub source checkout")
    config = yaml.safe_load(recipe.read_text())
    if labelled_only:
        config["sources"] = [source for source in config["sources"] if source["builder"] == "shapes_world"]
    config.update(overrides, model_name_or_path=str(base), output_dir=str(output_dir))
    if data_root is not None:
        config["data_root"] = str(data_root)
    if in_process:
        _train_here(script, config)
        return Path(output_dir)
    env = busy_child_env()
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    with tempfile.TemporaryDirectory() as tmp:
        written = Path(tmp) / recipe.name
        written.write_text(yaml.safe_dump(config, sort_keys=False))
        subprocess.run([*launch, str(script_path), "--config", str(written)], check=True, env=env)
    return Path(output_dir)


def _train_here(script: str, config: dict[str, Any]) -> None:
    """Parse ``config`` as ``recipes/<script>.py`` does (:func:`~wm_hub.config_parser.parse_config`) and train."""
    from wm_hub.config_parser import ConfigParser, parse_config
    from wm_hub.training.configs import DataArguments, ModelArguments, WorldModelSFTConfig

    with tempfile.TemporaryDirectory() as tmp:
        written = Path(tmp) / "recipe.yaml"
        written.write_text(yaml.safe_dump(config, sort_keys=False))
        if script == "grpo":
            from trl import GRPOConfig

            from wm_hub.training.grpo import GRPOScriptArguments, run_grpo

            types = (DataArguments, GRPOConfig, ModelArguments, GRPOScriptArguments)
            run_grpo(*parse_config(ConfigParser(types), ["--config", str(written)]))
            return
        from wm_hub.training.run import main

        types = (DataArguments, WorldModelSFTConfig, ModelArguments)
        data_args, training_args, model_args = parse_config(ConfigParser(types), ["--config", str(written)])
    main(script, data_args, training_args, model_args)

"""Pretraining the sandbox base: a tiny unified model that reads and writes shapes-world pictures, without actions.

The paper fine-tunes Anole, which already captions, compares and draws images; the sandbox base plays that role. It
is a tiny model of the real Chameleon layout (:func:`~wm_hub.models.tiny.build_tiny_chameleon` with the sandbox
tokenizers) trained through wm-hub's own trainer (:class:`~wm_hub.training.trainers.WorldModelTrainer`, TRL's
``SFTTrainer``) on seven kinds of sequences, none of which holds an action text:

- ``caption``: ``[bos] "Describe the picture." [boi] image [eoi] [sep] caption [eos]`` (reading);
- ``second_caption``: ``[bos] [boi] A [eoi] [boi] B [eoi] "Describe the second picture." [sep] caption(B) [eos]``,
  the IDM's layout, with A and B two related scenes (reading two pictures);
- ``differences``: ``[bos] [boi] A [eoi] [boi] B [eoi] "What differs between the pictures?" [sep] changes [eos]``,
  the IDM's layout: the cells whose content differs, ``"row 2, column 3: red square -> nothing; ..."``
  (:func:`~wm_hub.sandbox.text.describe_changes`), comparing two pictures cell by cell;
- ``draw``: ``[bos] "Draw the picture:" caption [sep] [boi] image [eoi] [eos]`` (writing);
- ``redraw``: ``[bos] "Redraw the picture with these changes:" [boi] A [eoi] changes [sep] [boi] B [eoi] [eos]``,
  the FDM's layout: copying a picture while rewriting the cells a change list names (``"no change"``: B is A).
- ``relation``: ``[bos] [boi] A [eoi] "Where is the blue circle from the red square?" [sep] "right by 2 cells and
  up by 1 cell" [eos]``: the displacement between two objects of one picture in words
  (:func:`~wm_hub.sandbox.text.offset_phrase`);
- ``lookup``: ``[bos] [boi] A [eoi] "What is left by 1 cell from the red square?" [sep] "blue circle" [eos]``: the
  content (or ``"nothing"``, ``"outside the picture"``) at a displacement from an object of one picture.

The last two are spatial language, the kind of question-answering a real VLM is pretrained on: they name
displacements in the words actions use, but never an action and never two pictures (what a move does to a picture
is still the dynamics).

"Related scenes" are the source and target of a random shapes-world triplet; the base sees the two pictures and
what differs cell by cell, never the action that links them (which object moved where, and why, is the dynamics
the IDM and FDM learn from labelled triplets). Image ids come from the cells' true contents, which is what the
sandbox tokenizer encodes (its code accuracy is 1.0 on held-out pictures, :mod:`wm_hub.sandbox.tokenizer`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from diffusers import VQModel
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.models.base import IGNORE_INDEX, Backbone
from wm_hub.models.tiny import TinySpec, build_tiny_chameleon
from wm_hub.sandbox.cells import scene_contents
from wm_hub.sandbox.text import (
    CAPTION_INSTRUCTION,
    DIFFERENCES_INSTRUCTION,
    DRAW_INSTRUCTION,
    REDRAW_INSTRUCTION,
    SECOND_CAPTION_INSTRUCTION,
    build_sandbox_text_tokenizer,
    describe_changes,
    describe_scene,
    lookup_answer,
    lookup_question,
    relation_answer,
    relation_question,
    spatial_offset,
)
from wm_hub.sandbox.world import SANDBOX_WORLD

PRETRAIN_TASKS = ("caption", "second_caption", "differences", "draw", "redraw", "relation", "lookup")
# Rows of each task per cycle: reading and drawing one picture are learnt early; comparing and editing take longest.
DEFAULT_TASK_MIX = {"caption": 2, "second_caption": 1, "differences": 3, "draw": 2, "redraw": 3}


@dataclass
class SandboxPretrainConfig:
    """What ``wm-hub sandbox pretrain`` trains: its options, and the keys of its YAML recipes
    (``recipes/sandbox/pretrain*.yaml``, read with ``--config``).

    Args:
        vqgan: The fitted sandbox tokenizer (a diffusers ``VQModel`` folder, one code per cell pattern).
        output_dir: Where the base (a ``load_backbone`` folder), checkpoints and the pretraining log go.
        hidden_size: LM width.
        num_layers: LM depth.
        num_heads: Attention heads.
        max_steps: Optimizer steps.
        per_device_train_batch_size: Sequences per step.
        learning_rate: Peak AdamW learning rate (cosine decay).
        warmup_steps: Linear warm-up steps.
        save_steps: Steps between resumable checkpoints.
        copy_share: Share of ``redraw`` rows whose second picture is the first (``"no change"``: pure copying).
        task_mix: Rows of each task (:data:`PRETRAIN_TASKS`) per cycle of the data; a mapping, so it is set in the
            YAML recipe, not on the command line.
        seed: Seed of the weights and the data.
        world: The shapes world (:class:`~wm_hub.data.shapes_world.WorldConfig` fields; default: the sandbox
            world); a mapping, so it is set in the YAML recipe, not on the command line.
        init_from: A pretrained base to continue from (a later stage: its weights, a fresh optimizer and schedule;
            its loss log and run record carry over so the card covers every stage). ``None``: random weights.
    """

    vqgan: str = "sandbox/tokenizer"
    output_dir: str = "sandbox/base"
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    max_steps: int = 2500
    per_device_train_batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    save_steps: int = 250
    copy_share: float = 0.25
    task_mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TASK_MIX))
    seed: int = 0
    world: dict[str, Any] = field(default_factory=lambda: dataclasses.asdict(SANDBOX_WORLD))
    init_from: str | None = None


def _image(backbone: Backbone, scene, world: WorldConfig) -> list[int]:
    return backbone.codes_to_ids(scene_contents(scene, world)).tolist()


def _block(backbone: Backbone, ids: list[int]) -> list[int]:
    return backbone.image_prefix_ids() + backbone.image_body_ids(ids) + backbone.image_suffix_ids()


def _row(prompt: list[int], completion: list[int]) -> dict[str, list[int]]:
    return {"input_ids": prompt + completion, "labels": [IGNORE_INDEX] * len(prompt) + completion}


def pretraining_row(backbone: Backbone, world: ShapesWorld, task: str, rng: random.Random, copy_share: float = 0.5):
    """One pretraining sequence of ``task`` (see the module docstring) as ``input_ids`` and ``labels``."""
    config = world.config
    text, sep, bos, eos = backbone._text_ids, backbone.separator_token_id, backbone.bos_token_id, backbone.eos_token_id
    source = world.random_scene(rng)
    action = world.random_action(source, rng, config.actions)
    target = action.apply(source) if action is not None else source
    if task == "caption":
        scene = rng.choice((source, target))
        prompt = [bos, *text(CAPTION_INSTRUCTION), *_block(backbone, _image(backbone, scene, config)), sep]
        return _row(prompt, text(describe_scene(scene)) + [eos])
    if task in ("second_caption", "differences"):
        first, second = (source, target) if rng.random() < 0.5 else (target, source)
        instruction, answer = (
            (SECOND_CAPTION_INSTRUCTION, describe_scene(second))
            if task == "second_caption"
            else (DIFFERENCES_INSTRUCTION, describe_changes(first, second))
        )
        prompt = [
            bos,
            *_block(backbone, _image(backbone, first, config)),
            *_block(backbone, _image(backbone, second, config)),
            *text(instruction),
            sep,
        ]
        return _row(prompt, text(answer) + [eos])
    if task == "draw":
        scene = rng.choice((source, target))
        prompt = [bos, *text(DRAW_INSTRUCTION), *text(describe_scene(scene)), sep]
        return _row(prompt, _block(backbone, _image(backbone, scene, config)) + [eos])
    if task == "redraw":
        after = source if rng.random() < copy_share else target
        prompt = [
            bos,
            *text(REDRAW_INSTRUCTION),
            *_block(backbone, _image(backbone, source, config)),
            *text(describe_changes(source, after)),
            sep,
            *backbone.image_prefix_ids(),
        ]
        body = backbone.image_body_ids(_image(backbone, after, config)) + backbone.image_suffix_ids() + [eos]
        return _row(prompt, body)
    if task in ("relation", "lookup"):
        scene = rng.choice((source, target))
        anchor = rng.choice(scene.objects)
        if task == "relation":
            other = rng.choice([obj for obj in scene.objects if obj is not anchor])
            question = relation_question(anchor.name, other.name)
            answer = relation_answer(anchor, other)
        else:
            dx, dy = spatial_offset(rng, scene, anchor, config.grid, config.max_move)
            question, answer = lookup_question(anchor.name, dx, dy), lookup_answer(scene, anchor, (dx, dy), config)
        prompt = [bos, *_block(backbone, _image(backbone, scene, config)), *text(question), sep]
        return _row(prompt, text(answer) + [eos])
    raise ValueError(f"unknown pretraining task {task!r}; choose from {PRETRAIN_TASKS}")


def pretraining_dataset(
    backbone: Backbone,
    world: WorldConfig,
    num_rows: int,
    seed: int,
    copy_share: float,
    task_mix: dict[str, int] | None = None,
) -> datasets.Dataset:
    """``num_rows`` pretraining rows, cycling through ``task_mix`` (rows per task), from their own generator."""
    task_mix = DEFAULT_TASK_MIX if task_mix is None else task_mix
    unknown = sorted(set(task_mix) - set(PRETRAIN_TASKS))
    if unknown or not any(task_mix.values()) or min(task_mix.values()) < 0:
        raise ValueError(f"task_mix must give rows (>= 0, some > 0) of tasks in {PRETRAIN_TASKS}, got {task_mix}")
    cycle = [task for task, count in task_mix.items() for _ in range(count)]
    painter, rng = ShapesWorld(world), random.Random(f"sandbox_pretrain/{seed}")
    rows = [pretraining_row(backbone, painter, cycle[i % len(cycle)], rng, copy_share) for i in range(num_rows)]
    return datasets.Dataset.from_list(rows)


def build_sandbox_base(config: SandboxPretrainConfig) -> Backbone:
    """The random (unpretrained) sandbox base around the fitted tokenizer."""
    world = WorldConfig(**config.world)
    vqgan = VQModel.from_pretrained(config.vqgan).eval()
    num_codes = vqgan.config.num_vq_embeddings
    spec = TinySpec(
        image_size=world.image_size,
        num_image_codes=num_codes,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        seed=config.seed,
    )
    return build_tiny_chameleon(spec, vqgan, build_sandbox_text_tokenizer(world, num_codes))


class TrainingClock(TrainerCallback, ExportableState):
    """Seconds spent training a stage, across resumes: saved in every checkpoint's ``trainer_state.json`` (a
    stateful callback) and restored with it (``restore_callback_states_from_checkpoint``), so a stage killed and
    resumed reports the time of the work its checkpoints hold, not only its last run's.

    Args:
        seconds: Training seconds before this run (restored from the checkpoint resumed from).
    """

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds
        self._started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds, self._started = self.total(), None

    def total(self) -> float:
        """Seconds before this run plus this run's so far."""
        return self.seconds + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def state(self) -> dict[str, Any]:
        return {"args": {"seconds": self.total()}, "attributes": {}}


class _LossLog(TrainerCallback):
    def __init__(self, path: Path, stage: int, first_step: int):
        self.path, self.stage, self.first_step = path, stage, first_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            row = {"step": self.first_step + state.global_step, "stage": self.stage, **logs}
            with self.path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")


def _runs(folder: Path) -> list[dict[str, Any]]:
    path = folder / "pretrain_run.json"
    return json.loads(path.read_text())["runs"] if path.is_file() else []


def _stages(runs: list[dict[str, Any]]) -> dict[int, int]:
    """Steps of each finished stage (a resumed stage has several runs; its last one counts)."""
    steps: dict[int, int] = {}
    for run in runs:
        steps[run.get("stage", 1)] = max(steps.get(run.get("stage", 1), 0), run["steps_at_end"])
    return steps


def _start_stage(config: SandboxPretrainConfig, out: Path) -> tuple[Backbone, int, int]:
    """The backbone to train, this stage's number and the global step it starts at."""
    if config.init_from is None:
        finished = _stages(_runs(out))
        if finished:  # a rerun of a finished first stage would start the base again from random weights
            raise FileExistsError(
                f"{out} already holds a pretrained base (stages {sorted(finished)}, {sum(finished.values())} steps): "
                f"continue it with --init_from {out}, or give another --output_dir"
            )
        return build_sandbox_base(config), 1, 0
    from wm_hub.models.loading import load_backbone

    source = Path(config.init_from)
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"init_from={config.init_from!r} is not a pretrained base (no config.json)")
    if source.resolve() != out.resolve() and not (out / "pretrain_run.json").is_file():
        for name in ("loss_log.jsonl", "pretrain_run.json"):
            if (source / name).is_file():
                shutil.copyfile(source / name, out / name)
    stages = _stages(_runs(out))
    return load_backbone(str(source)), max(stages, default=0) + 1, sum(stages.values())


def pretrain(config: SandboxPretrainConfig) -> Backbone:
    """Pretrain the sandbox base (resuming from the last checkpoint in ``output_dir``) and save it there."""
    from wm_hub.training.configs import WorldModelSFTConfig
    from wm_hub.training.trainers import WorldModelTrainer

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    backbone, stage, first_step = _start_stage(config, out)
    (out / "pretrain_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    world = WorldConfig(**config.world)
    rows = pretraining_dataset(
        backbone,
        world,
        config.max_steps * config.per_device_train_batch_size,
        config.seed,
        config.copy_share,
        config.task_mix,
    )
    args = WorldModelSFTConfig(
        output_dir=str(out / "checkpoints" / f"stage-{stage}"),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_steps,
        weight_decay=0.0,
        logging_steps=25,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        report_to="none",
        seed=config.seed,
        bf16=False,
        dataloader_drop_last=True,
        restore_callback_states_from_checkpoint=True,
    )
    trainer = WorldModelTrainer(
        backbone=backbone,
        args=args,
        train_dataset=rows,
        callbacks=[_LossLog(out / "loss_log.jsonl", stage, first_step), TrainingClock()],
    )
    stage_dir = out / "checkpoints" / f"stage-{stage}"
    checkpoints = sorted(stage_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    # the clock restored from the checkpoint (a resumed stage) replaced the one passed in
    seconds = next(c for c in trainer.callback_handler.callbacks if isinstance(c, TrainingClock)).total()
    backbone.model.eval()
    backbone.save_pretrained(out)
    runs = _runs(out)
    runs.append(
        {
            "stage": stage,
            "seconds": seconds,
            "steps_at_end": trainer.state.global_step,
            "init_from": config.init_from,
            "learning_rate": config.learning_rate,
            "task_mix": config.task_mix,
            "seed": config.seed,
        }
    )
    (out / "pretrain_run.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    finish_base(config)
    return backbone


def finish_base(config: SandboxPretrainConfig) -> dict[str, Any]:
    """Measure the saved base (:func:`~wm_hub.sandbox.measure.measure_base`), plot its loss, write its model card."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wm_hub.models.loading import load_backbone
    from wm_hub.sandbox.measure import measure_base

    out = Path(config.output_dir)
    fit_log = Path(config.vqgan) / "fit_log.json"
    tokenizer = json.loads(fit_log.read_text())["heldout"] if fit_log.is_file() else None
    if tokenizer is not None:
        (out / "tokenizer_report.json").write_text(json.dumps(tokenizer, indent=2) + "\n")
    report = measure_base(load_backbone(str(out)), WorldConfig(**config.world))
    (out / "base_report.json").write_text(json.dumps(report, indent=2) + "\n")
    log_path = out / "loss_log.jsonl"  # absent after fewer steps than the logging interval
    log = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.is_file() else []
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([row["step"] for row in log], [row["loss_image"] for row in log], label="image tokens")
    axis.plot([row["step"] for row in log], [row["loss_text"] for row in log], label="text tokens")
    for boundary in sorted(_stages(_runs(out)).values())[:-1]:
        axis.axvline(boundary, color="grey", linestyle=":")
    axis.set(xlabel="step", ylabel="NLL per token", yscale="log", title="sandbox base pretraining")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "loss_curve.png", dpi=100)
    plt.close(figure)
    (out / "README.md").write_text(_card(config, report, tokenizer, _runs(out)))
    return report


def _training_text(config: SandboxPretrainConfig, runs: list[dict[str, Any]]) -> str:
    stages = _stages(runs)
    seconds = sum(run["seconds"] for run in runs)
    text = (
        f"{sum(stages.values())} steps of {config.per_device_train_batch_size} sequences, {seconds / 60:.0f} minutes "
        "on 2 CPU cores, through wm-hub's WorldModelTrainer (TRL SFTTrainer)"
    )
    if len(stages) > 1:
        last = {run.get("stage", 1): run for run in runs}
        text += ", in stages (each with a fresh AdamW and cosine schedule): " + "; ".join(
            f"stage {stage}: {steps} steps, lr {last[stage].get('learning_rate', config.learning_rate)}, "
            + ", ".join(f"{task} x{count}" for task, count in last[stage].get("task_mix", config.task_mix).items())
            for stage, steps in sorted(stages.items())
        )
    else:
        text += (
            f" (lr {config.learning_rate}, cosine; tasks per cycle: "
            + ", ".join(f"{task} x{count}" for task, count in config.task_mix.items())
            + ")"
        )
    return text + "."


def _card(
    config: SandboxPretrainConfig, report: dict[str, Any], tokenizer: dict | None, runs: list[dict[str, Any]]
) -> str:
    fdm, stages = report["fdm_before_fine_tuning"], len(_stages(runs))
    lines = [
        "---",
        "library_name: wm-hub",
        "license: mit",
        "tags: [world-model, wm-hub, sandbox, chameleon]",
        "---",
        "",
        "# wm-hub sandbox base",
        "",
        "A tiny unified model of the Chameleon layout (text and VQ image tokens in one transformer: "
        f"hidden {config.hidden_size}, {config.num_layers} layers, {config.num_heads} heads) pretrained on 32 px "
        "shapes-world pictures of 4 x 4 cells **without any action**: the sandbox's Anole. `wm-hub demo` fine-tunes "
        "it into the IDM and the FDM of the paper.",
        "",
        "## Data and training",
        "",
        _training_text(config, runs),
        "Tasks: captioning a picture, captioning the second of two related pictures, listing the cells where two "
        "pictures differ, drawing a picture from its description, redrawing a picture with a list of changed cells "
        "(or 'no change': a copy), and spatial questions on one picture (where one object is from another, what is "
        "at a displacement from an object). "
        "Reproduce: `wm-hub sandbox tokenizer --out sandbox/tokenizer` then "
        + ", then ".join(
            f"`wm-hub sandbox pretrain --config recipes/sandbox/{'pretrain' if n == 1 else f'pretrain-stage{n}'}.yaml`"
            for n in range(1, stages + 1)
        )
        + ".",
        "",
        "![loss](loss_curve.png)",
        "",
        f"## Measured on {report['num']} held-out scenes",
        "",
        "| skill | figure |",
        "|---|---|",
        f"| caption exact match (greedy) | {report['caption_exact_match']:.3f} |",
        f"| differences of two pictures, exact match (greedy) | {report['differences_exact_match']:.3f} |",
        *(
            [
                f"| where one object is from another, exact match (greedy) | {report['relation_exact_match']:.3f} |",
                f"| what is at a displacement from an object, exact match (greedy) | "
                f"{report['lookup_exact_match']:.3f} |",
            ]
            if "relation_exact_match" in report
            else []
        ),
        f"| draw from a description: whole picture / cells | {report['draw']['whole_image']:.3f} / "
        f"{report['draw']['all_cells']:.3f} |",
        f"| copy a picture: whole picture / cells | {report['copy']['whole_image']:.3f} / "
        f"{report['copy']['all_cells']:.3f} |",
        f"| edit from a change list: whole picture / changed cells | {report['edit']['whole_image']:.3f} / "
        f"{report['edit']['changed_cells']:.3f} |",
        f"| IDM exact match before fine-tuning | {report['idm_exact_match_before_fine_tuning']:.3f} |",
        f"| FDM before fine-tuning: changed cells / all cells | {fdm['changed_cells']:.3f} / {fdm['all_cells']:.3f} |",
    ]
    if tokenizer:
        lines += [
            "",
            f"Image tokenizer (`vqgan/`, one code per cell pattern): stability {tokenizer['stability']:.4f}, "
            f"cell exactness {tokenizer['cell_exactness']:.4f} on {tokenizer['num_pairs']} held-out pairs.",
        ]
    return "\n".join(lines) + "\n"

"""The embedded default, end to end: the paper's whole loop on the pretrained sandbox base, offline.

``wm-hub demo`` (``make demo``) runs, each stage skipped when its output exists (a rerun only redoes what is
missing), through the real commands and recipes:

1. fine-tune the IDM from the shipped sandbox base on labelled triplets
   (``accelerate launch recipes/idm.py --config recipes/sandbox/demo-idm.yaml``);
2. write unlabelled sandbox videos (:mod:`wm_hub.sandbox.videos`) and cut their key frames (``wm-hub keyframes``, on
   datatrove's local executor: 8 tasks, 2 at a time);
3. label consecutive key-frame pairs with the IDM (``wm-hub annotate``) and keep the stratified top K
   (``wm-hub sample``, Algorithm 1; a pair the IDM wrote no action for is no label: where it wrote none at all,
   as a barely trained IDM does, nothing is sampled and the FDM trains on the labelled triplets alone);
4. fine-tune the FDM from the base on labelled triplets plus the kept pairs, recognition-weighted
   (``accelerate launch recipes/fdm.py --config recipes/sandbox/demo-fdm.yaml``);
5. on held-out triplets: IDM exact match, the IDM's video labels against the hidden truth, FDM predictions through
   ``pipeline("forward-dynamics")`` (greedy; one sample, the first of the 8 candidates; best-of-8 with the IDM
   verifier), each read back cell by cell (:class:`~wm_hub.sandbox.cells.CellReader`) against the copy-the-source
   baseline.

It writes ``demo_grid.png`` (source | best-of-8 prediction | target, with the action and the IDM's label),
``summary.json`` and ``report.md``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from wm_hub.atomic_io import write_json, write_text
from wm_hub.bootstrap.annotate import blank_actions, read_annotations
from wm_hub.sandbox.cells import CellReader, scene_contents
from wm_hub.sandbox.finetune import busy_child_env, fine_tune
from wm_hub.sandbox.measure import image_scores
from wm_hub.sandbox.videos import TRUTH_FILE, label_accuracy, write_sandbox_videos
from wm_hub.sandbox.world import SANDBOX_BASE, SANDBOX_WORLD

GRID_ROWS = 8
GRID_COLUMNS = ("source", "best-of-8", "target")
SAMPLE = "sampled.jsonl"  # under annotated/: the pairs `wm-hub sample` kept, the FDM recipe's synthetic source
KEYFRAME_EXECUTOR = ("--executor", "local", "--tasks", "8", "--workers", "2")


@dataclass
class DemoConfig:
    """What ``wm-hub demo`` builds.

    Args:
        out: Output folder (idm, videos, keyframes, annotated, fdm, demo_grid.png, summary.json, report.md).
        base: The pretrained sandbox base (a ``load_backbone`` folder).
        num_eval: Held-out triplets to score (the grid shows the first :data:`GRID_ROWS`).
        num_videos: Unlabelled videos to cut into key-frame pairs (5 pairs each).
        k: Pairs kept by stratified top-K sampling for the FDM.
        num_candidates: Candidates of best-of-N verification.
        train_steps: IDM/FDM optimizer steps (default: the demo recipes' ``max_steps``).
        seed: Seed of sampling.
    """

    out: Path = field(default=Path("demo_out"), metadata={"help": "output folder"})
    base: Path = field(
        default=SANDBOX_BASE, metadata={"help": "the pretrained sandbox base (default: sandbox/base of the checkout)"}
    )
    num_eval: int = field(default=200, metadata={"help": f"held-out triplets to score (the grid shows {GRID_ROWS})"})
    num_videos: int = field(default=400, metadata={"help": "unlabelled videos, 5 pairs each"})
    k: int = field(default=1500, metadata={"help": "pairs kept by stratified top-K"})
    num_candidates: int = field(default=8, metadata={"help": "candidates of best-of-N verification"})
    train_steps: int | None = field(
        default=None, metadata={"help": "IDM/FDM optimizer steps (default: the demo recipes')"}
    )
    seed: int = field(default=0, metadata={"help": "seed of sampling"})

    def __post_init__(self) -> None:
        for name in ("num_eval", "num_videos", "k", "num_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"DemoConfig: {name} must be >= 1, got {getattr(self, name)}")
        if self.train_steps is not None and self.train_steps < 1:
            raise ValueError(
                f"DemoConfig: train_steps must be >= 1 (unset: the recipes' steps), got {self.train_steps}"
            )


class DemoStageError(RuntimeError):
    """A stage's command failed (its own error is printed above it); the finished stages are kept."""

    def __init__(self, stage: str, returncode: int):
        super().__init__(
            f"the demo's {stage} stage failed (exit status {returncode}; its error is printed above); the finished "
            "stages are kept: rerun the same command to go on from this one"
        )


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, env=busy_child_env())


def _wm_hub(*args: str) -> None:
    _run([sys.executable, "-m", "wm_hub.cli", *args])


def _train(task: str, config: DemoConfig, labelled_only: bool = False) -> None:
    """``accelerate launch recipes/<task>.py --config recipes/sandbox/demo-<task>.yaml`` in a subprocess."""
    steps = {} if config.train_steps is None else {"max_steps": config.train_steps}
    fine_tune(task, config.base, config.out / task, data_root=config.out, labelled_only=labelled_only, **steps)


def _any_action(out: Path) -> bool:
    """Whether the IDM wrote an action for any annotated pair; where it did for none (a barely trained IDM), there
    is nothing to sample and the FDM trains on the labelled triplets alone (said here and in the report)."""
    rows = read_annotations(out / "annotated")
    if blank_actions(rows) < len(rows):
        return True
    print(
        f"demo: the IDM wrote no action for any of the {len(rows)} video key-frame pairs: nothing to sample, the "
        "FDM trains on the labelled triplets alone"
    )
    return False


def _cells(reader: CellReader, images: list[Image.Image], truth: torch.Tensor, changed: torch.Tensor) -> dict:
    return image_scores(reader.read(images), truth, changed)


def _video_labels(out: Path) -> dict[str, Any]:
    rows = read_annotations(out / "annotated")
    path = out / "annotated" / SAMPLE
    sampled = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return {
        "pairs": len(rows),
        "accuracy": label_accuracy(out / "videos", rows),
        "blank_actions": blank_actions(rows),
        "sampled": len(sampled),
        "sampled_accuracy": label_accuracy(out / "videos", sampled) if sampled else None,
    }


def _training_loops(out: Path) -> dict[str, float]:
    """Seconds of each fine-tune's training loop (the Trainer's ``train_runtime``, in ``training_run.json``): the
    same steps on a slower or busier machine take longer, so they tell runs apart from changes of the code."""
    loops = {}
    for task in ("idm", "fdm"):
        path = out / task / "training_run.json"
        runtime = json.loads(path.read_text()).get("metrics", {}).get("train_runtime") if path.is_file() else None
        if runtime is not None:
            loops[f"{task}_training_loop_s"] = runtime
    return loops


def _grid(rows: list[tuple[list[Image.Image], str]], tile: int = 96) -> Image.Image:
    caption = 30
    grid = Image.new("RGB", (max(len(GRID_COLUMNS) * tile, 420), len(rows) * (tile + caption) + 14), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    draw.text((4, 1), " | ".join(GRID_COLUMNS), fill=(0, 0, 0))
    for index, (images, text) in enumerate(rows):
        top = 14 + index * (tile + caption)
        for column, image in enumerate(images):
            grid.paste(image.convert("RGB").resize((tile, tile), Image.Resampling.NEAREST), (column * tile, top))
        draw.text((4, top + tile + 2), text, fill=(0, 0, 0))
    return grid


def evaluate_demo(out: Path, config: DemoConfig) -> tuple[dict[str, Any], Image.Image]:
    """Every figure of ``summary.json`` on the first ``num_eval`` triplets of the sandbox world's test split."""
    from transformers import pipeline

    from wm_hub.data.shapes_world import ShapesWorld
    from wm_hub.inference.actions import generate_actions

    world, reader = ShapesWorld(SANDBOX_WORLD), CellReader(SANDBOX_WORLD)
    triplets = [world.triplet("test", index) for index in range(config.num_eval)]
    sources, actions = [t.source for t in triplets], [t.action.text for t in triplets]
    truth = torch.stack([scene_contents(t.target_scene, SANDBOX_WORLD) for t in triplets])
    source_truth = torch.stack([scene_contents(t.source_scene, SANDBOX_WORLD) for t in triplets])
    changed = truth != source_truth
    idm = pipeline("inverse-dynamics", model=str(out / "idm"))
    fdm = pipeline("forward-dynamics", model=str(out / "fdm"))
    labels = generate_actions(idm.backbone, [(t.source, t.target) for t in triplets], max_new_tokens=24)
    greedy = fdm(sources, actions, num_candidates=1, top_k=1, seed=config.seed)
    best = fdm(
        sources, actions, num_candidates=config.num_candidates, verifier=idm, seed=config.seed, return_candidates=True
    )
    # one sample (N = 1): each row's first candidate, drawn before any verification (paired with best-of-N)
    single = [row["candidates"][0] if row["candidates"] else row["image"] for row in best]
    # the oracle verifier keeps the candidate with the most cells right (first of equals), read in one batch
    contents = reader.read([image for row in best for image in row["candidates"]])
    contents = contents.reshape(config.num_eval, config.num_candidates, -1)
    chosen = (contents == truth[:, None]).sum(dim=2).argmax(dim=1)
    oracle = contents[torch.arange(config.num_eval), chosen]
    copy = source_truth == truth
    summary = {
        "num_eval": config.num_eval,
        "world": dataclasses.asdict(SANDBOX_WORLD),
        "idm_exact_match": sum(a == b for a, b in zip(labels, actions)) / config.num_eval,
        "video_label_accuracy": None,
        "fdm": _cells(reader, [row["image"] for row in greedy], truth, changed),
        "fdm_sampled_n1": _cells(reader, single, truth, changed),
        f"best_of_{config.num_candidates}": _cells(reader, [row["image"] for row in best], truth, changed),
        f"oracle_best_of_{config.num_candidates}": image_scores(oracle, truth, changed),
        "copy": {
            "whole_image": float(copy.all(dim=1).float().mean()),
            "changed_cells": 0.0,
            "all_cells": float(copy.float().mean()),
        },
        "examples": [{"action": a, "idm_label": b} for a, b in zip(actions[:20], labels[:20])],
    }
    rows = [
        ([t.source, row["image"], t.target], f"{t.action.text}\nIDM: {label}")
        for t, row, label in zip(triplets[:GRID_ROWS], best, labels)
    ]
    return summary, _grid(rows)


def _report(summary: dict[str, Any]) -> str:
    n = summary["num_eval"]
    best = next(key for key in summary if key.startswith("best_of_"))
    labels = summary["video_labels"]
    lines = [
        "# wm-hub demo: the paper's loop in the sandbox",
        "",
        f"Held-out triplets: {n} (sandbox world {summary['world']['image_size']} px, "
        f"{summary['world']['grid']} x {summary['world']['grid']} cells).",
        "",
        f"- IDM exact match: {summary['idm_exact_match']:.3f}",
        f"- IDM labels of video key-frame pairs right: {summary['video_label_accuracy']:.3f} "
        f"({labels['pairs']} pairs; "
        + (
            f"the {labels['sampled']} kept by top-K: {labels['sampled_accuracy']:.3f})"
            if labels["sampled"]
            else "the IDM wrote no action for any of them: the FDM trained on the labelled triplets alone)"
        ),
        "",
        "| prediction | whole image | changed cells | all cells |",
        "|---|---|---|---|",
    ]
    for key in ("copy", "fdm", "fdm_sampled_n1", best, f"oracle_{best}"):
        row = summary[key]
        lines.append(f"| {key} | {row['whole_image']:.3f} | {row['changed_cells']:.3f} | {row['all_cells']:.3f} |")
    if summary["tokenizer"]:
        lines += [
            "",
            f"Tokenizer: stability {summary['tokenizer']['stability']:.4f}, cell exactness "
            f"{summary['tokenizer']['cell_exactness']:.4f}.",
        ]
    times = summary["wall_times"]
    loops = " and ".join(
        f"{times[f'{task}_training_loop_s']:.0f} s the {task.upper()}'s training loop"
        for task in ("idm", "fdm")
        if f"{task}_training_loop_s" in times
    )
    lines += ["", f"Wall time: {times['total_s']:.0f} s" + (f", of which {loops}." if loops else "."), ""]
    lines += ["![grid](demo_grid.png)", ""]
    return "\n".join(lines)


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run every stage whose output is missing and write ``demo_grid.png``, ``summary.json`` and ``report.md``.

    Raises:
        DemoStageError: A stage's command (training, ``wm-hub keyframes``...) exited with an error.
    """
    out = config.out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (Path(config.base) / "config.json").is_file():
        raise FileNotFoundError(f"no sandbox base at {config.base}: run `wm-hub sandbox pretrain` or pass --base")
    times: dict[str, float] = {}
    start = time.perf_counter()

    def stage(name: str, done: bool, work) -> None:
        if not done:
            begin = time.perf_counter()
            try:
                work()
            except subprocess.CalledProcessError as error:
                raise DemoStageError(name, error.returncode) from error
            times[f"{name}_s"] = time.perf_counter() - begin

    stage("train_idm", (out / "idm" / "config.json").is_file(), lambda: _train("idm", config))
    stage(
        "videos",
        (out / "videos" / TRUTH_FILE).is_file(),
        lambda: write_sandbox_videos(out / "videos", config.num_videos),
    )
    # datatrove's local executor over both cores: the rows of one process, 1.7x as fast (keyframe_tasks_cpu.json)
    keyframes = ("keyframes", str(out / "videos"), "--out", str(out / "keyframes"), *KEYFRAME_EXECUTOR)
    stage("keyframes", False, lambda: _wm_hub(*keyframes))
    stage(
        "annotate",
        False,
        lambda: _wm_hub(
            "annotate",
            "--idm",
            str(out / "idm"),
            "--data",
            str(out / "keyframes"),
            "--out",
            str(out / "annotated"),
            # 256 pairs per generate (shards of 512): 76 pairs/s against 66 at 64 per batch in shards of 128
            "--batch-size",
            "256",
            "--shard-size",
            "512",
            "--max-new-tokens",
            "24",
            "--class-source",
            "verb",
        ),
    )
    labels = _any_action(out)
    sample = (
        "sample",
        "--input",
        str(out / "annotated"),
        "--k",
        str(config.k),
        "--out",
        str(out / "annotated" / SAMPLE),
    )
    stage("sample", (out / "annotated" / SAMPLE).is_file() or not labels, lambda: _wm_hub(*sample))
    stage("train_fdm", (out / "fdm" / "config.json").is_file(), lambda: _train("fdm", config, not labels))
    begin = time.perf_counter()
    summary, grid = evaluate_demo(out, config)
    times["evaluate_s"] = time.perf_counter() - begin
    times["total_s"] = time.perf_counter() - start
    # the fraction the issue names; its counts and the kept pairs' accuracy beside it
    summary["video_labels"] = _video_labels(out)
    summary["video_label_accuracy"] = summary["video_labels"]["accuracy"]
    tokenizer = Path(config.base) / "tokenizer_report.json"
    summary["tokenizer"] = json.loads(tokenizer.read_text()) if tokenizer.is_file() else None
    summary["wall_times"] = {**times, **_training_loops(out)}
    grid.save(out / "demo_grid.png")
    write_json(out / "summary.json", summary)
    write_text(out / "report.md", _report(summary))
    return summary

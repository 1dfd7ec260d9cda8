"""The embedded default, end to end: shapes world -> fitted tiny VQGAN -> tiny IDM and FDM -> held-out predictions.

``wm-hub demo`` (``make demo``) runs the paper's pipeline at laptop scale with nothing downloaded:

1. fit a tiny Chameleon-layout VQGAN on shapes-world images and build a tiny backbone around it;
2. train an IDM and an FDM with the real recipes (``accelerate launch recipes/{idm,fdm}.py --config
   recipes/tiny/demo-{idm,fdm}.yaml``);
3. on held-out shapes-world triplets, label actions with the IDM and predict targets with the FDM, then write a PNG
   grid (source | prediction | target | target through the VQGAN, action as caption) and ``summary.json`` (IDM
   exact match, FDM token accuracy on all target tokens and on the tokens that change, against the
   copy-the-source baseline, wall times).

Each stage is skipped when its output exists, so a rerun only redoes what is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.inference.actions import generate_actions
from wm_hub.inference.generation import generate_images
from wm_hub.models.base import Backbone
from wm_hub.models.loading import load_backbone

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
# Shapes-world cells hold one of 7 colours x 4 shapes or nothing (29 patterns): 64 codes cover them with a few
# spares, where 512 split the background into many near-identical codes that a change anywhere reshuffles.
DEMO_IMAGE_CODES = 64
GRID_ROWS = 8
# The last column is the target through the VQGAN: what the FDM would draw if it predicted every token right.
GRID_COLUMNS = ("source", "prediction", "target", "target tokens")


@dataclass
class DemoConfig:
    """What ``wm-hub demo`` builds.

    Args:
        out: Output folder (model, idm, fdm, demo_grid.png, summary.json).
        num_eval: Held-out shapes-world triplets to predict (the grid shows the first :data:`GRID_ROWS`).
        fit_steps: VQGAN fitting steps (default: the fitting config's).
        train_steps: IDM/FDM optimizer steps (default: the demo recipes' ``max_steps``).
        seed: Seed of the VQGAN fit and of sampling.
    """

    out: Path = Path("demo_out")
    num_eval: int = 32
    fit_steps: int | None = None
    train_steps: int | None = None
    seed: int = 0


def _build_backbone(model_dir: Path, config: DemoConfig) -> dict[str, Any]:
    from wm_hub.models.tiny import TinySpec, save_tiny_model
    from wm_hub.models.vq_fitting import VQFitConfig, fit_tiny_vqgan

    spec = TinySpec(num_image_codes=DEMO_IMAGE_CODES, seed=config.seed)
    fit_config = VQFitConfig(seed=config.seed, **({"steps": config.fit_steps} if config.fit_steps else {}))
    vqgan, metrics = fit_tiny_vqgan(spec, fit_config)
    save_tiny_model("chameleon", model_dir, spec, vqgan)
    report = metrics.to_dict()
    (model_dir / "vq_fit.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _train(task: str, model_dir: Path, output_dir: Path, steps: int | None) -> None:
    """``accelerate launch recipes/<task>.py --config recipes/tiny/demo-<task>.yaml`` in a subprocess."""
    script, recipe = RECIPES_DIR / f"{task}.py", RECIPES_DIR / "tiny" / f"demo-{task}.yaml"
    if not script.is_file():
        raise FileNotFoundError(f"{script} not found: wm-hub demo runs from a wm-hub source checkout (make demo)")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        str(script), "--config", str(recipe), "--model_name_or_path", str(model_dir), "--output_dir", str(output_dir),
    ]  # fmt: skip
    if steps is not None:
        command += ["--max_steps", str(steps)]
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    subprocess.run(command, check=True, env=env)


def _accuracy(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float | None:
    return float((predicted == target)[mask].float().mean()) if mask.any() else None


def _grid(rows: list[tuple[list[Image.Image], str]], tile: int = 128) -> Image.Image:
    caption = 28
    grid = Image.new("RGB", (len(GRID_COLUMNS) * tile, len(rows) * (tile + caption)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for index, (images, text) in enumerate(rows):
        top = index * (tile + caption)
        for column, image in enumerate(images):
            grid.paste(image.convert("RGB").resize((tile, tile), Image.Resampling.NEAREST), (column * tile, top))
        draw.text((4, top + tile + 2), text, fill=(0, 0, 0))
    draw.text((4, 0), " | ".join(GRID_COLUMNS), fill=(255, 255, 255))
    return grid


def evaluate_demo(idm: Backbone, fdm: Backbone, num_eval: int, seed: int) -> tuple[dict[str, Any], Image.Image]:
    """IDM exact match and FDM token accuracy (vs copying the source) on held-out shapes-world triplets."""
    world = ShapesWorld(WorldConfig())
    triplets = [world.triplet("test", index) for index in range(num_eval)]
    actions = [triplet.action.text for triplet in triplets]
    labels = generate_actions(idm, [(triplet.source, triplet.target) for triplet in triplets])
    prompts = [fdm.build_fdm_sequence(t.source, t.action.text).input_ids for t in triplets]
    generated = generate_images(fdm, prompts, num_candidates=1, top_k=1, seed=seed)
    predicted = generated.image_ids[:, 0]
    source_ids = fdm.encode_images([t.source for t in triplets])
    target_ids = fdm.encode_images([t.target for t in triplets])
    changed = source_ids != target_ids
    everywhere = torch.ones_like(changed)
    summary = {
        "num_eval": num_eval,
        "idm_exact_match": sum(a == b for a, b in zip(labels, actions)) / num_eval,
        "fdm_token_accuracy": {
            "all": _accuracy(predicted, target_ids, everywhere),
            "changed": _accuracy(predicted, target_ids, changed),
        },
        "copy_baseline_token_accuracy": {
            "all": _accuracy(source_ids, target_ids, everywhere),
            "changed": _accuracy(source_ids, target_ids, changed),
        },
        "examples": [{"action": a, "idm_label": b} for a, b in zip(actions, labels)],
    }
    shown = min(GRID_ROWS, num_eval)
    target_tokens = fdm.decode_images(target_ids[:shown])
    rows = [
        ([t.source, image_row[0], t.target, tokens], f"{t.action.text} | IDM: {label}")
        for t, image_row, tokens, label in zip(triplets, generated.images, target_tokens, labels)
    ]
    return summary, _grid(rows)


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run every stage whose output is missing and write ``demo_grid.png`` and ``summary.json``."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    model_dir = out / "model"
    vq_report_path = model_dir / "vq_fit.json"
    start = time.perf_counter()
    if not vq_report_path.is_file():
        _build_backbone(model_dir, config)
        times["fit_vqgan_s"] = time.perf_counter() - start
    for task in ("idm", "fdm"):
        if not (out / task / "config.json").is_file():
            stage = time.perf_counter()
            _train(task, model_dir, out / task, config.train_steps)
            times[f"train_{task}_s"] = time.perf_counter() - stage
    stage = time.perf_counter()
    summary, grid = evaluate_demo(load_backbone(str(out / "idm")), load_backbone(str(out / "fdm")), config.num_eval,
                                  config.seed)  # fmt: skip
    times["evaluate_s"] = time.perf_counter() - stage
    times["total_s"] = time.perf_counter() - start
    summary = {"vqgan": json.loads(vq_report_path.read_text()), **summary, "wall_times": times}
    grid.save(out / "demo_grid.png")
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, out / "summary.json")
    return summary

"""CPU benchmark of fitting the tiny VQGAN on shapes-world pictures (``wm-hub tiny-model --fit-vq shapes_world``).

Runs :func:`wm_hub.training.vq_fitting.fit_tiny_vqgan` with the demo's codebook size (``--codes``, default 64) and the
default :class:`VQFitConfig`, and reports wall time (data generation and training), steps/s, the held-out PSNR
before and after, codebook use and code stability (unchanged cells of held-out pairs that keep their code).
PSNR is dominated by the dark background, so it also reports whether the objects survive tokenization: each
object cell of the held-out scenes is decoded and matched to the nearest of the 28 possible cell pictures (every
colour x shape) and the empty cell; ``object_cell_accuracy`` is the share matched to the right one. Writes a strip
of held-out pictures over their reconstructions next to the JSON. Usage::

    .venv/bin/python benchmarks/bench_vq_fitting.py [--steps N] [--out benchmarks/results/vq_fitting_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_backbone.py: spinning OpenMP threads distort timings

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from wm_hub.data.shapes_world import PALETTE, Scene, ShapeObject, ShapesWorld, WorldConfig  # noqa: E402
from wm_hub.models.tiny import TinySpec  # noqa: E402
from wm_hub.training.vq_fitting import VQFitConfig, fit_tiny_vqgan, images_to_pixels, reconstruct  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "vq_fitting_cpu.json"
NUM_SCENES = 64


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="training steps (default: VQFitConfig's)")
    parser.add_argument("--codes", type=int, default=64, help="codebook size (default: 64)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file (a PNG strip beside it)")
    return parser.parse_args()


def object_cell_accuracy(vqgan, world: ShapesWorld) -> tuple[float, int]:
    """Share of held-out object cells whose reconstruction is nearest to the right (colour, shape) picture."""
    config, size = world.config, world.config.cell_size
    names = [(colour, shape) for colour in config.colours for shape in config.shapes]
    lone = [world.render(Scene((ShapeObject(shape, colour, (0, 0)),))) for colour, shape in names]
    patches = images_to_pixels([image.crop((0, 0, size, size)) for image in [*lone, world.render(Scene(()))]])
    patches = patches.float().flatten(1)
    correct = total = 0
    for index in range(NUM_SCENES):
        scene = world.triplet("test", index).source_scene
        pixels = images_to_pixels([world.render(scene)])
        reconstruction, _ = reconstruct(vqgan, pixels.float() / 127.5 - 1)
        decoded = ((reconstruction[0] + 1) * 127.5).round()
        for obj in scene.objects:
            x, y = obj.cell[0] * size, obj.cell[1] * size
            cell = decoded[:, y : y + size, x : x + size].flatten()
            nearest = int((patches - cell).pow(2).sum(dim=1).argmin())
            correct += nearest < len(names) and names[nearest] == (obj.colour, obj.shape)
            total += 1
    return correct / total, total


def write_strip(vqgan, world: ShapesWorld, path: Path) -> None:
    """Eight held-out pictures (top) over their reconstructions (bottom), 4x enlarged."""
    pixels = images_to_pixels([world.triplet("test", index).source for index in range(8)]).float() / 127.5 - 1
    reconstruction, _ = reconstruct(vqgan, pixels)
    rows = [np.concatenate(list(batch.permute(0, 2, 3, 1).numpy()), axis=1) for batch in (pixels, reconstruction)]
    strip = ((np.concatenate(rows, axis=0) + 1) * 127.5).round().astype(np.uint8)
    image = Image.fromarray(strip)
    image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST).save(path)


def main() -> None:
    args = parse_args()
    spec = TinySpec(num_image_codes=args.codes)
    config = VQFitConfig(**({"steps": args.steps} if args.steps else {}))
    load_before = os.getloadavg()
    start = time.perf_counter()
    vqgan, metrics = fit_tiny_vqgan(spec, config)
    total_s = time.perf_counter() - start
    world = ShapesWorld(WorldConfig(image_size=spec.image_size))
    accuracy, objects = object_cell_accuracy(vqgan, world)
    strip = args.out.with_suffix(".png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_strip(vqgan, world, strip)
    payload = {
        "note": "Wall times depend on the load of the shared 2-core machine (load averages before/after below).",
        "machine": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "settings": {"spec": vars(spec), "config": vars(config), "palette": len(PALETTE)},
        "results": {
            "total_s": total_s,
            "data_and_evaluation_s": total_s - metrics.seconds,
            **metrics.to_dict(),
            "object_cell_accuracy": accuracy,
            "object_cells": objects,
            "strip": str(strip.relative_to(REPO_ROOT)) if strip.is_relative_to(REPO_ROOT) else str(strip),
        },
    }
    results = payload["results"]
    print(
        f"fit: {results['steps']} steps in {results['seconds']:.0f} s ({results['steps_per_s']:.2f} steps/s), "
        f"{total_s:.0f} s in all; held-out PSNR {results['initial_psnr']:.2f} -> {results['heldout_psnr']:.2f} dB; "
        f"{results['codes_used']}/{results['num_codes']} codes used; object cells right {accuracy:.1%} of {objects}"
    )
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out} and {strip}")


if __name__ == "__main__":
    main()

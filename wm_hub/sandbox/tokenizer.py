"""The sandbox image tokenizer: a Chameleon-layout VQGAN whose codes are the contents of the cells.

A world model copies what does not change, so the sandbox tokenizer must give an unchanged cell the same code
whatever happens elsewhere (stability), and decode every code to a picture of the right content (exactness). An
unsupervised VQ autoencoder (:mod:`wm_hub.training.vq_fitting`) does neither at the demo's budget: its encoder's
GroupNorm sees the whole picture and surplus codes split the background (stability 0.54-0.66, measured). The shapes
world knows what each cell holds, so :func:`fit_sandbox_tokenizer` fits the same ``diffusers.VQModel`` layout with
that knowledge:

- the codebook has one entry per cell pattern (:func:`~wm_hub.sandbox.cells.cell_patterns`: 29 for the default
  world), and code ``k`` means pattern ``k``;
- the encoder is trained to classify: the squared distances of a cell's pre-quantisation feature to the entries
  are the negative logits of a cross-entropy over the cell's true pattern, plus a commitment term that pulls the
  feature onto its entry (so the paper's L2 recognition weights, computed on these features, are ~0 for unchanged
  cells and large for changed ones);
- the decoder is trained to reproduce the picture from the true codes' entries (mean squared error);
- pictures of 1 to ``max_objects`` objects (sparse and crowded boards) with Gaussian pixel noise, so that the
  encoder does not depend on the exact pixel values of the whole picture.

Tokenization at inference is unchanged (``encode_codes``: squared-distance argmin, as Chameleon does).
:func:`measure_tokenizer` reports stability and exactness on held-out triplets as the sandbox issue defines them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import VQModel
from PIL import Image
from tqdm import tqdm

from wm_hub.atomic_io import write_text
from wm_hub.data.shapes_world import Scene, ShapeObject, ShapesWorld, WorldConfig
from wm_hub.models.chameleon_vqgan import decode_codes, encode_codes
from wm_hub.models.tiny import TinySpec, tiny_vqgan, zero_residual_branches
from wm_hub.sandbox.cells import CellReader, cell_patterns, scene_contents
from wm_hub.sandbox.world import SANDBOX_WORLD
from wm_hub.training.vq_fitting import images_to_pixels


@dataclass
class SandboxTokenizerConfig:
    """How :func:`fit_sandbox_tokenizer` trains, and where :func:`build_sandbox_tokenizer` writes the result.

    Args:
        out: The output ``VQModel`` folder of :func:`build_sandbox_tokenizer` (required on the command line).
        steps: Optimizer steps.
        batch_size: Pictures per step.
        lr: Peak Adam learning rate (cosine decay after a linear warm-up).
        warmup_steps: Warm-up steps.
        commitment: Weight of ||z - sg(e_true)||^2.
        reconstruction: Weight of the decoder's mean squared error.
        noise: Standard deviation of the Gaussian noise added to training pixels (in [-1, 1] units).
        max_objects: Most objects of a training picture (uniform from 1).
        seed: Seed of the random init, the pictures and the noise.
        progress: Show a progress bar.
        num_pairs: Held-out triplets :func:`build_sandbox_tokenizer` measures (:func:`measure_tokenizer`).
    """

    out: str | None = field(default=None, metadata={"required": True})
    steps: int = 800
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 20
    commitment: float = 0.25
    reconstruction: float = 1.0
    noise: float = 0.02
    max_objects: int = 16
    seed: int = 0
    progress: bool = True
    num_pairs: int = 1000

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "warmup_steps", "max_objects", "num_pairs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        for name in ("commitment", "reconstruction", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _random_scene(world: ShapesWorld, rng: random.Random, max_objects: int) -> Scene:
    config = world.config
    names = [(colour, shape) for colour in config.colours for shape in config.shapes]
    count = rng.randint(1, min(max_objects, len(names), config.grid * config.grid))
    cells = rng.sample([(x, y) for y in range(config.grid) for x in range(config.grid)], count)
    return Scene(tuple(ShapeObject(s, c, cell) for (c, s), cell in zip(rng.sample(names, count), cells)))


def _pixels(images) -> torch.Tensor:
    return images_to_pixels(images).float() / 127.5 - 1


def sandbox_vqgan(world: WorldConfig, seed: int = 0) -> VQModel:
    """An unfitted Chameleon-layout VQGAN of the tiny presets' size, one code per cell pattern of ``world``."""
    spec = TinySpec(image_size=world.image_size, num_image_codes=len(cell_patterns(world)), seed=seed)
    torch.manual_seed(seed)
    vqgan = tiny_vqgan(spec)
    zero_residual_branches(vqgan)
    return vqgan


def _check_geometry(vqgan: VQModel, world: WorldConfig) -> int:
    downsample = 2 ** (len(vqgan.config.block_out_channels) - 1)
    side = world.image_size // downsample
    if side != world.grid:
        raise ValueError(
            f"the VQGAN makes {side} x {side} tokens of {world.image_size} px; the world has "
            f"{world.grid} x {world.grid} cells: one code per cell needs equal grids"
        )
    if vqgan.config.num_vq_embeddings != len(cell_patterns(world)):
        raise ValueError(
            f"the VQGAN has {vqgan.config.num_vq_embeddings} codes; the world has "
            f"{len(cell_patterns(world))} cell patterns"
        )
    return side


def fit_sandbox_tokenizer(
    world: WorldConfig | None = None, config: SandboxTokenizerConfig | None = None
) -> tuple[VQModel, dict[str, Any]]:
    """Fit the sandbox VQGAN of ``world`` (see the module docstring); returns it (frozen) and its training log."""
    world = world or SANDBOX_WORLD
    config = config or SandboxTokenizerConfig()
    vqgan = sandbox_vqgan(world, config.seed)
    side = _check_geometry(vqgan, world)
    painter = ShapesWorld(world)
    rng = random.Random(f"sandbox_tokenizer/{config.seed}")
    generator = torch.Generator().manual_seed(config.seed)
    vqgan.train().requires_grad_(True)
    optimizer = torch.optim.Adam(vqgan.parameters(), lr=config.lr, betas=(0.9, 0.99))

    def schedule(step: int) -> float:
        return min(1.0, (step + 1) / config.warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / config.steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    start, log = time.perf_counter(), []
    with tqdm(
        range(config.steps), desc="fitting the sandbox tokenizer", unit="step", disable=not config.progress
    ) as bar:
        for step in bar:
            scenes = [_random_scene(painter, rng, config.max_objects) for _ in range(config.batch_size)]
            clean = _pixels([painter.render(scene) for scene in scenes])
            noisy = clean + config.noise * torch.randn(clean.shape, generator=generator)
            truth = torch.stack([scene_contents(scene, world) for scene in scenes]).reshape(-1)
            features = vqgan.quant_conv(vqgan.encoder(noisy))
            dim = features.shape[1]
            vectors = features.permute(0, 2, 3, 1).reshape(-1, dim)
            codebook = vqgan.quantize.embedding.weight
            distances = vectors.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * vectors @ codebook.t()
            classification = F.cross_entropy(-distances, truth)
            commitment = F.mse_loss(vectors, codebook[truth].detach())
            latents = codebook[truth].reshape(len(scenes), side, side, dim).permute(0, 3, 1, 2)
            reconstruction = F.mse_loss(vqgan.decoder(vqgan.post_quant_conv(latents)), clean)
            loss = classification + config.commitment * commitment + config.reconstruction * reconstruction
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step % 10 == 0 or step == config.steps - 1:
                accuracy = float((distances.argmin(1) == truth).float().mean())
                log.append(
                    {
                        "step": step,
                        "loss": loss.item(),
                        "classification": classification.item(),
                        "reconstruction": reconstruction.item(),
                        "code_accuracy": accuracy,
                    }
                )
                bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{accuracy:.3f}", mse=f"{reconstruction.item():.4f}")
    vqgan.eval().requires_grad_(False)
    return vqgan, {"config": config.to_dict(), "seconds": time.perf_counter() - start, "log": log}


@torch.no_grad()
def measure_tokenizer(vqgan: VQModel, world: WorldConfig | None = None, num_pairs: int = 1000) -> dict[str, Any]:
    """Stability and exactness of ``vqgan`` on the first ``num_pairs`` triplets of the world's ``test`` split.

    Returns:
        ``stability``: share of unchanged cells (same content in source and target) whose codes are equal;
        ``cell_exactness``: share of cells of the decoded pictures (sources and targets) that :class:`CellReader`
        reads as their true content; ``code_accuracy``: share of cells whose code is their pattern index;
        ``num_pairs``.
    """
    world = world or SANDBOX_WORLD
    side = _check_geometry(vqgan, world)
    painter, reader = ShapesWorld(world), CellReader(world)
    same = stable = exact = right_code = cells = 0
    for begin in range(0, num_pairs, 100):
        triplets = [painter.triplet("test", index) for index in range(begin, min(begin + 100, num_pairs))]
        images = [t.source for t in triplets] + [t.target for t in triplets]
        truth = torch.stack(
            [scene_contents(t.source_scene, world) for t in triplets]
            + [scene_contents(t.target_scene, world) for t in triplets]
        )
        codes, _ = encode_codes(vqgan, _pixels(images))
        decoded = decode_codes(vqgan, codes, (side, side)).clamp(-1, 1)
        pictures = ((decoded + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        read = reader.read([Image.fromarray(array) for array in pictures])
        unchanged = truth[: len(triplets)] == truth[len(triplets) :]
        same += int(unchanged.sum())
        stable += int((codes[: len(triplets)] == codes[len(triplets) :])[unchanged].sum())
        exact += int((read == truth).sum())
        right_code += int((codes == truth).sum())
        cells += truth.numel()
    return {
        "num_pairs": num_pairs,
        "stability": stable / same,
        "cell_exactness": exact / cells,
        "code_accuracy": right_code / cells,
    }


def build_sandbox_tokenizer(config: SandboxTokenizerConfig) -> dict[str, Any]:
    """Fit the sandbox tokenizer of the sandbox world, measure it, and write it to ``config.out``.

    ``config.out`` gets the ``VQModel`` and ``fit_log.json`` (the settings, the training log and, under
    ``heldout``, :func:`measure_tokenizer` on ``config.num_pairs`` held-out triplets).

    Returns:
        The held-out measurement.

    Raises:
        ValueError: ``config.out`` is not set.
    """
    if not config.out:
        raise ValueError("SandboxTokenizerConfig: out is required to write the tokenizer")
    vqgan, log = fit_sandbox_tokenizer(config=config)
    log["heldout"] = measure_tokenizer(vqgan, num_pairs=config.num_pairs)
    out = Path(config.out)
    vqgan.save_pretrained(out)
    write_text(out / "fit_log.json", json.dumps(log, indent=1) + "\n")
    return log["heldout"]

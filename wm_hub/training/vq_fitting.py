"""Fitting a small Chameleon-layout VQGAN (``diffusers.VQModel``) on images: the tiny presets' image tokenizer.

A random VQGAN turns every picture into noise, so a tiny backbone built around one can never show what it
predicts. :func:`fit_vqgan` trains one as a plain VQ autoencoder (van den Oord et al., 2017), in minutes on a CPU:

- pixels -> ``encoder`` -> ``quant_conv`` -> nearest codebook entry -> ``post_quant_conv`` -> ``decoder``, the
  nearest entry chosen by Chameleon's rule (squared-distance argmin, the rule of ``encode_codes`` at inference),
  with the straight-through gradient;
- loss: mean squared reconstruction error + ``commitment`` x ||z - sg(e)||^2; Adam with warm-up and cosine decay;
- codebook: exponential moving averages of the encoder outputs assigned to each entry (VQ-VAE-2), initialised
  from encoder outputs, and entries that fall out of use restarted at the encoder outputs the codebook represents
  worst, so that rare patterns get entries rather than the background more copies of itself.

The fit's held-out report includes ``code_stability``: over (before, after) pairs, the share of cells with identical
pixels whose codes are equal. The encoder's GroupNorm statistics see the whole picture, so a change in one cell can
re-tokenise unchanged background; a world model copies what does not change, so the demo's copy baseline only means
something when that share is high. Measured on held-out pairs (1100 steps): 64 codes keep 75% of unchanged cells'
codes where 512 codes keep about 40% (600 steps), because surplus codes split the background into near-identical
entries. A loss pulling unchanged cells' features together was tried and dropped: 70% with it at 1100 steps, and
worse shapes.

No adversarial or perceptual loss. On shapes-world pictures (:func:`fit_tiny_vqgan`) the fit learns the colours
first and the shapes (6 px inside 8 px cells) later: at 600 steps objects are coloured blobs (15-26% of object cells
decode to the right colour and shape); the default 1100 steps (about 4 minutes on 2 idle CPU cores) give about
29.5 dB held-out PSNR with 64 codes, right colours and 38% of object cells right (55% with 512 codes).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import VQModel
from PIL import Image
from tqdm import tqdm

from wm_hub.atomic_io import write_json
from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.models.chameleon_vqgan import VQGAN_SUBFOLDER, decode_codes, encode_codes, nearest_codes
from wm_hub.models.tiny import (
    FIT_REPORT,
    TinyModelConfig,
    TinySpec,
    read_fitted_vqgan,
    save_tiny_model,
    tiny_vqgan,
    zero_residual_branches,
)

# Boards from the default world's sparsest (2 objects) to nearly half full: busy pictures spend the fit's steps on
# colours and shapes rather than the background, sparse ones keep the default world's pictures in the training
# distribution (trained on busy boards only, the VQGAN's GroupNorm statistics tint sparse pictures).
FIT_WORLD = WorldConfig(min_objects=2, max_objects=28)


@dataclass
class VQFitConfig:
    """How :func:`fit_vqgan` trains.

    Args:
        steps: Optimizer steps.
        batch_size: Images per step.
        lr: Peak Adam learning rate (encoder, decoder and 1x1 convs; the codebook follows its moving averages).
        betas: Adam betas.
        warmup_steps: Steps of linear learning-rate warm-up before the cosine decay to zero.
        commitment: Weight of the commitment loss ||z - sg(e)||^2.
        ema_decay: Decay of the codebook's moving averages.
        dead_code_usage: An entry whose moving-average count of assigned vectors per step falls below this is
            restarted at a random encoder output of the current batch.
        restart_every: Steps between dead-entry restarts.
        restart_at: Where a dead entry restarts: ``"worst"``, the encoder outputs of the batch farthest from their
            entries (patterns the codebook misses, not yet more copies of the background), or ``"random"`` ones.
    """

    steps: int = 1100
    batch_size: int = 8
    lr: float = 3e-3
    betas: tuple[float, float] = (0.5, 0.9)
    warmup_steps: int = 20
    commitment: float = 0.25
    ema_decay: float = 0.95
    dead_code_usage: float = 0.03
    restart_every: int = 10
    restart_at: str = "worst"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps and batch_size must be >= 1 and lr > 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.restart_at not in ("worst", "random"):
            raise ValueError(f"restart_at must be 'worst' or 'random', got {self.restart_at!r}")


@dataclass
class VQFitMetrics:
    """What a fit achieved.

    Attributes:
        steps: Optimizer steps run.
        seconds: Wall time of the training loop.
        steps_per_s: ``steps / seconds``.
        heldout_psnr: Mean PSNR (dB) of the held-out images through ``encode_codes`` -> ``decode_codes``.
        initial_psnr: The same for the VQGAN before fitting.
        codes_used: Distinct codes in the held-out images' tokens.
        code_stability: Over held-out (before, after) pairs (images ``2i``, ``2i + 1``), the fraction of latent
            cells with identical pixels in both whose codes are equal (1.0: unchanged content keeps its tokens).
        num_codes: Codebook size.
        final_loss: Training loss of the last step.
    """

    steps: int
    seconds: float
    steps_per_s: float
    heldout_psnr: float
    initial_psnr: float
    codes_used: int
    code_stability: float
    num_codes: int
    final_loss: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def psnr(reconstruction: torch.Tensor, reference: torch.Tensor, data_range: float = 2.0) -> float:
    """Mean over the batch of the per-image peak signal-to-noise ratio in dB.

    Args:
        reconstruction: ``(B, C, H, W)`` pixel values (clamped to the reference's range by the caller).
        reference: Same shape.
        data_range: Peak-to-peak range of the pixel values (2 for wm-hub's [-1, 1] pixel values, 1 for [0, 1],
            255 for uint8).
    """
    if reconstruction.shape != reference.shape:
        raise ValueError(f"shape mismatch: {tuple(reconstruction.shape)} vs {tuple(reference.shape)}")
    mse = (reconstruction.double() - reference.double()).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).mean().item()


def images_to_pixels(images: Iterable[Image.Image] | torch.Tensor) -> torch.Tensor:
    """PIL images (all of one size) -> ``(N, 3, H, W)`` uint8; a uint8 tensor passes through."""
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected (N, 3, H, W) uint8 pixels, got {images.dtype} {tuple(images.shape)}")
        return images
    arrays = [np.asarray(image.convert("RGB")) for image in images]
    if not arrays:
        raise ValueError("no images")
    sizes = {array.shape for array in arrays}
    if len(sizes) > 1:
        raise ValueError(f"images of several sizes {sorted(sizes)}: resize them to one size first")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _to_unit(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float() / 127.5 - 1.0


def reconstruct(vqgan: VQModel, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize and decode as a backbone does; returns the reconstruction (clamped to [-1, 1]) and the codes."""
    codes, _ = encode_codes(vqgan, pixel_values)
    side = pixel_values.shape[-1] // 2 ** (len(vqgan.config.block_out_channels) - 1)
    return decode_codes(vqgan, codes, (side, side)).clamp(-1, 1), codes


def unchanged_cells(before: torch.Tensor, after: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(N, h, w)`` mask of the latent cells whose pixels are identical in ``before`` and ``after`` (N, 3, H, W)."""
    changed = (before != after).any(dim=1)
    height, width = grid
    blocks = changed.reshape(len(changed), height, changed.shape[1] // height, width, changed.shape[2] // width)
    return ~blocks.any(dim=4).any(dim=2)


def evaluate(vqgan: VQModel, pixels: torch.Tensor, batch_size: int = 64) -> tuple[float, int, float]:
    """Held-out PSNR (dB, images weighted equally), distinct codes used and code stability on uint8 ``pixels``."""
    total, used, all_codes = 0.0, set(), []
    batch_size += batch_size % 2  # keep pairs together
    for start in range(0, len(pixels), batch_size):
        batch = _to_unit(pixels[start : start + batch_size])
        reconstruction, codes = reconstruct(vqgan, batch)
        total += psnr(reconstruction, batch) * len(batch)
        used.update(codes.unique().tolist())
        all_codes.append(codes.reshape(len(batch), -1))
    pairs = len(pixels) // 2 * 2
    codes = torch.cat(all_codes)[:pairs]
    side = pixels.shape[-1] // 2 ** (len(vqgan.config.block_out_channels) - 1)
    same = unchanged_cells(pixels[0:pairs:2], pixels[1:pairs:2], (side, side)).reshape(pairs // 2, -1)
    stability = float((codes[0::2] == codes[1::2])[same].float().mean()) if same.any() else float("nan")
    return total / len(pixels), len(used), stability


class _EMACodebook:
    """Moving-average codebook updates with dead-entry restarts, writing into ``vqgan.quantize.embedding``."""

    def __init__(self, weight: torch.Tensor, config: VQFitConfig, generator: torch.Generator):
        self.weight = weight
        self.config = config
        self.generator = generator
        self.counts = torch.zeros(weight.shape[0])
        self.sums = torch.zeros_like(weight)

    def _random_rows(self, vectors: torch.Tensor, count: int) -> torch.Tensor:
        if count <= len(vectors):
            return vectors[torch.randperm(len(vectors), generator=self.generator)[:count]]
        return vectors[torch.randint(len(vectors), (count,), generator=self.generator)]

    def _restart_rows(self, vectors: torch.Tensor, codes: torch.Tensor, count: int) -> torch.Tensor:
        if self.config.restart_at == "random":
            return self._random_rows(vectors, count)
        errors = (vectors - self.weight[codes]).pow(2).sum(dim=1)
        return (
            vectors[errors.argsort(descending=True)[:count]]
            if count <= len(vectors)
            else self._random_rows(vectors, count)
        )

    def initialise(self, vectors: torch.Tensor) -> None:
        """Start every entry at a distinct encoder output (repeated only when there are fewer outputs)."""
        self.weight.copy_(self._random_rows(vectors, len(self.weight)))
        self.sums.copy_(self.weight)
        self.counts.fill_(1.0)

    def update(self, vectors: torch.Tensor, codes: torch.Tensor, step: int) -> None:
        decay = self.config.ema_decay
        num_codes = len(self.weight)
        self.counts.mul_(decay).add_(torch.bincount(codes, minlength=num_codes).float(), alpha=1 - decay)
        self.sums.mul_(decay).index_add_(0, codes, vectors, alpha=1 - decay)
        total = self.counts.sum()
        smoothed = (self.counts + 1e-5) / (total + num_codes * 1e-5) * total  # Laplace smoothing: no division by 0
        self.weight.copy_(self.sums / smoothed.unsqueeze(1))
        if (step + 1) % self.config.restart_every == 0:
            dead = self.counts < self.config.dead_code_usage
            if dead.any():
                fresh = self._restart_rows(vectors, codes, int(dead.sum()))
                self.weight[dead] = fresh
                self.sums[dead] = fresh
                self.counts[dead] = 1.0


def fit_vqgan(
    vqgan: VQModel,
    images: Iterable[Image.Image] | torch.Tensor,
    heldout: Iterable[Image.Image] | torch.Tensor,
    config: VQFitConfig | None = None,
) -> tuple[VQModel, VQFitMetrics]:
    """Train ``vqgan`` (in place) as a VQ autoencoder on ``images``; report its PSNR on ``heldout``.

    Deterministic for a given ``vqgan`` initialisation, data, ``config.seed`` and number of torch threads.

    Args:
        vqgan: A Chameleon-layout ``VQModel`` (e.g. :func:`wm_hub.models.tiny.tiny_vqgan`), usually random.
        images: Training images (PIL, one size), or ``(N, 3, H, W)`` uint8 pixels; batches are drawn from them
            at random with replacement.
        heldout: Images to measure the PSNR on, not in ``images``.
        config: Training settings.

    Returns:
        The fitted ``vqgan`` (eval mode, frozen) and its :class:`VQFitMetrics`.
    """
    config = config or VQFitConfig()
    train, test = images_to_pixels(images), images_to_pixels(heldout)
    vqgan.eval().requires_grad_(False)
    initial_psnr, _, _ = evaluate(vqgan, test)
    generator = torch.Generator().manual_seed(config.seed)
    codebook = _EMACodebook(vqgan.quantize.embedding.weight, config, generator)
    parameters = [parameter for name, parameter in vqgan.named_parameters() if not name.startswith("quantize.")]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=config.lr, betas=config.betas)

    def schedule(step: int) -> float:
        warmup = min(1.0, (step + 1) / max(1, config.warmup_steps))
        return warmup * 0.5 * (1 + math.cos(math.pi * step / config.steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    vqgan.train()
    start = time.perf_counter()
    loss = torch.zeros(())
    with tqdm(range(config.steps), desc="fitting the VQGAN", unit="step", disable=not config.progress) as bar:
        for step in bar:
            batch = _to_unit(train[torch.randint(len(train), (config.batch_size,), generator=generator)])
            features = vqgan.quant_conv(vqgan.encoder(batch))
            batch_size, dim, height, width = features.shape
            vectors = features.permute(0, 2, 3, 1).reshape(-1, dim)
            with torch.no_grad():
                if step == 0:
                    codebook.initialise(vectors)
                codes = nearest_codes(vectors, codebook.weight)
                codebook.update(vectors, codes, step)
                quantized = codebook.weight[codes]
            commitment = F.mse_loss(vectors, quantized)
            straight_through = vectors + (quantized - vectors).detach()
            latents = straight_through.reshape(batch_size, height, width, dim).permute(0, 3, 1, 2)
            reconstruction = vqgan.decoder(vqgan.post_quant_conv(latents))
            loss = F.mse_loss(reconstruction, batch) + config.commitment * commitment
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", codes=int(codes.unique().numel()))
    seconds = time.perf_counter() - start
    vqgan.eval().requires_grad_(False)
    heldout_psnr, codes_used, code_stability = evaluate(vqgan, test)
    metrics = VQFitMetrics(
        steps=config.steps,
        seconds=seconds,
        steps_per_s=config.steps / seconds,
        heldout_psnr=heldout_psnr,
        initial_psnr=initial_psnr,
        codes_used=codes_used,
        code_stability=code_stability,
        num_codes=vqgan.config.num_vq_embeddings,
        final_loss=loss.item(),
    )
    return vqgan, metrics


def shapes_world_images(split: str, count: int, world: WorldConfig | None = None) -> list[Image.Image]:
    """``count`` shapes-world pictures: source, target, source, target... of triplets 0, 1... of ``split``."""
    generator = ShapesWorld(world)
    images = []
    for index in range((count + 1) // 2):
        triplet = generator.triplet(split, index)
        images += [triplet.source, triplet.target]
    return images[:count]


def fit_tiny_vqgan(
    spec: TinySpec | None = None,
    config: VQFitConfig | None = None,
    num_images: int = 4096,
    num_heldout: int = 128,
) -> tuple[VQModel, VQFitMetrics]:
    """Fit the tiny presets' VQGAN on shapes-world pictures (``wm-hub tiny-model --fit-vq shapes_world``).

    Trains :func:`~wm_hub.models.tiny.tiny_vqgan` with zero-init residual branches (every block starts as the
    identity, which fits faster here than diffusers' init) on ``num_images`` pictures of the ``train`` split of
    :data:`FIT_WORLD`, and measures the PSNR on ``num_heldout`` pictures of the ``test`` split of the default world
    (what the demo data looks like).

    Args:
        spec: Tiny sizes (codebook size, image size) and the seed of the VQGAN's random init.
        config: Training settings.
        num_images: Training pictures.
        num_heldout: Held-out pictures.
    """
    spec = spec or TinySpec()
    world = dataclasses.replace(FIT_WORLD, image_size=spec.image_size)
    train = shapes_world_images("train", num_images, world)
    heldout = shapes_world_images("test", num_heldout, WorldConfig(image_size=spec.image_size))
    torch.manual_seed(spec.seed)
    vqgan = tiny_vqgan(spec)
    zero_residual_branches(vqgan)
    return fit_vqgan(vqgan, train, heldout, config)


def write_tiny_model(config: TinyModelConfig) -> dict[str, Any] | None:
    """Write the tiny backbone ``config`` asks for (``wm-hub tiny-model``), with a fitted or reused VQGAN if asked.

    ``fit_vq`` fits the VQGAN first (:func:`fit_tiny_vqgan`, ``fit_steps`` steps, the model's seed); ``vqgan``
    reuses a saved one, whose sizes become the spec's defaults. The fit report (the data, the spec, the fit
    settings and :class:`VQFitMetrics`; a reused VQGAN's own report) is written to ``OUT/vqgan/vq_fit.json``.

    Returns:
        The fit report, ``None`` for a random VQGAN (or a reused one without report).

    Raises:
        ValueError: ``out`` is a file, a VQGAN asked for an Emu3 backbone (it has its own VQ model), or sizes the VQGAN
            does not have.
        FileNotFoundError: ``vqgan`` holds no saved VQGAN.
    """
    if Path(config.out).exists() and not Path(config.out).is_dir():
        raise ValueError(f"--out {config.out} is a file: give a folder for the model")
    if config.arch == "emu3" and (config.vqgan or config.fit_vq):
        raise ValueError("--vqgan/--fit-vq: emu3 has its own VQ model, not Chameleon's VQGAN")
    vqgan, report = read_fitted_vqgan(config.vqgan) if config.vqgan else (None, None)
    spec = config.spec(vqgan)
    if config.fit_vq:
        fit_config = VQFitConfig(seed=config.seed, **({"steps": config.fit_steps} if config.fit_steps else {}))
        vqgan, metrics = fit_tiny_vqgan(spec, fit_config)
        report = {"data": config.fit_vq, "spec": vars(spec), "config": vars(fit_config), **metrics.to_dict()}
    out = save_tiny_model(config.arch, config.out, spec, vqgan)
    if report is not None:
        write_json(out / VQGAN_SUBFOLDER / FIT_REPORT, report)
    return report

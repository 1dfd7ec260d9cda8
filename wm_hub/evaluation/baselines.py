"""The InstructPix2Pix baseline of AURORA-BENCH (paper Tables 2 and 6; the copy baseline is in
:mod:`wm_hub.evaluation.aurora`).

InstructPix2Pix (Brooks et al., 2023) through diffusers' ``StableDiffusionInstructPix2PixPipeline``; the model
id (``timbrooks/instruct-pix2pix`` by default) or a local folder is an option. Sources are resized to a square
``resolution`` (a multiple of 8) so that rows of any size share a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

DEFAULT_IP2P_MODEL = "timbrooks/instruct-pix2pix"


@dataclass
class InstructPix2PixConfig:
    """InstructPix2Pix sampling settings.

    The guidance scales are the diffusers pipeline's defaults (7.5, 1.5); 20 denoising steps is wm-hub's choice (the
    pipeline's own default is 100, and the paper does not give its settings), for an affordable baseline run.

    Attributes:
        model: Hub id or local folder of a diffusers InstructPix2Pix pipeline.
        num_inference_steps: Denoising steps.
        guidance_scale: Text guidance.
        image_guidance_scale: Source-image guidance.
        resolution: Side of the square input (and output) images; a multiple of 8.
        seed: Seed of the sampling generator (one generator per batch, seeded ``seed + first row index``).
        device: Torch device; ``None`` picks CUDA when available.
        dtype: ``float16``/``bfloat16``/``float32``; ``None`` is float16 on CUDA, float32 on CPU.
    """

    model: str = DEFAULT_IP2P_MODEL
    num_inference_steps: int = 20
    guidance_scale: float = 7.5
    image_guidance_scale: float = 1.5
    resolution: int = 512
    seed: int = 0
    device: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        if self.resolution <= 0 or self.resolution % 8:
            raise ValueError(f"InstructPix2Pix resolution must be a positive multiple of 8, got {self.resolution}")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")


class InstructPix2PixBaseline:
    """Batched InstructPix2Pix predictions (one pipeline call per batch)."""

    def __init__(self, config: InstructPix2PixConfig):
        from diffusers import StableDiffusionInstructPix2PixPipeline

        self.config = config
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype_name = config.dtype or ("float16" if self.device.type == "cuda" else "float32")
        self.pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            config.model, dtype=getattr(torch, dtype_name), safety_checker=None, requires_safety_checker=False
        ).to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)

    def predict(
        self, sources: Sequence[Image.Image], instructions: Sequence[str], offset: int = 0
    ) -> list[Image.Image]:
        """Edit each source by its instruction.

        Args:
            sources: Source observations (any size; resized to ``resolution`` x ``resolution``).
            instructions: One instruction per source.
            offset: Index of the first row, added to the seed so a resumed run draws the same noise per batch.

        Returns:
            ``resolution`` x ``resolution`` RGB predictions, one per source.
        """
        if len(sources) != len(instructions):
            raise ValueError(f"{len(sources)} sources but {len(instructions)} instructions")
        size = (self.config.resolution, self.config.resolution)
        images = [source.convert("RGB").resize(size, Image.Resampling.BICUBIC) for source in sources]
        generator = torch.Generator(device="cpu").manual_seed(self.config.seed + offset)
        output = self.pipeline(
            prompt=list(instructions),
            image=images,
            num_inference_steps=self.config.num_inference_steps,
            guidance_scale=self.config.guidance_scale,
            image_guidance_scale=self.config.image_guidance_scale,
            generator=generator,
        )
        return list(output.images)

"""Inference: logits processors and batched image generation (pipelines and best-of-N build on these)."""

from wm_hub.inference.generation import ImageGenerationOutput, generate_images
from wm_hub.inference.logits_processors import ImageOnlyLogitsProcessor

__all__ = ["ImageGenerationOutput", "ImageOnlyLogitsProcessor", "generate_images"]

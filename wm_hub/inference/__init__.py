"""Inference: logits processors, batched image generation, and the forward/inverse-dynamics pipelines."""

from wm_hub.inference.forward_dynamics import ForwardDynamicsPipeline
from wm_hub.inference.generation import ImageGenerationOutput, generate_images
from wm_hub.inference.inverse_dynamics import InverseDynamicsPipeline
from wm_hub.inference.logits_processors import ImageOnlyLogitsProcessor

__all__ = [
    "ForwardDynamicsPipeline",
    "ImageGenerationOutput",
    "ImageOnlyLogitsProcessor",
    "InverseDynamicsPipeline",
    "generate_images",
]

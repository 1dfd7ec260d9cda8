"""Image metrics of AURORA-BENCH (paper Appendix B, Table 6): L1, CLIP-I, CLIP-T and DINO.

- L1: mean absolute difference of RGB values in [0, 1] between prediction and target, at the prediction's
  resolution (the target is resized to the prediction's size with bicubic resampling), averaged over pixels and
  channels. :func:`l1_distance` gives one row's value; the runner averages rows.
- CLIP-I / DINO: cosine similarity of the image embeddings of prediction and target (CLIP's projected image
  embedding; the DINO ViT's ``[CLS]`` token of the last, layer-normalised hidden state).
- CLIP-T: cosine similarity of the prediction's CLIP image embedding with the CLIP text embedding of a text (the
  action, or the row's caption).

The embedding models load with transformers from any Hub id or local folder (``AutoModel`` +
``AutoImageProcessor``/``AutoTokenizer``), run batched under ``torch.no_grad`` with a progress bar.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DINO_MODEL = "facebook/dino-vitb16"


def rgb_array(image: Image.Image) -> np.ndarray:
    """``image`` as float64 RGB values in [0, 1], shape (H, W, 3) (alpha and palettes dropped by ``convert``)."""
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def l1_distance(prediction: Image.Image, target: Image.Image) -> float:
    """Mean absolute RGB difference in [0, 1] at the prediction's resolution (target resized bicubic).

    Args:
        prediction: Predicted next observation.
        target: Ground-truth next observation (any size and mode).

    Returns:
        The mean over pixels and channels.
    """
    target = target.convert("RGB")
    if target.size != prediction.size:
        target = target.resize(prediction.size, Image.Resampling.BICUBIC)
    return float(np.abs(rgb_array(prediction) - rgb_array(target)).mean())


def _cosine(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).tolist()


def _batches(count: int, batch_size: int, desc: str) -> Iterator[slice]:
    """Slices of ``batch_size`` over ``count`` items, with a progress bar that advances as batches are done."""
    for start in tqdm(range(0, count, batch_size), desc=desc, unit=" batches", leave=False):
        yield slice(start, start + batch_size)


@dataclass
class EmbeddingConfig:
    """Where and how an embedding model runs.

    Attributes:
        model: Hub id or local folder.
        device: Torch device; ``None`` picks CUDA when available.
        batch_size: Images (or texts) per forward pass.
    """

    model: str
    device: str | None = None
    batch_size: int = 16

    def torch_device(self) -> torch.device:
        """The configured device, or CUDA when available, else CPU."""
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))


class ClipScorer:
    """CLIP-I and CLIP-T with a transformers CLIP model (``CLIPModel`` and its processor and tokenizer)."""

    def __init__(self, config: EmbeddingConfig):
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        self.config = config
        self.device = config.torch_device()
        self.model = AutoModel.from_pretrained(config.model).to(self.device).eval()
        if not hasattr(self.model, "get_image_features") or not hasattr(self.model, "get_text_features"):
            raise ValueError(f"{config.model}: {type(self.model).__name__} is not a CLIP-like model (image + text)")
        self.image_processor = AutoImageProcessor.from_pretrained(config.model)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image], desc: str = "CLIP images") -> torch.Tensor:
        """Projected CLIP image embeddings, (N, D), in batches."""
        out = []
        for part in _batches(len(images), self.config.batch_size, desc):
            pixels = self.image_processor(images=[im.convert("RGB") for im in images[part]], return_tensors="pt")
            features = self.model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device))
            out.append(features.pooler_output.cpu())
        return torch.cat(out)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str], desc: str = "CLIP texts") -> torch.Tensor:
        """Projected CLIP text embeddings, (N, D); texts longer than the model's context are truncated."""
        max_length = self.model.config.text_config.max_position_embeddings
        out = []
        for part in _batches(len(texts), self.config.batch_size, desc):
            tokens = self.tokenizer(
                list(texts[part]), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            features = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            )
            out.append(features.pooler_output.cpu())
        return torch.cat(out)

    def image_similarity(self, predictions: Sequence[Image.Image], targets: Sequence[Image.Image]) -> list[float]:
        """CLIP-I of each (prediction, target) pair."""
        return _cosine(self.image_embeddings(predictions), self.image_embeddings(targets, desc="CLIP targets"))

    def text_similarity(self, predictions: Sequence[Image.Image], texts: Sequence[str]) -> list[float]:
        """CLIP-T of each (prediction, text) pair."""
        return _cosine(self.image_embeddings(predictions), self.text_embeddings(texts))


class DinoScorer:
    """DINO image similarity with a transformers ViT (``facebook/dino-vit*``) or DINOv2 model."""

    def __init__(self, config: EmbeddingConfig):
        from transformers import AutoImageProcessor, AutoModel

        self.config = config
        self.device = config.torch_device()
        self.model = AutoModel.from_pretrained(config.model).to(self.device).eval()
        self.image_processor = AutoImageProcessor.from_pretrained(config.model)

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image], desc: str = "DINO images") -> torch.Tensor:
        """The ``[CLS]`` token of the last hidden state (after the final layer norm), (N, D)."""
        out = []
        for part in _batches(len(images), self.config.batch_size, desc):
            pixels = self.image_processor(images=[im.convert("RGB") for im in images[part]], return_tensors="pt")
            hidden = self.model(pixel_values=pixels["pixel_values"].to(self.device)).last_hidden_state
            out.append(hidden[:, 0].cpu())
        return torch.cat(out)

    def image_similarity(self, predictions: Sequence[Image.Image], targets: Sequence[Image.Image]) -> list[float]:
        """DINO similarity of each (prediction, target) pair."""
        return _cosine(self.image_embeddings(predictions), self.image_embeddings(targets, desc="DINO targets"))


class BlipCaptioner:
    """Captions of images with a transformers BLIP captioning model (``Salesforce/blip-image-captioning-*``): the
    text of the paper's CLIP-T, which compares a prediction with a BLIP caption of the edited (target) image.

    Captions are greedy (``max_new_tokens`` tokens at most), so a picture always gets the same one.
    """

    def __init__(self, config: EmbeddingConfig, max_new_tokens: int = 30):
        from transformers import AutoImageProcessor, AutoTokenizer, BlipForConditionalGeneration

        self.config = config
        self.device = config.torch_device()
        self.max_new_tokens = max_new_tokens
        self.model = BlipForConditionalGeneration.from_pretrained(config.model).to(self.device).eval()
        self.image_processor = AutoImageProcessor.from_pretrained(config.model)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)

    @torch.no_grad()
    def captions(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image, in order."""
        out: list[str] = []
        for part in _batches(len(images), self.config.batch_size, "BLIP captions"):
            pixels = self.image_processor(images=[im.convert("RGB") for im in images[part]], return_tensors="pt")
            generated = self.model.generate(
                pixel_values=pixels["pixel_values"].to(self.device),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
            )
            out += [text.strip() for text in self.tokenizer.batch_decode(generated, skip_special_tokens=True)]
        return out

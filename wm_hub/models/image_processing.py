"""The square image preprocessing of Liquid and Emu3, as an image processor saved with the checkpoint.

Chameleon/Anole ship ``transformers``' ``ChameleonImageProcessor``. Liquid has no image processor of its own (its
repository pads to a square and resizes), and ``transformers``' ``Emu3ImageProcessor`` keeps the aspect ratio
(a "smart resize" between pixel bounds), while wm-hub's Emu3 path tokenizes fixed squares. Both are
:class:`SquareImageProcessor` settings, written to ``processor_config.json`` by
:class:`~wm_hub.models.processing.WorldModelProcessor` like any image processor, so a checkpoint says how its images
were read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers.image_processing_base import BatchFeature, ImageProcessingMixin

LIQUID_PAD_COLOR = (122, 116, 104)
SIXTEEN_BIT_MAX = 65535


def eight_bit(image: Image.Image) -> Image.Image:
    """``image`` with 8-bit samples: a 16-bit grayscale picture (PIL modes ``I;16*``, and ``I`` holding 0..65535, as
    PIL opens 16-bit PNGs and TIFFs) scaled to 0..255; any other mode unchanged.

    PIL's own ``convert("RGB")`` clips such samples at 255, which turns a 16-bit picture almost white.

    Raises:
        ValueError: A floating-point picture (mode ``F``: no fixed range) or 32-bit integers outside 0..65535.
    """
    if image.mode == "F":
        raise ValueError("a floating-point picture (PIL mode F) has no fixed range: save it as 8-bit RGB")
    if not (image.mode == "I" or image.mode.startswith("I;16")):
        return image
    samples = np.asarray(image).astype(np.int64)
    if samples.size and (samples.min() < 0 or samples.max() > SIXTEEN_BIT_MAX):
        raise ValueError(
            f"a 32-bit integer picture with samples {samples.min()}..{samples.max()}, outside 16-bit 0..65535: "
            "save it as 8-bit RGB"
        )
    return Image.fromarray(((samples * 255 + SIXTEEN_BIT_MAX // 2) // SIXTEEN_BIT_MAX).astype(np.uint8), mode="L")


def pad_to_square(image: Image.Image, fill: Sequence[int] = LIQUID_PAD_COLOR) -> Image.Image:
    """Centre an RGB image on a square canvas of colour ``fill`` (Liquid's preprocessing)."""
    image = image.convert("RGB")
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), tuple(fill))
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def crop_to_square(image: Image.Image, size: int) -> Image.Image:
    """RGB (alpha blended on white), short side resized to ``size`` (bicubic) and centre-cropped to a square."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    return ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


class SquareImageKwargs(TypedDict, total=False):
    """The settings :meth:`SquareImageProcessor.from_pretrained` accepts as keyword overrides."""

    size: int
    square: str
    pad_color: Sequence[int]


class SquareImageProcessor(ImageProcessingMixin):
    """Images -> ``pixel_values`` ``(B, 3, size, size)`` in [-1, 1], through a square of one of two kinds.

    Args:
        size: Side of the square the VQ tokenizer reads.
        square: ``"pad"`` (Liquid: centre on a ``pad_color`` canvas, then resize, bicubic) or ``"crop"`` (Emu3 in
            wm-hub: blend alpha on white, resize the short side, bicubic, and centre-crop).
        pad_color: RGB of the canvas for ``square="pad"``.
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = SquareImageKwargs

    def __init__(
        self, size: int = 512, square: str = "crop", pad_color: Sequence[int] = LIQUID_PAD_COLOR, **kwargs: Any
    ):
        if square not in ("pad", "crop"):
            raise ValueError(f"SquareImageProcessor: square must be 'pad' or 'crop', got {square!r}")
        super().__init__(**kwargs)
        self.size = int(size)
        self.square = square
        self.pad_color = [int(value) for value in pad_color]

    def square_image(self, image: Image.Image) -> Image.Image:
        """One image as the RGB square of side ``size`` that is then scaled to [-1, 1]."""
        if self.square == "pad":
            return pad_to_square(image, self.pad_color).resize((self.size, self.size), Image.Resampling.BICUBIC)
        return crop_to_square(image, self.size)

    def __call__(self, images: Image.Image | Sequence[Image.Image], return_tensors: str | None = "pt") -> BatchFeature:
        """Preprocess PIL images.

        Args:
            images: One PIL image or several.
            return_tensors: ``"pt"`` (the only kind the VQ tokenizers read) or ``None`` for a float32 array.

        Returns:
            A ``BatchFeature`` with ``pixel_values``.
        """
        if isinstance(images, Image.Image):
            images = [images]
        arrays = np.stack([np.asarray(self.square_image(image), dtype=np.float32) for image in images])
        pixels = arrays.transpose(0, 3, 1, 2) / 127.5 - 1.0
        return BatchFeature({"pixel_values": torch.from_numpy(pixels) if return_tensors == "pt" else pixels})

"""Opening a picture from a file or its bytes, with one wording of why it cannot be used.

Builders check every image file of their rows before writing (``image_problem``), annotation decodes the pairs it
labels, and the weight panels check their rows before the model loads: all of them say why a picture is unusable
the same way, and catch a truncated file (the picture is decoded whole) and a decompression bomb.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError


class PictureError(ValueError):
    """A picture that cannot be used; ``str()`` is the reason (``not an image PIL can read``, ``unreadable (...)``)."""


def open_picture(source: str | Path | bytes) -> Image.Image:
    """The picture at ``source`` (a path or the encoded bytes), decoded whole; its ``format`` is kept.

    Raises:
        PictureError: No such file, not an image, truncated or otherwise unreadable, or a decompression bomb.
    """
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise PictureError("no such file")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            return image
    except UnidentifiedImageError:  # its message names an io.BytesIO or repeats the path
        raise PictureError("not an image PIL can read") from None
    except Image.DecompressionBombError as error:
        raise PictureError(f"too large to decode ({error})") from None
    except OSError as error:
        raise PictureError(f"unreadable ({error})") from None


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable image file (``None`` when PIL decodes it whole, so a truncated file is caught)."""
    try:
        open_picture(path)
    except PictureError as error:
        return str(error)
    return None

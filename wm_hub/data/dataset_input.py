"""A dataset given on the command line: a folder, a ``.parquet`` file or a Hub id, loaded with one set of errors.

Annotation (``--data`` of key-frame pairs), evaluation (``eval idm``, ``eval spatial``, ``probe``) and the weight
panels (``data show-weights``) all take "a dataset": a Hub-layout folder (``wm-hub data build``), a single Parquet
file, or a Hub id that ``datasets.load_dataset`` resolves. :func:`load_dataset_input` reads any of them and turns
each way it can fail into one ``ValueError`` naming the input (and the split), so every task words them the same.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from pyarrow.lib import ArrowException

PARQUET_SUFFIX = ".parquet"


def load_dataset_input(data: str, split: str, name: str | None = None) -> datasets.Dataset:
    """``datasets.load_dataset`` of a folder, a Hub id or (its only split) a ``.parquet`` file.

    Args:
        data: A dataset folder, a ``.parquet`` file or a Hub id.
        split: The split to read (a Parquet file has one, read whatever this says).
        name: The dataset's config, if it has several.

    Returns:
        The split.

    Raises:
        ValueError: ``data`` is another kind of file, is no Parquet, names nothing here or on the Hub (offline
            too), has no such split, or fails to load; each names ``data``.
    """
    path = Path(data)
    if path.is_file() and path.suffix != PARQUET_SUFFIX:
        raise ValueError(f"{data}: a file, not a dataset folder or a {PARQUET_SUFFIX} file")
    try:
        if path.suffix == PARQUET_SUFFIX:
            return datasets.load_dataset("parquet", data_files=str(path), split="train")
        return datasets.load_dataset(data, name=name, split=split)
    except (ValueError, OSError, ArrowException) as error:  # OSError: no such folder, no Hub (offline), no Parquet
        detail = f"{type(error).__name__}: {' '.join(str(error).split())}"
        if not path.exists():
            raise ValueError(f"{data}: no such file or folder here, and not a dataset on the Hub ({detail})") from None
        if path.suffix == PARQUET_SUFFIX:
            raise ValueError(f"{data}: not a Parquet file ({detail})") from None
        if isinstance(error, ValueError) and "split" in str(error).lower():
            raise ValueError(f"{data}: no split {split!r} ({detail}); choose one with --split") from None
        raise ValueError(f"{data}: cannot be loaded as a dataset ({detail})") from None

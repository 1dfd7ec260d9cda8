"""Key-frame pairs to annotate: read from a ``wm-hub keyframes`` folder or from a triplet dataset.

Two inputs give the (source, target) pairs that IDM annotation labels (paper section 3.2):

- **A key-frame folder** written by ``wm-hub keyframes`` (it holds ``keyframes.jsonl``): every video row's
  consecutive key frames ``(i, j)`` form one pair, in file order. The pair's ``video`` is the video's image folder
  under the key-frame folder (``<class>/<video>``, or the file stem for a video given by name: the absolute path
  that ``keyframes.jsonl`` records would leak local paths into a published dataset), its id ``<video>:<i>-<j>``,
  its class the top folder when there is one (the class folder of UCF-101, Kinetics-700, Moments in Time), its
  origin ``<origin_prefix>/<class>`` (or ``<origin_prefix>``).
- **A triplet dataset**: anything ``datasets.load_dataset`` reads with ``id``, ``source`` and ``target`` columns,
  such as a folder written by ``wm-hub data build video_keyframes`` (or ``shapes_world --config videos``), a
  Parquet file or a Hub id. Rows are pairs in dataset order; ``video``, ``frames``, ``origin``, ``action_class``
  and a non-empty ``action`` are kept when the columns exist.

Images are passed on as the encoded bytes they are stored as (no re-encoding), with the relative path under the
annotation folder each image goes to: ``frames/<video>/frame_<index:06d>.<ext>`` when the pair names its video
and frames (a frame shared by two consecutive pairs is stored once), else ``frames/pairs/<row:08d>-<side>.<ext>``.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from wm_hub.atomic_io import utf8_lines
from wm_hub.data.pictures import PictureError, open_picture

KEYFRAMES_INDEX = "keyframes.jsonl"
FRAMES_FOLDER = "frames"
SIDES = ("source", "target")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FramePair:
    """One (source, target) pair to annotate, without its images.

    Attributes:
        id: Unique id of the pair in its input.
        video: The video the pair was cut from (``None`` when the input does not say).
        frames: Frame indices of source and target in ``video``.
        origin: ``dataset/subset`` of the pair (``None`` when the input does not say).
        input_class: Class the input gives the pair (the video's class folder), or ``None``.
        input_action: A non-empty action the input already holds (e.g. ground truth), or ``None``.
        image_stems: Relative paths, without extension, that the source and target images are stored under in the
            annotation folder.
    """

    id: str
    video: str | None
    frames: tuple[int, int] | None
    origin: str | None
    input_class: str | None
    input_action: str | None
    image_stems: tuple[str, str]


@dataclass(frozen=True)
class PairImages:
    """The images of one pair as stored in the input.

    Attributes:
        source: Encoded bytes of the source image.
        target: Encoded bytes of the target image.
        extensions: File extension (with the dot) of each, from its format (``.png``, ``.jpg``...).
        images: The decoded RGB images ``(source, target)``.
    """

    source: bytes
    target: bytes
    extensions: tuple[str, str]
    images: tuple[Image.Image, Image.Image]


class PairInput(ABC):
    """An ordered collection of key-frame pairs whose images are read on demand (see the module docstring).

    Attributes:
        description: What was read (for messages and the run config).
        pairs: The pairs, in input order.
    """

    description: str
    pairs: list[FramePair]

    def read(self, indices: Sequence[int]) -> list[PairImages]:
        """Bytes and decoded images of the pairs at ``indices``.

        Raises:
            ValueError: An image is missing or cannot be decoded; the message names the input, row, id and field.
        """
        return [
            _decode(self.description, index, self.pairs[index].id, raw)
            for index, raw in zip(indices, self._read_bytes(indices))
        ]

    @abstractmethod
    def _read_bytes(self, indices: Sequence[int]) -> list[tuple[bytes | None, bytes | None]]:
        """Encoded source and target bytes (``None`` when missing) of the pairs at ``indices``."""


def load_pairs(data: str | Path, split: str = "train", origin_prefix: str = "video_keyframes") -> PairInput:
    """The key-frame pairs of ``data``: a ``wm-hub keyframes`` folder, or a triplet dataset ``load_dataset`` reads.

    Args:
        data: A folder holding ``keyframes.jsonl``; a dataset folder, Parquet file or Hub id with ``id``, ``source``
            and ``target`` columns.
        split: Dataset split (triplet datasets only).
        origin_prefix: Origin of key-frame folder pairs (``<origin_prefix>/<class>``).

    Raises:
        ValueError: Bad rows (named by file and line, or by row and id), repeated ids, or a dataset without the
            needed columns.
        FileNotFoundError: A key frame listed in ``keyframes.jsonl`` is missing.
    """
    path = Path(data)
    if (path / KEYFRAMES_INDEX).is_file():
        return KeyframeFolderPairs(path, origin_prefix)
    return TripletDatasetPairs(str(data), split)


class KeyframeFolderPairs(PairInput):
    """Consecutive key-frame pairs of a ``wm-hub keyframes`` output folder."""

    def __init__(self, root: str | Path, origin_prefix: str = "video_keyframes"):
        self.root = Path(root)
        index = self.root / KEYFRAMES_INDEX
        self.description = str(index)
        self.pairs, self._files = [], []
        seen: dict[str, str] = {}
        for number, line in utf8_lines(index):
            if not line.strip():
                continue
            where = f"{index}:{number}"
            frames, images = _keyframe_row(line, where)
            for k, image in enumerate(images):
                if not (self.root / image).is_file():
                    raise FileNotFoundError(f"{where}: images[{k}] {self.root / image}: no such file")
            video = Path(images[0]).parent.as_posix()
            parts = video.split("/")
            video_class = parts[0] if len(parts) > 1 else None
            origin = f"{origin_prefix}/{video_class}" if video_class else origin_prefix
            for (i, j), (source, target) in zip(zip(frames, frames[1:]), zip(images, images[1:])):
                pair_id = f"{video}:{i}-{j}"
                if pair_id in seen:
                    raise ValueError(f"{where}: pair {pair_id!r} already read at {seen[pair_id]}")
                seen[pair_id] = where
                stems = tuple(f"{FRAMES_FOLDER}/{Path(name).with_suffix('').as_posix()}" for name in (source, target))
                self.pairs.append(FramePair(pair_id, video, (i, j), origin, video_class, None, stems))
                self._files.append((source, target))

    def _read_bytes(self, indices: Sequence[int]) -> list[tuple[bytes | None, bytes | None]]:
        out = []
        for index in indices:
            paths = [self.root / name for name in self._files[index]]
            out.append(tuple(path.read_bytes() if path.is_file() else None for path in paths))
        return out


def _keyframe_row(line: str, where: str) -> tuple[list[int], list[str]]:
    """``(frames, images)`` of one ``keyframes.jsonl`` line, checked."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    frames, images = row.get("frames"), row.get("images")
    if not (isinstance(frames, list) and all(type(frame) is int for frame in frames)):
        raise ValueError(f"{where}: field 'frames' must be a list of integers, got {frames!r}")
    if not (isinstance(images, list) and all(isinstance(image, str) for image in images)):
        raise ValueError(f"{where}: field 'images' must be a list of paths, got {images!r}")
    if len(frames) != len(images):
        raise ValueError(f"{where}: {len(frames)} frames but {len(images)} images")
    for k, image in enumerate(images):
        if Path(image).is_absolute() or ".." in Path(image).parts:
            raise ValueError(f"{where}: images[{k}] {image!r} must be a path inside the key-frame folder")
    return frames, images


class TripletDatasetPairs(PairInput):
    """The rows of a triplet dataset (``id``, ``source``, ``target`` and optional provenance columns)."""

    def __init__(self, data: str, split: str = "train"):
        import datasets

        from wm_hub.data.dataset_input import PARQUET_SUFFIX, load_dataset_input

        self.description = data if Path(data).suffix == PARQUET_SUFFIX else f"{data} (split {split})"
        dataset = load_dataset_input(data, split)
        missing = [name for name in ("id", *SIDES) if name not in dataset.column_names]
        if missing:
            raise ValueError(
                f"{self.description}: not key-frame pairs, missing column(s) {missing} "
                f"(a folder of `wm-hub keyframes` holds {KEYFRAMES_INDEX}; a triplet dataset has id, source, target)"
            )
        for side in SIDES:
            if isinstance(dataset.features[side], datasets.Image):
                dataset = dataset.cast_column(side, datasets.Image(decode=False))
        self._images = dataset.select_columns(list(SIDES))
        optional = [
            name for name in ("video", "frames", "origin", "action_class", "action") if name in dataset.column_names
        ]
        meta = dataset.select_columns(["id", *optional]).to_list()
        self.pairs = []
        seen: dict[str, int] = {}
        stem_owner: dict[str, str] = {}
        for row_index, row in enumerate(meta):
            pair_id = row["id"]
            if not isinstance(pair_id, str) or not pair_id:
                raise ValueError(f"{self.description}: row {row_index}: field 'id' must be a non-empty string")
            if pair_id in seen:
                raise ValueError(
                    f"{self.description}: row {row_index}: id {pair_id!r} already used by row {seen[pair_id]}"
                )
            seen[pair_id] = row_index
            video, frames = row.get("video"), row.get("frames")
            frames = tuple(frames) if frames is not None and len(frames) == 2 else None
            if video and frames:
                folder = _video_folder(video, stem_owner)
                stems = tuple(f"{FRAMES_FOLDER}/{folder}/frame_{frame:06d}" for frame in frames)
            else:
                stems = tuple(f"{FRAMES_FOLDER}/pairs/{row_index:08d}-{side}" for side in SIDES)
            self.pairs.append(
                FramePair(
                    pair_id,
                    video or None,
                    frames,
                    row.get("origin") or None,
                    row.get("action_class") or None,
                    row.get("action") or None,
                    stems,
                )
            )

    def _read_bytes(self, indices: Sequence[int]) -> list[tuple[bytes | None, bytes | None]]:
        rows = self._images.select(indices)
        out = []
        for row in rows:
            out.append(tuple(_image_value_bytes(row[side]) for side in SIDES))
        return out


def _image_value_bytes(value) -> bytes | None:
    """Bytes of an undecoded ``datasets.Image`` value (``{"bytes", "path"}``), a path string, or ``None``."""
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return value["bytes"]
        value = value.get("path")
    if isinstance(value, str) and Path(value).is_file():
        return Path(value).read_bytes()
    return None


def _video_folder(video: str, owners: dict[str, str]) -> str:
    """A safe relative folder name for ``video``'s frames, unique among the videos seen (``owners``: name -> video)."""
    parts = [_UNSAFE.sub("_", part) for part in Path(video).with_suffix("").parts if part not in ("", "/", "..", ".")]
    name = "/".join(part.strip(".") or "_" for part in parts) or "video"
    if owners.setdefault(name, video) != video:  # two videos that clean up to one name: tell them apart
        name = f"{name}-{hashlib.sha1(video.encode()).hexdigest()[:8]}"
        owners.setdefault(name, video)
    return name


def _decode(description: str, index: int, pair_id: str, raw: tuple[bytes | None, bytes | None]) -> PairImages:
    images, extensions = [], []
    for side, data in zip(SIDES, raw):
        where = f"{description}: row {index} (id {pair_id!r}): field {side!r}"
        if data is None:
            raise ValueError(f"{where}: no image")
        try:
            image = open_picture(data)
        except PictureError as error:
            raise ValueError(f"{where}: {error}") from None
        images.append(image.convert("RGB"))
        extensions.append(".jpg" if image.format == "JPEG" else f".{(image.format or 'img').lower()}")
    return PairImages(raw[0], raw[1], tuple(extensions), tuple(images))

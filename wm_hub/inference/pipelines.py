"""What the ``forward-dynamics`` and ``inverse-dynamics`` pipelines share (registered by :mod:`.registration`).

``pipeline(task, model=path_or_id)`` loads a model through the task's ``pt_model`` classes first and only then
through the names in ``config.architectures``; a Chameleon folder would load as transformers' stock class, which
sets every image-token logit to ``finfo.min`` and cannot draw an image. Both tasks therefore register
:class:`WorldModelLoader` as their only ``pt_model``: it loads the checkpoint with :func:`wm_hub.load_backbone`
(the unsuppressed LM, the VQ image tokenizer and the instruction strings saved in the checkpoint) and hands the
pipeline the whole :class:`~wm_hub.models.base.Backbone`. A failure inside it is re-raised as
:class:`WorldModelLoadError`, an exception type ``pipeline()`` does not swallow, so a broken checkpoint (say, a
missing VQGAN) is reported as such instead of silently falling back to the stock class.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from PIL import Image, ImageOps

from wm_hub.config_parser import SEED_RANGE
from wm_hub.data.pictures import PictureError, open_picture
from wm_hub.inference.registration import register_pipelines, transformers_pipeline_base
from wm_hub.models.base import Backbone
from wm_hub.models.image_processing import eight_bit
from wm_hub.models.loading import load_backbone, torch_device

Pipeline = transformers_pipeline_base()

# Keyword arguments ``transformers.pipeline`` gives every ``pt_model`` class that a backbone has no use for.
_PIPELINE_ONLY_KWARGS = ("_from_pipeline", "trust_remote_code", "code_revision", "local_files_only")


class WorldModelLoadError(Exception):
    """A wm-hub checkpoint could not be loaded as a world-model backbone.

    Deliberately not an ``OSError``/``ValueError``/``TypeError``/``RuntimeError``: ``transformers.pipeline`` catches
    those and tries the next candidate class, which for a Chameleon checkpoint is the stock, image-suppressed one.
    """


def load_pipeline(task: str, flag: str, name: str, device: str | None = None, dtype: str | None = None) -> Pipeline:
    """``transformers.pipeline(task, model=name)`` for a command's model option: a checkpoint that does not load is
    a ``ValueError`` naming the option (``--fdm my-fdm: ...``), not a traceback.

    Args:
        task: ``forward-dynamics`` or ``inverse-dynamics``.
        flag: How messages name the option.
        name: Folder (``~`` expanded) or Hub id.
        device: Torch device (``None``: the pipeline's default).
        dtype: LM dtype (``None``: as saved).
    """
    from transformers import pipeline

    check_model_location(name, flag)
    settings = {key: value for key, value in (("device", device), ("dtype", dtype)) if value}
    if device:  # the pipeline places the model after loading it: a bad name or a missing GPU is refused first
        torch_device(device)
    try:
        return pipeline(task, model=os.path.expanduser(name), **settings)
    except WorldModelLoadError as error:
        raise ValueError(f"{flag} {name}: {error.__cause__ or error}") from error
    except OSError as error:
        raise ValueError(f"{flag} {name}: {error}") from error


class WorldModelLoader:
    """The ``pt_model`` of the wm-hub pipeline tasks: ``from_pretrained`` returns a :class:`Backbone`."""

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs: Any) -> Backbone:
        """Load ``name_or_path`` with :func:`wm_hub.load_backbone`.

        Args:
            name_or_path: Local folder or Hub id of a wm-hub (or stock Chameleon/Liquid/Emu3) checkpoint.
            **kwargs: What ``transformers.pipeline`` passes: ``revision`` and ``token`` go to ``load_backbone``,
                ``dtype`` too (``"auto"`` keeps the saved dtype), as do ``pipeline(model_kwargs=...)`` entries such
                as ``vqgan=`` or ``attn_implementation=``; pipeline bookkeeping arguments are dropped.

        Returns:
            The backbone, in eval mode.

        Raises:
            WorldModelLoadError: Whatever went wrong, with the original exception chained.
        """
        for name in _PIPELINE_ONLY_KWARGS:
            kwargs.pop(name, None)
        for name in ("revision", "token"):
            if kwargs.get(name) is None:
                kwargs.pop(name, None)
        dtype = kwargs.pop("dtype", None)
        if dtype == "auto":
            dtype = None
        try:
            return load_backbone(str(name_or_path), dtype=dtype, **kwargs)
        except Exception as error:
            raise WorldModelLoadError(f"cannot load {name_or_path} as a wm-hub backbone: {error}") from error


def as_backbone(model: Any) -> Backbone:
    """The backbone behind a pipeline's ``model`` argument.

    Args:
        model: A :class:`Backbone` (what :class:`WorldModelLoader` returns, or one from ``load_backbone``).

    Raises:
        TypeError: For anything else (a bare ``PreTrainedModel`` lacks the VQ image tokenizer and the saved prompt),
            with how to build the pipeline instead.
    """
    if isinstance(model, Backbone):
        return model
    raise TypeError(
        f"wm-hub pipelines need a wm_hub Backbone (the LM plus its VQ image tokenizer and saved prompt), got "
        f"{type(model).__name__}; pass model= a checkpoint folder / Hub id, or a Backbone from wm_hub.load_backbone"
    )


class BackbonePipeline(Pipeline):
    """What both wm-hub pipelines share: a whole :class:`Backbone` behind transformers' ``Pipeline``.

    The pipeline holds the backbone (LM, tokenizer, VQ image tokenizer, saved prompt format), runs the LM through
    ``Pipeline`` (device placement, batching) with the image tokenizer on the same device, loads no processor of its
    own, and saves the whole backbone.
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    # what the pipeline's model must have been fine-tuned as, if wm-hub fine-tuned it (``Backbone.trained_task``)
    trained_task: str

    def __init__(self, model: Any, **kwargs: Any):
        self.backbone: Backbone = as_backbone(model)
        found = self.backbone.trained_task
        if found is not None and found != self.trained_task:
            raise ValueError(
                f"{type(self).__name__} needs an {self.trained_task.upper()} or a base model; this checkpoint was "
                f"fine-tuned as an {found.upper()} (its training_run.json says task: {found})"
            )
        kwargs.setdefault("tokenizer", self.backbone.tokenizer)
        super().__init__(model=self.backbone.model, **kwargs)
        self.backbone.image_tokenizer.to(self.device)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save the backbone (LM, tokenizer, VQ model, wm-hub settings): ``pipeline(task, model=dir)`` reloads it.

        transformers' generic version would save the LM and tokenizer only, a folder without image tokenizer.
        """
        self.backbone.save_pretrained(save_directory, **kwargs)


def load_observation(image: Image.Image | str | os.PathLike, what: str = "image") -> Image.Image:
    """An RGB PIL image from a PIL image, a file path, an ``http(s)://`` URL or a ``data:image/...`` URI.

    The picture is turned upright by its EXIF orientation (as ``transformers.image_utils.load_image`` does) and a
    16-bit one scaled to 8 bits (:func:`~wm_hub.models.image_processing.eight_bit`) before it becomes RGB.

    Args:
        image: The observation.
        what: How error messages name the input (e.g. ``"source 2"``).

    Raises:
        FileNotFoundError: For a path that is not a file.
        ValueError: For a file, URL or URI that gives no usable picture (not an image, truncated, a decompression
            bomb, empty, a floating-point picture, an unreachable URL), naming ``what``.
        TypeError: For any other type.
    """
    from transformers.image_utils import load_image

    if isinstance(image, os.PathLike):
        image = os.fspath(image)
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:image/")):
        try:
            picture = load_image(image)
        except Exception as error:  # httpx, base64 and PIL errors alike: the URL gives no picture
            reason = f"{type(error).__name__}: {error}"
            raise ValueError(f"{what}: {image[:80]}: no picture from this URL ({reason})") from None
    elif isinstance(image, str):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"{what}: {image}: no such image file")
        try:
            picture = open_picture(image)
        except PictureError as error:
            raise ValueError(f"{what}: {image}: {error}") from None
    elif isinstance(image, Image.Image):
        picture = image
    else:
        raise TypeError(f"{what}: expected a PIL image, a path or a URL, got {type(image).__name__}")
    if 0 in picture.size:
        raise ValueError(f"{what}: an empty picture ({picture.size[0]}x{picture.size[1]} pixels)")
    try:
        return eight_bit(ImageOps.exif_transpose(picture)).convert("RGB")
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None


def check_action(text: Any, what: str) -> str:
    """``text`` if it is a usable action: a string, not blank, encodable as UTF-8 (no lone surrogates).

    Raises:
        TypeError: Not a string.
        ValueError: Blank, or not valid UTF-8 text, naming ``what``.
    """
    if not isinstance(text, str):
        raise TypeError(f"{what}: expected a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{what}: a blank action")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{what}: not valid UTF-8 text ({error.reason} at character {error.start})") from None
    return text


def check_seed(seed: Any) -> int:
    """``seed`` if it is an integer in ``[0, 2**32)`` (what the command line takes; a rollout adds its step).

    Raises:
        TypeError: Not an integer (a bool or a float included).
        ValueError: Out of range.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < SEED_RANGE:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return seed


def check_model_location(name: str, what: str) -> None:
    """Refuse at once a model name that is a file, or a path (absolute, ``./``, ``../``, ``~``) that does not exist,
    instead of asking the Hub for it (retries, then an unrelated repo-id error).

    Raises:
        ValueError: Naming ``what`` and the path.
    """
    path = os.path.expanduser(name)
    if os.path.isfile(path):
        raise ValueError(f"{what} {name}: is a file; give a model folder or a Hub id")
    if not os.path.exists(path) and (os.path.isabs(path) or name.startswith((".", "~"))):
        raise ValueError(f"{what} {name}: no such model folder")


def encode_observations(backbone: Backbone, observations: list[Image.Image | torch.Tensor]) -> list[torch.Tensor]:
    """LM image ids of every observation, with ONE VQ encoder call for all the PIL images among them.

    Args:
        backbone: Whose image tokenizer encodes.
        observations: PIL images, or LongTensors of ``image_seq_len`` LM image ids (kept as they are). The same PIL
            object listed several times (a source shared by N candidates) is encoded once.

    Returns:
        One ``(image_seq_len,)`` LongTensor per observation, in order.
    """
    unique: dict[int, Image.Image] = {}
    for item in observations:
        if isinstance(item, Image.Image):
            unique.setdefault(id(item), item)
    encoded = dict(zip(unique, backbone.encode_images(list(unique.values())))) if unique else {}
    result = []
    for index, item in enumerate(observations):
        if isinstance(item, Image.Image):
            result.append(encoded[id(item)])
            continue
        result.append(backbone.check_image_ids(item, f"observation {index}"))
    return result


register_pipelines()  # imports the two pipeline modules, which need this one's names (see .registration)

"""Next observations of one image from files on disk: what ``wm-hub generate`` and ``wm-hub rollout`` run.

Both load the forward-dynamics pipeline (and, with ``idm``, the inverse-dynamics verifier) and refuse bad settings
before loading anything: counts below 1, sampling values transformers would read as "off", a blank action, an
``out`` of the wrong kind, an image PIL cannot read, a missing model folder or a checkpoint fine-tuned for the
other task. Every file is written under a temporary name and renamed into place; a rerun removes the images an
earlier, larger run left behind.

:func:`generate` (one step; ``wm-hub predict`` is its old name) writes either kind of output::

    next.png                       the chosen image: best-of-N with the verifier, else the one sample
    OUT/candidate_0.png ...        a folder: every candidate, in sampling order
    OUT/prediction.json            the action, the candidate files, the verifier's scores (with idm), the settings

:func:`rollout` applies the actions in turn, each prediction feeding the next step::

    OUT/step_01.png ...            the chosen image of each step
    OUT/rollout.json               per step: action, image file, verifier score; the settings
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from wm_hub.atomic_io import write_json, write_with

PREDICTION_FILE = "prediction.json"
ROLLOUT_FILE = "rollout.json"


@dataclass
class ForwardDynamicsOptions:
    """The models, the observation and the sampling settings of a forward-dynamics run.

    Args:
        fdm: Forward-dynamics model: a folder or Hub id.
        image: The current observation (an image file).
        idm: Inverse-dynamics model that keeps the best of ``num_candidates`` samples, the one with the highest
            ``log p(action | image, candidate)`` (best-of-N verification, paper section 3.3).
        num_candidates: Samples per step, in one batch.
        temperature: Sampling temperature (the paper's: 1.0; lower values tend to copy the source).
        top_k: Keep the k most likely image tokens (``None``: all).
        top_p: Nucleus sampling over image tokens (``None``: off).
        seed: Sampling seed; step ``i`` of a rollout uses ``seed + i`` (``None``: unseeded).
        device: Torch device, e.g. ``cpu`` or ``cuda:0`` (``None``: GPU 0 if any).
        dtype: LM dtype, e.g. ``bfloat16`` (``None``: as saved).
        cache: ``static`` for a static KV cache, faster decoding on GPU (``None``: dynamic).
    """

    fdm: str = field(metadata={"help": "forward-dynamics model: folder or Hub id", "metavar": "MODEL"})
    image: str = field(metadata={"help": "the current observation (image file)"})
    idm: str | None = field(
        default=None,
        metadata={"help": "inverse-dynamics model that picks the best of N candidates", "metavar": "MODEL"},
    )
    num_candidates: int = field(
        default=1, metadata={"help": "candidates sampled per step, in one batch", "metavar": "N"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (the paper's)"})
    top_k: int | None = field(default=None, metadata={"help": "keep the k most likely image tokens (default: all)"})
    top_p: float | None = field(default=None, metadata={"help": "nucleus sampling over image tokens (default: off)"})
    seed: int | None = field(default=None, metadata={"help": "sampling seed (a rollout's step i uses seed + i)"})
    device: str | None = field(
        default=None, metadata={"help": "torch device, e.g. cpu or cuda:0 (default: GPU 0 if any)"}
    )
    dtype: str | None = field(default=None, metadata={"help": "LM dtype, e.g. bfloat16 (default: as saved)"})
    cache: Literal["static"] | None = field(default=None, metadata={"help": "static KV cache (faster on GPU)"})

    def sampling(self) -> dict[str, Any]:
        """The pipeline call arguments these settings give."""
        return {
            "num_candidates": self.num_candidates,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "seed": self.seed,
            "cache_implementation": self.cache,
        }

    def settings(self) -> dict[str, Any]:
        """What a summary records of the run: the models, the image and the sampling settings."""
        return {"fdm": self.fdm, "idm": self.idm, "image": self.image, **self.sampling()}


@dataclass(kw_only=True)
class GenerateConfig(ForwardDynamicsOptions):
    """One prediction (``wm-hub generate``): the :class:`ForwardDynamicsOptions`, the action and where to write.

    Args:
        action: The action text.
        out: A ``.png`` file gets the chosen image (best-of-N with ``idm``); a folder gets every candidate as
            ``candidate_<i>.png`` and ``prediction.json`` (``num_candidates > 1`` without ``idm`` needs a folder).
    """

    action: str = field(metadata={"help": "the action text"})
    out: str = field(
        metadata={
            "help": "a .png file for the chosen image, or a folder for every candidate (candidate_<i>.png) and "
            "prediction.json"
        }
    )


@dataclass(kw_only=True)
class PredictConfig(GenerateConfig):
    """``wm-hub predict``, the old name of ``wm-hub generate``, with its old flag and defaults.

    Args:
        fdm: Forward-dynamics model: a folder or Hub id (``--model``, its old flag, works too).
        num_candidates: Samples per step, in one batch (4, as ``predict`` always drew).
        seed: Sampling seed (0, ``predict``'s default).
        device: Torch device (``cpu``, ``predict``'s default; ``cuda:0`` for a GPU).
    """

    fdm: str = field(
        metadata={"help": "forward-dynamics model: folder or Hub id", "metavar": "MODEL", "aliases": ["--model"]}
    )
    num_candidates: int = field(default=4, metadata={"help": "candidates sampled in one batch", "metavar": "N"})
    seed: int | None = field(default=0, metadata={"help": "sampling seed (default: 0)"})
    device: str | None = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda:0"})


@dataclass(kw_only=True)
class RolloutConfig(ForwardDynamicsOptions):
    """A rollout (``wm-hub rollout``): the :class:`ForwardDynamicsOptions`, the actions in order and the folder.

    Args:
        actions: The actions, in order: step ``i`` applies ``actions[i]`` to the prediction of step ``i - 1``.
        out: Output folder (``step_<i>.png`` and ``rollout.json``).
    """

    actions: list[str] = field(metadata={"help": "the actions, in order"})
    out: str = field(metadata={"help": "output folder"})

    def __post_init__(self) -> None:
        if isinstance(self.actions, str):  # a recipe's `actions: go` would be the two steps "g" and "o"
            raise ValueError(f"actions: a list is needed, got the string {self.actions!r} (write [{self.actions!r}])")


def check_trained_task(flag: str, name: str, wanted: str) -> None:
    """Refuse a checkpoint fine-tuned as the other task (its ``training_run.json`` says what it was trained as).

    Args:
        flag: How messages name the model option (``--fdm``).
        name: The model folder or Hub id.
        wanted: ``fdm`` or ``idm``.

    Raises:
        ValueError: The checkpoint was fine-tuned as the other task.
    """
    from wm_hub.models.model_folder import trained_task

    task = trained_task(name)
    if task is not None and task != wanted:
        raise ValueError(
            f"{flag} {name} was fine-tuned as an {task.upper()} (its training_run.json says task: {task}); "
            f"{flag} needs an {wanted.upper()}"
        )


def generate(config: GenerateConfig) -> dict[str, Any]:
    """Predict the next observation of ``config.image`` after ``config.action`` and write it to ``config.out``.

    Returns:
        The summary: ``output`` and ``action``; for a ``.png`` output the verifier's ``score`` of the chosen image
        (``None`` without ``idm``), for a folder the candidate files (``images``) and, with ``idm``, their
        ``scores`` (what ``prediction.json`` holds); then the settings.

    Raises:
        FileNotFoundError: A missing image or model folder.
        ValueError: A bad setting or input (named by its flag), or a model that does not load.
    """
    _check_sampling(config)
    if not config.action.strip():
        raise ValueError("--action is blank: give the action text")
    _check_text("--action", config.action)
    to_folder = _writes_folder(config)
    _check_not_input(config, Path(config.out), ("candidate_*.png", PREDICTION_FILE))
    image, fdm, verifier = _load(config)
    result = fdm(image, action=config.action, verifier=verifier, return_candidates=to_folder, **config.sampling())
    out = Path(config.out)
    if not to_folder:
        _save_png(result["image"], out)
        return {"output": str(out), "action": config.action, "score": result["score"], **config.settings()}
    candidates = result["candidates"] or [result["image"]]  # one sample: no candidate list
    images = [str(_save_png(candidate, out / f"candidate_{i}.png")) for i, candidate in enumerate(candidates)]
    _remove_stale(out, "candidate_*.png", images)
    scores = {"scores": result["scores"] or [result["score"]]} if verifier is not None else {}
    summary = {"action": config.action, "images": images, **scores, **config.settings()}
    write_json(out / PREDICTION_FILE, summary)
    return {"output": str(out), **summary}


def rollout(config: RolloutConfig) -> dict[str, Any]:
    """Apply ``config.actions`` in turn from ``config.image`` and write every step's image to ``config.out``.

    Returns:
        The summary (also ``rollout.json``): ``steps`` (``step``, ``action``, ``image`` file name, ``score``) and
        the settings, after ``output``.

    Raises:
        FileNotFoundError: A missing image or model folder.
        ValueError: A bad setting or input (named by its flag), or a model that does not load.
    """
    _check_sampling(config)
    if config.num_candidates > 1 and config.idm is None:
        raise ValueError("--num-candidates > 1 needs --idm MODEL to choose the best candidate")
    if not config.actions or any(not action.strip() for action in config.actions):
        raise ValueError("--actions holds a blank action: give every step's action text")
    for action in config.actions:
        _check_text("--actions", action)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {config.out}: exists and is not a folder")
    _check_not_input(config, out, ("step_*.png", ROLLOUT_FILE))
    image, fdm, verifier = _load(config)
    results = fdm(image, actions=config.actions, verifier=verifier, **config.sampling())
    width = max(2, len(str(len(results))))
    steps = []
    for step, (action, result) in enumerate(zip(config.actions, results), start=1):
        name = f"step_{step:0{width}d}.png"
        _save_png(result["image"], out / name)
        steps.append({"step": step, "action": action, "image": name, "score": result["score"]})
    summary = {"steps": steps, **config.settings()}
    write_json(out / ROLLOUT_FILE, summary)
    _remove_stale(out, "step_*.png", [str(out / step["image"]) for step in steps])
    return {"output": str(out), **summary}


def _check_text(flag: str, text: str) -> None:
    """Refuse text the tokenizer cannot take (bytes that are not UTF-8 reach Python as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{flag} {text!r} is not valid UTF-8 text") from None


def _check_not_input(config: ForwardDynamicsOptions, out: Path, written: tuple[str, ...]) -> None:
    """Refuse an ``--out`` that is the ``--image``, or the folder holding it when its name is one the command
    writes there (``written``, glob patterns): the outputs, or the removal of stale ones, would replace or delete
    the input."""
    image = Path(config.image).resolve()
    target = out.resolve()
    if target == image or (target == image.parent and any(image.match(pattern) for pattern in written)):
        raise ValueError(f"--out {config.out} would overwrite or remove --image {config.image}: give another --out")


def _check_sampling(options: ForwardDynamicsOptions) -> None:
    from wm_hub.inference.generation import check_sampling

    if options.num_candidates < 1:
        raise ValueError(f"--num-candidates must be >= 1, got {options.num_candidates}")
    check_sampling(options.temperature, options.top_k, options.top_p, as_flags=True)


def _writes_folder(config: GenerateConfig) -> bool:
    """Whether ``config.out`` is a folder for every candidate (else a ``.png`` file for the chosen image)."""
    out = Path(config.out)
    suffix = out.suffix.lower()
    if out.is_dir():
        return True
    if suffix != ".png" and suffix in Image.registered_extensions():
        raise ValueError(f"--out {config.out}: images are written as PNG: give a .png file or a folder")
    if suffix != ".png" and out.exists():
        raise ValueError(f"--out {config.out} is a file: give an output folder")
    if suffix == ".png" and config.num_candidates > 1 and config.idm is None:
        raise ValueError(
            f"--out {config.out} is a file: give an output folder to keep all {config.num_candidates} candidates "
            "(one image file needs --idm MODEL to choose the best candidate)"
        )
    return suffix != ".png"


def _open_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"--image {path}: no such file") from None
    except UnidentifiedImageError:
        raise ValueError(f"--image {path}: not an image PIL can read") from None
    except (OSError, Image.DecompressionBombError) as error:  # truncated or damaged, a folder, a pixel bomb
        raise ValueError(f"--image {path}: cannot be read ({error})") from None


def _check_model_folder(flag: str, name: str) -> None:
    """Refuse a model argument that is clearly a local path (absolute, ``./``, ``~``, deeper than org/name) but
    no folder."""
    looks_local = os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1
    if looks_local and not Path(name).expanduser().is_dir():
        raise FileNotFoundError(f"{flag} {name}: no such model folder")


def _load(options: ForwardDynamicsOptions) -> tuple[Image.Image, Any, Any]:
    """The observation, the forward-dynamics pipeline and the verifier (``None`` without ``idm``), each checked
    before the first model loads."""
    image = _open_image(options.image)
    models = {"--fdm": (options.fdm, "fdm"), **({"--idm": (options.idm, "idm")} if options.idm else {})}
    for flag, (name, wanted) in models.items():
        _check_model_folder(flag, name)
        check_trained_task(flag, name, wanted)
    from wm_hub.inference.pipelines import load_pipeline  # transformers' pipelines: only when a model loads

    place = (options.device, options.dtype)
    fdm = load_pipeline("forward-dynamics", "--fdm", options.fdm, *place)
    verifier = load_pipeline("inverse-dynamics", "--idm", options.idm, *place) if options.idm else None
    return image, fdm, verifier


def _save_png(image: Image.Image, path: Path) -> Path:
    return write_with(path, lambda tmp: image.save(tmp, format="PNG"))


def _remove_stale(out: Path, pattern: str, kept: list[str]) -> None:
    """Remove the files matching ``pattern`` in ``out`` that this run did not write (of an earlier, larger run)."""
    for stale in set(out.glob(pattern)) - {Path(path) for path in kept}:
        stale.unlink()

"""The AURORA-BENCH runner: predictions for every benchmark row, the paper's metrics, ``results.json``.

Rows come from the ``aurora`` dataset builder (``bench`` config, :mod:`dataset_builders.aurora`), so the missing-
image rules are the data layer's: a row whose image is missing or unreadable stops the run with one error naming
every such row, or with ``skip_missing`` is skipped and named in the results. Ids are ``<subset>/<row index in
test.json>``. The built rows stay in the datasets cache and the next run reuses them (``rebuild`` builds them
again, after ``test.json`` or its images changed).

Predictions (``AuroraEvalConfig.predictions``):

- ``copy``: the source is the prediction;
- ``ip2p``: InstructPix2Pix (:mod:`wm_hub.evaluation.baselines`);
- a folder: one image per row at ``<folder>/<row id>.<png|jpg|jpeg|webp>``;
- anything else: a forward-dynamics model, run through ``pipeline("forward-dynamics", ...)`` (optionally best-of-N
  with an inverse-dynamics verifier).

Generated predictions (ip2p, model) are written to ``<predictions dir>/<row id>.png`` one by one (temp file, then
``os.replace``) and reused by a rerun, so an interrupted run resumes; ``manifest.json`` in that folder records what
made them and a rerun with different settings is refused rather than mixing predictions.

Outputs: ``results.json`` (``{"subsets": {NAME: {"n", "skipped", METRIC...}}, "overall": {...}, "config": {...}}``;
``overall`` averages the subsets' means, as the paper's "AURORA-BENCH Avg.") and ``<stem>.rows.jsonl`` beside it
(one line per row with every per-row value and the judge's raw reply), both written atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from PIL import Image
from tqdm.auto import tqdm

from wm_hub.atomic_io import read_json_object, write_json, write_text, write_with
from wm_hub.data.builder_registry import builder_class
from wm_hub.data.pictures import image_problem
from wm_hub.evaluation import judge, split_names
from wm_hub.evaluation.baselines import DEFAULT_IP2P_MODEL, InstructPix2PixConfig
from wm_hub.evaluation.generation import writes_over_input
from wm_hub.evaluation.image_metrics import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL, BlipCaptioner, EmbeddingConfig
from wm_hub.evaluation.reports import load_results, write_markdown_report

PAPER_SUBSETS = ("magicbrush", "ag", "something", "whatsup", "kubric")
METRICS = ("l1", "clip_i", "clip_t", "dino", "judge")
BUILTIN_PREDICTIONS = ("copy", "ip2p")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ClipTText = Literal["auto", "action", "caption", "blip"]
DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-base"
Geometry = Literal["as_input", "stretch"]
GEOMETRIES = get_args(Geometry)
CLIP_T_TEXTS = get_args(ClipTText)
MANIFEST = "manifest.json"
# The settings of a forward-dynamics model's predictions (what its manifest.json records).
MODEL_FIELDS = ("idm", "num_candidates", "temperature", "top_k", "top_p", "seed", "dtype")


@dataclass
class AuroraEvalConfig:
    """One AURORA-BENCH evaluation (``wm-hub eval aurora``).

    Args:
        data_dir: The AURORA checkout root (``test.json`` and ``data/``).
        predictions: ``copy`` (the source as prediction), ``ip2p`` (InstructPix2Pix), a folder with one image per
            row (``<folder>/<row id>.png``, e.g. ``DIR/ag/12.png``), or a forward-dynamics model (id or folder).
        out: ``results.json`` to write; the per-row file and generated predictions go beside it.
        subsets: Benchmark subsets (any ``task`` of ``test.json`` with targets), as a list or comma-separated;
            default the paper's five.
        metrics: Any of ``l1``, ``clip_i``, ``clip_t``, ``dino``, ``judge``, as a list or comma-separated.
        report: Also write a Markdown report (Table 2/6 layout) of this run to this file.
        skip_missing: Skip (and name) rows with missing or unreadable images instead of failing.
        rebuild: Build the benchmark rows from ``data_dir`` again instead of reusing the datasets cache (after
            editing ``test.json`` or its images).
        name: Label of this run in reports (default from ``predictions``).
        limit: Evaluate only the first ``limit`` rows of each subset (quick checks).
        batch_size: Rows per batch of predictions and metrics.
        device: Torch device of the models; ``None`` picks CUDA when available.
        predictions_dir: Where generated predictions go (default ``<out dir>/predictions``).
        seed: Sampling seed of InstructPix2Pix and of a forward-dynamics model.
        clip_model: CLIP model for CLIP-I and CLIP-T.
        dino_model: DINO model (ViT or DINOv2) for DINO.
        clip_t_text: Text of CLIP-T: the row's caption when it has one (``auto``), always the ``action``, the
            ``caption`` (rows without one fail), or ``blip``: a caption of the target image by ``caption_model``
            (the paper's reading; cached in ``<out dir>/blip_captions.json``).
        caption_model: BLIP captioning model of ``clip_t_text: blip`` (Hub id or folder).
        geometry: How the reference pictures are prepared. ``as_input``: the target (for L1, CLIP-I, DINO) and the
            source the judge sees go through what the predictor's input went through (a model: its own image
            processor, e.g. Chameleon's short-side resize and centre crop; ip2p: its square resize; copy and
            prediction folders: nothing), so a prediction is compared with the scene its model was shown.
            ``stretch``: the whole target resized to the prediction and the judge shown the original source, which
            penalises predictions of non-square pictures (AG, Something) for what their model never saw.
        judge_model: Chat model of the GPT-4o-as-judge metric (paper appendix F; default its snapshot).
        judge_base_url: OpenAI-compatible endpoint of the judge (default: the openai client's, ``OPENAI_BASE_URL``
            or OpenAI); its API key is read from ``OPENAI_API_KEY`` and never written.
        judge_cache_dir: Judge reply cache (default ``<out dir>/judge_cache``: a rerun sends no request).
        judge_concurrency: Judge requests in flight at once.
        ip2p_model: InstructPix2Pix (``predictions`` ``ip2p``): diffusers pipeline id or folder.
        ip2p_steps: InstructPix2Pix denoising steps.
        ip2p_guidance_scale: InstructPix2Pix text guidance.
        ip2p_image_guidance_scale: InstructPix2Pix image guidance.
        ip2p_resolution: Side of InstructPix2Pix's square inputs and outputs; a multiple of 8.
        idm: Forward-dynamics model (``predictions`` a model): an inverse-dynamics model that picks the best of
            ``num_candidates`` (``None``: the first candidate).
        num_candidates: Forward-dynamics candidates sampled per row (K of paper Figure 4).
        temperature: Forward-dynamics sampling temperature.
        top_k: Forward-dynamics top-k filter.
        top_p: Forward-dynamics nucleus filter.
        dtype: Forward-dynamics model dtype (``bfloat16``, ``float16``, ``float32``; default the checkpoint's).
    """

    data_dir: str
    predictions: str
    out: str
    subsets: list[str] = field(default_factory=lambda: list(PAPER_SUBSETS))
    metrics: list[str] = field(default_factory=lambda: ["l1"])
    report: str | None = None
    skip_missing: bool = False
    rebuild: bool = False
    name: str | None = None
    limit: int | None = None
    batch_size: int = 8
    device: str | None = None
    predictions_dir: str | None = None
    seed: int = 0
    clip_model: str = DEFAULT_CLIP_MODEL
    dino_model: str = DEFAULT_DINO_MODEL
    clip_t_text: ClipTText = "auto"
    caption_model: str = DEFAULT_CAPTION_MODEL
    geometry: Geometry = "as_input"
    judge_model: str = "gpt-4o-2024-11-20"
    judge_base_url: str | None = None
    judge_cache_dir: str | None = None
    judge_concurrency: int = 8
    ip2p_model: str = DEFAULT_IP2P_MODEL
    ip2p_steps: int = 20
    ip2p_guidance_scale: float = 7.5
    ip2p_image_guidance_scale: float = 1.5
    ip2p_resolution: int = 512
    idm: str | None = None
    num_candidates: int = 1
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        self.subsets = split_names(self.subsets)
        self.metrics = split_names(self.metrics)
        if not self.subsets:
            raise ValueError("subsets: give at least one benchmark subset")
        for name, values in (("subsets", self.subsets), ("metrics", self.metrics)):
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:  # a subset given twice was read, predicted and averaged twice
                raise ValueError(f"{name}: {', '.join(repeated)} given more than once")
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown or not self.metrics:
            raise ValueError(f"Unknown metric(s) {unknown or '(none given)'}; choose from {', '.join(METRICS)}")
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {self.geometry!r}")
        if self.clip_t_text not in CLIP_T_TEXTS:
            raise ValueError(f"clip_t_text must be one of {CLIP_T_TEXTS}, got {self.clip_t_text!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        self.judge_config()  # their own checks: judge concurrency, InstructPix2Pix resolution and steps
        self.ip2p_config()
        if self.num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1, got {self.num_candidates}")
        if self.num_candidates > 1 and (self.kind != "model" or not self.idm):
            raise ValueError(
                "num_candidates > 1 needs a forward-dynamics model as predictions and an idm to pick the best one"
            )
        if self.kind == "model" and not Path(self.predictions).exists():
            from huggingface_hub.utils import HFValidationError, validate_repo_id

            try:
                validate_repo_id(self.predictions)
            except HFValidationError:
                raise ValueError(
                    f"predictions {self.predictions!r}: not copy or ip2p, no such folder, and not a Hub model id"
                ) from None
        if self.idm and self.kind != "model":
            raise ValueError("idm (best-of-N verification) needs a forward-dynamics model as predictions")
        if self.kind == "model":  # before a predictions folder records the settings of a run that cannot start
            from wm_hub.inference.generation import check_sampling
            from wm_hub.models.loading import torch_dtype

            check_sampling(self.temperature, self.top_k, self.top_p, as_flags=True)
            if self.dtype is not None:
                torch_dtype(self.dtype)
        self._check_outputs()

    def _check_outputs(self) -> None:
        """Refuse outputs that would replace an input: the checkout's files, a predictions folder's images, or
        each other (``--report`` the same file as ``--out``)."""
        written = {"--out": Path(self.out), "the rows file": self.rows_path}
        if self.report:
            written["--report"] = Path(self.report)
        if self.report and Path(self.report).resolve() == Path(self.out).resolve():
            raise ValueError(f"--report {self.report} is --out: give the Markdown report its own file")
        predictions = self.predictions if self.kind == "dir" else None
        read = {"--data-dir's files in": self.data_dir, "--predictions": predictions}
        for flag, path in written.items():
            for what, source in read.items():
                if writes_over_input(path, source):
                    raise ValueError(f"{flag} {path} would overwrite {what} {source}: write the results elsewhere")

    @property
    def kind(self) -> str:
        """``copy``, ``ip2p``, ``dir`` or ``model``."""
        if self.predictions in BUILTIN_PREDICTIONS:
            return self.predictions
        return "dir" if Path(self.predictions).is_dir() and not _is_model_folder(Path(self.predictions)) else "model"

    @property
    def label(self) -> str:
        """The run's name in reports."""
        if self.name:
            return self.name
        return self.predictions if self.kind in BUILTIN_PREDICTIONS else Path(self.predictions.rstrip("/")).name

    @property
    def rows_path(self) -> Path:
        """The per-row JSONL beside ``out``."""
        out = Path(self.out)
        return out.with_name(out.stem + ".rows.jsonl")

    @property
    def generated_dir(self) -> Path:
        """Folder of generated predictions."""
        return Path(self.predictions_dir) if self.predictions_dir else Path(self.out).parent / "predictions"

    def judge_config(self) -> judge.JudgeConfig:
        """The judge's settings (:mod:`wm_hub.evaluation.judge`), its reply cache beside ``out`` by default."""
        return judge.JudgeConfig(
            model=self.judge_model,
            base_url=self.judge_base_url,
            cache_dir=self.judge_cache_dir or str(Path(self.out).parent / "judge_cache"),
            max_concurrency=self.judge_concurrency,
        )

    def ip2p_config(self) -> InstructPix2PixConfig:
        """The InstructPix2Pix baseline's settings (:mod:`wm_hub.evaluation.baselines`)."""
        return InstructPix2PixConfig(
            model=self.ip2p_model,
            num_inference_steps=self.ip2p_steps,
            guidance_scale=self.ip2p_guidance_scale,
            image_guidance_scale=self.ip2p_image_guidance_scale,
            resolution=self.ip2p_resolution,
            seed=self.seed,
            device=self.device,
        )

    def sampling(self) -> dict[str, Any]:
        """A forward-dynamics model's sampling settings (``predictions`` a model)."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (no secrets: the judge key is read from the environment, never stored).

        The settings of the judge, InstructPix2Pix and a forward-dynamics model are grouped under ``judge``,
        ``ip2p`` and ``model``, each only when this run uses it (``wm-hub eval report`` reads ``model``).
        """
        grouped = {*MODEL_FIELDS, *(item.name for item in fields(self) if item.name.startswith(("judge_", "ip2p_")))}
        data = {key: value for key, value in asdict(self).items() if key not in grouped}
        data.update(kind=self.kind, label=self.label)
        if self.kind == "ip2p":
            data["ip2p"] = asdict(self.ip2p_config())
        if self.kind == "model":
            data["model"] = self.sampling()
        if "judge" in self.metrics:
            data["judge"] = {
                "model": self.judge_model,
                "base_url": self.judge_base_url,
                "cache_dir": self.judge_cache_dir,
                "max_concurrency": self.judge_concurrency,
            }
        for name, metric in (("clip_model", ("clip_i", "clip_t")), ("dino_model", ("dino",))):
            if not set(metric) & set(self.metrics):
                data.pop(name)
        if "clip_t" not in self.metrics:
            data.pop("clip_t_text")
        if "clip_t" not in self.metrics or self.clip_t_text != "blip":
            data.pop("caption_model")
        return data


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "model_index.json").is_file()


@dataclass
class BenchRow:
    """One benchmark triplet.

    Attributes:
        id: ``<subset>/<row index in test.json>``.
        subset: The row's ``task``.
        action: The instruction.
        caption: The row's ``caption`` field (whatsup rows have one), else ``None``.
        index: Position in the builder's dataset.
    """

    id: str
    subset: str
    action: str
    caption: str | None
    index: int


@dataclass
class Bench:
    """The selected benchmark rows, read through the ``aurora`` builder (images decoded on access).

    Attributes:
        rows: Triplets to evaluate, in ``test.json`` order.
        skipped: Ids of rows skipped for missing or unreadable images, per subset.
        skipped_files: One line per missing or unreadable file of the skipped rows.
        dataset: The builder's ``datasets.Dataset`` (columns ``source``, ``target``...).
    """

    rows: list[BenchRow]
    skipped: dict[str, list[str]]
    skipped_files: list[str]
    dataset: Any

    def images(self, row: BenchRow) -> tuple[Image.Image, Image.Image]:
        """``(source, target)`` of ``row``."""
        example = self.dataset[row.index]
        return example["source"], example["target"]


def load_bench(
    data_dir: str | Path,
    subsets: Sequence[str],
    skip_missing: bool = False,
    limit: int | None = None,
    rebuild: bool = False,
    cache_dir: str | Path | None = None,
) -> Bench:
    """AURORA-BENCH rows of ``subsets`` built by the ``aurora`` builder (``bench`` config).

    The build is kept in the datasets cache (``cache_dir``, default ``HF_DATASETS_CACHE``) under the resolved
    ``data_dir`` and the options, and reused by the next run; ``rebuild`` builds it again from ``data_dir`` (after
    ``test.json`` or its images changed).

    Raises:
        FileNotFoundError: ``data_dir`` is not a folder.
        MissingFilesError: Images are missing or unreadable and ``skip_missing`` is false (names every row).
        ValueError: Unknown subsets, or subsets whose rows have no ground-truth target (clevr, emu, epic).
    """
    if not Path(data_dir).is_dir():
        raise FileNotFoundError(f"data_dir {data_dir}: no such folder (the AURORA checkout root)")
    builder = builder_class("aurora")(
        config_name="bench",
        data_dir=str(Path(data_dir).resolve()),
        cache_dir=None if cache_dir is None else str(cache_dir),
        subsets=tuple(subsets),
        skip_missing=skip_missing,
    )
    builder.download_and_prepare(download_mode="force_redownload" if rebuild else None)
    report = builder.build_report.splits["test"]
    no_target = [
        f"{name} ({counts.without_target} rows without 'output')"
        for name in subsets
        if (counts := report.origins.get(f"aurora/{name}")) is not None and 0 < counts.rows == counts.without_target
    ]
    if no_target:
        raise ValueError(
            f"{Path(data_dir) / report.annotation_file}: subset(s) without ground-truth targets cannot be "
            f"evaluated against one: {', '.join(no_target)}"
        )
    dataset = builder.as_dataset(split="test")
    captions = _captions(Path(data_dir) / report.annotation_file)
    rows, taken = [], dict.fromkeys(subsets, 0)
    for index, (id, action, origin) in enumerate(zip(dataset["id"], dataset["action"], dataset["origin"])):
        subset = origin.removeprefix("aurora/")
        if limit is not None and taken[subset] >= limit:
            continue
        taken[subset] += 1
        rows.append(BenchRow(id, subset, action, captions.get(int(id.rsplit("/", 1)[1])), index))
    skipped: dict[str, list[str]] = {name: [] for name in subsets}
    for bad in report.skipped:
        if bad.id not in skipped[bad.id.split("/")[0]]:
            skipped[bad.id.split("/")[0]].append(bad.id)
    return Bench(rows, skipped, [bad.describe() for bad in report.skipped], dataset)


def _captions(annotation_file: Path) -> dict[int, str]:
    """Row index -> ``caption`` of the benchmark rows that have one (the builder keeps only the triplet)."""
    rows = json.loads(annotation_file.read_text())
    return {index: row["caption"] for index, row in enumerate(rows) if isinstance(row.get("caption"), str)}


def _save_image(image: Image.Image, path: Path) -> None:
    write_with(path, lambda tmp: image.convert("RGB").save(tmp, format="PNG"))


def _open_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.copy()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def prediction_file(folder: Path, row_id: str) -> Path | None:
    """The prediction of ``row_id`` in ``folder`` (``<folder>/<row id>.<png|jpg|jpeg|webp>``), if any."""
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{row_id}{suffix}"
        if path.is_file():
            return path
    return None


def check_prediction_dir(folder: Path, bench: Bench, skip_missing: bool = False) -> dict[str, Path]:
    """Each row's prediction file in ``folder``, every one decoded once here (a damaged file fails before scoring).

    With ``skip_missing``, a row without a readable prediction is dropped from ``bench`` instead and named in its
    ``skipped`` ids and ``skipped_files`` (what ``results.json`` reports).

    Raises:
        FileNotFoundError: Rows without a prediction file or with one PIL cannot decode (with ``skip_missing``: only
            when no row has a readable one); the message names every such row id and its path.
    """
    found, missing, rows = {}, [], bench.rows
    for row in rows:
        path = prediction_file(folder, row.id)
        if path is None:
            missing.append(
                (row.id, f"row {row.id}: expected {folder / row.id}.png (or {', '.join(IMAGE_SUFFIXES[1:])})")
            )
        elif problem := image_problem(path):
            missing.append((row.id, f"row {row.id}: {path}: {problem}"))
        else:
            found[row.id] = path
    if missing and skip_missing and found:
        bench.rows = [row for row in rows if row.id in found]
        for row_id, line in missing:
            bench.skipped.setdefault(row_id.split("/")[0], []).append(row_id)
            bench.skipped_files.append(f"prediction of {line}")
    elif missing:
        missing = [line for _, line in missing]
        raise FileNotFoundError(
            f"{folder}: {len(missing)} of {len(rows)} row(s) have no readable prediction image:\n  "
            + "\n  ".join(missing)
        )
    return found


def _manifest(config: AuroraEvalConfig) -> dict[str, Any]:
    """What generated the predictions: a rerun must match it to reuse them."""
    settings = asdict(config.ip2p_config()) if config.kind == "ip2p" else config.sampling()
    settings.pop("device", None)
    return {"predictions": config.predictions, "kind": config.kind, "settings": settings}


def _prepare_generated_dir(config: AuroraEvalConfig) -> Path:
    folder = config.generated_dir
    manifest, path = _manifest(config), config.generated_dir / MANIFEST
    if path.is_file():
        existing = json.loads(path.read_text())
        if existing != manifest:
            raise ValueError(
                f"{folder} holds predictions of another run ({json.dumps(existing)}); this run is "
                f"{json.dumps(manifest)}. Use another output folder or predictions_dir (--predictions-dir)."
            )
    elif folder.is_dir() and any(folder.iterdir()):  # pictures of unknown origin would be scored as this run's
        raise ValueError(
            f"{folder} holds files but no {MANIFEST}: not predictions this command generated. Give an empty or new "
            "--predictions-dir, or score those pictures as a folder (--predictions FOLDER)"
        )
    else:
        write_text(path, json.dumps(manifest, indent=2) + "\n")
    return folder


def _predictor(config: AuroraEvalConfig) -> Callable[[list[Image.Image], list[str], int], list[Image.Image]]:
    """A batch function ``(sources, actions, first row position) -> predictions`` for ip2p or a model."""
    if config.kind == "ip2p":
        from wm_hub.evaluation.baselines import InstructPix2PixBaseline

        return InstructPix2PixBaseline(config.ip2p_config()).predict
    return _model_predictor(config)


def _model_predictor(config: AuroraEvalConfig) -> Callable[[list[Image.Image], list[str], int], list[Image.Image]]:
    """Predictions of a forward-dynamics model through ``pipeline("forward-dynamics")``, best-of-N with the IDM.

    Each batch is one pipeline call (all rows and their candidates in one ``generate``), seeded ``seed + position of
    the batch's first row``: a run is reproducible, and a resumed run draws its own seeds for the rows it lacks
    (samples also depend on which rows share a batch, so they match the uninterrupted run's only batch for batch).

    Raises:
        ValueError: The model or the IDM cannot be loaded as a world-model backbone (naming which).
    """
    from wm_hub.inference.pipelines import load_pipeline
    from wm_hub.inference.tasks import FORWARD_DYNAMICS_TASK, INVERSE_DYNAMICS_TASK

    fdm = load_pipeline(FORWARD_DYNAMICS_TASK, "predictions", config.predictions, config.device, config.dtype)
    sampling: dict[str, Any] = {"num_candidates": config.num_candidates, "temperature": config.temperature}
    if config.top_k is not None:
        sampling["top_k"] = config.top_k
    if config.top_p is not None:
        sampling["top_p"] = config.top_p
    if config.idm:
        sampling["verifier"] = load_pipeline(INVERSE_DYNAMICS_TASK, "idm", config.idm, str(fdm.device))

    def predict(sources: list[Image.Image], actions: list[str], offset: int) -> list[Image.Image]:
        results = fdm(list(sources), list(actions), seed=config.seed + offset, **sampling)
        return [result["image"] for result in results]

    return predict


def generate_predictions(config: AuroraEvalConfig, bench: Bench) -> dict[str, Path]:
    """Predict every row that has no saved prediction yet (batched); return each row's prediction file."""
    folder = _prepare_generated_dir(config)
    paths = {row.id: folder / f"{row.id}.png" for row in bench.rows}
    todo = [row for row in bench.rows if not paths[row.id].is_file()]
    if not todo:
        return paths
    predict = _predictor(config)
    position = {row.id: i for i, row in enumerate(bench.rows)}
    with tqdm(total=len(bench.rows), initial=len(bench.rows) - len(todo), desc="Predictions", unit=" rows") as bar:
        for batch in _chunks(todo, config.batch_size):
            sources = [bench.images(row)[0] for row in batch]
            images = predict(sources, [row.action for row in batch], position[batch[0].id])
            if len(images) != len(batch):
                raise RuntimeError(f"the predictor returned {len(images)} images for {len(batch)} rows")
            for row, image in zip(batch, images):
                _save_image(image, paths[row.id])
            bar.update(len(batch))
    return paths


CAPTION_CACHE = "blip_captions.json"


class CaptionCache:
    """BLIP captions of target images, kept on disk by (model, row id, image hash): a rerun captions nothing.

    The captioner is loaded only when a caption is missing.
    """

    def __init__(self, path: Path, config: AuroraEvalConfig):
        self.path, self.config = path, config
        self.saved: dict[str, str] = read_json_object(path) if path.is_file() else {}
        self.captioner = None

    def _key(self, row_id: str, image: Image.Image) -> str:
        digest = hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()[:16]
        return f"{self.config.caption_model}|{row_id}|{digest}"

    def captions(self, row_ids: Sequence[str], images: Sequence[Image.Image]) -> list[str]:
        """The caption of each (row, target image), captioning and saving only the missing ones."""
        keys = [self._key(row_id, image) for row_id, image in zip(row_ids, images)]
        missing = [index for index, key in enumerate(keys) if key not in self.saved]
        if missing:
            if self.captioner is None:
                config = self.config
                self.captioner = BlipCaptioner(EmbeddingConfig(config.caption_model, config.device, config.batch_size))
            for index, text in zip(missing, self.captioner.captions([images[index] for index in missing])):
                self.saved[keys[index]] = text
            write_json(self.path, self.saved)
        return [self.saved[key] for key in keys]


def _clip_t_text(row: BenchRow, mode: str) -> str:
    if mode == "action" or (mode == "auto" and row.caption is None):
        return row.action
    if row.caption is None:
        raise ValueError(
            f"row {row.id}: no 'caption' field for CLIP-T (clip_t_text='caption'); use 'action' or 'auto'"
        )
    return row.caption


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _sum_usage(usages: Sequence[dict[str, Any] | None]) -> dict[str, int]:
    total: dict[str, int] = {}
    for usage in usages:
        for key, value in (usage or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + int(value)
    return total


def judge_records(
    config: AuroraEvalConfig,
    bench: Bench,
    predictions: dict[str, Path] | None,
    records: list[dict[str, Any]],
    prepare: Preparation | None = None,
) -> None:
    """Add the judge's verdict (``record["judge"]``) to every row's record, through :mod:`wm_hub.evaluation.judge`.

    Rows go to :func:`~wm_hub.evaluation.judge.judge_rows` in chunks of at least four times the concurrency (so
    ``--batch-size`` does not cap the requests in flight); cached replies are reused, so a rerun sends nothing.
    """
    judge_config = config.judge_config()
    by_id = {record["id"]: record for record in records}
    chunk = max(config.batch_size, 4 * judge_config.max_concurrency)
    with tqdm(total=len(bench.rows), desc="Judge", unit=" rows") as bar:
        for rows in _chunks(bench.rows, chunk):
            requests = []
            for row in rows:
                source = bench.images(row)[0].convert("RGB")
                prediction = source if predictions is None else _open_image(predictions[row.id])
                source = source if prepare is None else prepare(source)
                requests.append(judge.JudgeRequest(row.id, row.action, source, prediction))
            for result in judge.judge_rows(requests, judge_config, progress=False):
                by_id[result.row_id]["judge"] = {
                    "score": result.score,
                    "editing_success": result.editing_success,
                    "minimal_editing": result.minimal_editing,
                    "parsed": result.parsed,
                    "raw": result.raw,
                    "reasoning": result.reasoning,
                    "parse_error": result.parse_error,
                    "usage": result.usage,
                    "cached": result.cached,
                }
            bar.update(len(rows))


Preparation = Callable[[Image.Image], Image.Image]


def reference_preparation(config: AuroraEvalConfig) -> tuple[Preparation | None, str]:
    """What ``config.geometry`` does to the reference pictures (``None``: nothing), and the rule in words (recorded
    in ``results.json`` as ``config.reference_preparation``)."""
    if config.geometry == "stretch":
        return None, "stretch: the whole target resized to the prediction; the judge sees the original source"
    if config.kind == "ip2p":
        side = config.ip2p_resolution
        rule = f"as_input: resized to {side} x {side} (bicubic), as InstructPix2Pix's sources are"
        return (lambda image: image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)), rule
    if config.kind == "model":
        from wm_hub.models.base import pixels_to_pil
        from wm_hub.models.loading import load_model_processor

        images = load_model_processor(config.predictions).image_processor

        def as_model_input(image: Image.Image) -> Image.Image:
            return pixels_to_pil(images(images=[image], return_tensors="pt")["pixel_values"])[0]

        return as_model_input, f"as_input: through the model's image processor ({type(images).__name__})"
    return None, "as_input: unchanged (the predictions' own geometry is not known; the target is resized to them)"


def score_rows(
    config: AuroraEvalConfig,
    bench: Bench,
    predictions: dict[str, Path] | None,
    prepare: Preparation | None = None,
) -> list[dict[str, Any]]:
    """Every metric of every row (``predictions`` None: the copy baseline), in batches with a progress bar; the
    targets and the judge's sources through ``prepare`` (:func:`reference_preparation`) first."""
    from wm_hub.evaluation.image_metrics import ClipScorer, DinoScorer, l1_distance

    metrics = set(config.metrics)
    clip = dino = None
    if metrics & {"clip_i", "clip_t"}:
        clip = ClipScorer(EmbeddingConfig(config.clip_model, config.device, config.batch_size))
    if "dino" in metrics:
        dino = DinoScorer(EmbeddingConfig(config.dino_model, config.device, config.batch_size))
    captions = None
    if "clip_t" in metrics and config.clip_t_text == "blip":
        captions = CaptionCache(Path(config.out).parent / CAPTION_CACHE, config)
    records = []
    with tqdm(total=len(bench.rows), desc="Metrics", unit=" rows") as bar:
        for batch in _chunks(bench.rows, config.batch_size):
            pairs = [bench.images(row) for row in batch]
            sources = [source for source, _ in pairs]
            targets = [target if prepare is None else prepare(target) for _, target in pairs]
            if predictions is None:
                images = [source.convert("RGB") for source in sources]
            else:
                images = [_open_image(predictions[row.id]) for row in batch]
            batch_records = [
                {
                    "id": row.id,
                    "subset": row.subset,
                    "action": row.action,
                    "prediction": "source" if predictions is None else str(predictions[row.id]),
                    "prediction_size": list(image.size),
                }
                for row, image in zip(batch, images)
            ]
            if "l1" in metrics:
                for record, image, target in zip(batch_records, images, targets):
                    record["l1"] = l1_distance(image, target)
            if "clip_i" in metrics:
                for record, value in zip(batch_records, clip.image_similarity(images, targets)):
                    record["clip_i"] = value
            if "clip_t" in metrics:
                if config.clip_t_text == "blip":  # the target itself, whatever the geometry: one text per row
                    texts = captions.captions([row.id for row in batch], [target for _, target in pairs])
                else:
                    texts = [_clip_t_text(row, config.clip_t_text) for row in batch]
                for record, text, value in zip(batch_records, texts, clip.text_similarity(images, texts)):
                    record.update(clip_t_text=text, clip_t=value)
            if "dino" in metrics:
                for record, value in zip(batch_records, dino.image_similarity(images, targets)):
                    record["dino"] = value
            records.extend(batch_records)
            bar.update(len(batch))
    if "judge" in metrics:
        judge_records(config, bench, predictions, records, prepare)
    return records


def _summary(records: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Means of one subset's per-row values; judge means over parsed replies only."""
    summary: dict[str, Any] = {}
    for metric in metrics:
        if metric == "judge":
            fields = ("score", "editing_success", "minimal_editing", "parsed", "raw", "usage", "cached")
            judged = judge.summarize(
                [judge.JudgeResult(record["id"], **{k: record["judge"][k] for k in fields}) for record in records]
            )
            summary["judge"] = judged["score"]
            summary["judge_es"] = judged["editing_success"]
            summary["judge_me"] = judged["minimal_editing"]
            summary["judge_parsed"] = judged["n_parsed"]
            summary["judge_unparsable"] = judged["n_unparsable"]
            summary["judge_cached"] = judged["n_cached"]
            summary["judge_usage"] = judged["usage"]
            summary["judge_usage_sent"] = judged["usage_sent"]
        else:
            summary[metric] = _mean([record[metric] for record in records])
    return summary


def summarize(
    config: AuroraEvalConfig, bench: Bench, records: Sequence[dict[str, Any]], rule: str | None = None
) -> dict[str, Any]:
    """``results.json`` content: per-subset means, the overall (mean of subset means) and the config (with the
    reference ``rule`` of :func:`reference_preparation`)."""
    subsets = {}
    for name in config.subsets:
        rows = [record for record in records if record["subset"] == name]
        subsets[name] = {"n": len(rows), "skipped": bench.skipped.get(name, []), **_summary(rows, config.metrics)}
    evaluated = [summary for summary in subsets.values() if summary["n"]]
    overall: dict[str, Any] = {
        "n": sum(summary["n"] for summary in subsets.values()),
        "skipped": [row_id for summary in subsets.values() for row_id in summary["skipped"]],
    }
    for key in _summary([], config.metrics):
        values = [summary[key] for summary in evaluated]
        if key in ("judge_usage", "judge_usage_sent"):
            overall[key] = _sum_usage(values)
        elif key in ("judge_parsed", "judge_unparsable", "judge_cached"):
            overall[key] = sum(values)
        else:
            overall[key] = _mean(values)
    return {
        "subsets": subsets,
        "overall": overall,
        "config": {**config.to_dict(), "skipped_files": bench.skipped_files, "reference_preparation": rule},
    }


def evaluate_aurora(config: AuroraEvalConfig) -> dict[str, Any]:
    """Run one AURORA-BENCH evaluation end to end and write ``config.out``, the per-row JSONL and, with
    ``config.report``, the Markdown report.

    Returns:
        The results (as written to ``config.out``).

    Raises:
        MissingFilesError: Benchmark images are missing and ``skip_missing`` is false.
        FileNotFoundError: No ``data_dir`` folder, or a predictions folder lacks some rows (all named).
        ValueError: Bad settings, unknown subsets, a predictions folder made by another run, or a model that does
            not load.
    """
    bench = load_bench(config.data_dir, config.subsets, config.skip_missing, config.limit, config.rebuild)
    if config.kind == "copy":
        predictions = None
    elif config.kind == "dir":
        predictions = check_prediction_dir(Path(config.predictions), bench, config.skip_missing)
    else:
        predictions = generate_predictions(config, bench)
    prepare, rule = reference_preparation(config)
    records = score_rows(config, bench, predictions, prepare)
    results = summarize(config, bench, records, rule)
    write_text(config.rows_path, "".join(json.dumps(record) + "\n" for record in records))
    write_text(Path(config.out), json.dumps(results, indent=2) + "\n")
    if config.report:
        write_markdown_report(load_results([config.out]), config.report)
    return results

"""IDM annotation of key-frame pairs at scale: weak action labels for unlabelled video (paper section 3.2).

For every key-frame pair (:mod:`wm_hub.bootstrap.pairs`) the inverse-dynamics model generates an action
(:func:`~wm_hub.inference.actions.generate_idm_outputs`, batched, greedy by default) and scores it with
:func:`~wm_hub.inference.scoring.output_log_likelihoods`: ``log p(action | source, target)`` over the action's
tokens and the closing ``eos`` in the IDM's own training format (the tokens it was trained to emit; the images and
the instruction are never scored), read off the generation's own log-probabilities (a second, teacher-forced forward
only for a row whose text re-tokenises differently). Each batch's images go through the VQ encoder once.

Output folder (read as it is by the ``synthetic_triplets`` builder and by ``wm-hub sample``)::

    OUT/annotation_config.json                 the run's settings and its shard plan (checked on resume)
    OUT/annotations-00000-of-00012.jsonl       one JSON row per pair, shards in input order
    OUT/frames/<video>/frame_000010.png        pair images, copied byte for byte from the input
    OUT/annotation_run.json                    the last run: counts, pairs/s, classes, score statistics

Rows: ``id``, ``source``/``target`` (image paths relative to OUT), ``action``, ``score_sum`` (sum of the
log-probabilities), ``score_mean`` (``score_sum / num_action_tokens``), ``num_action_tokens`` (action tokens + eos),
``score`` (= ``score_mean``: the field the builder keeps and stratified sampling ranks by default; the mean does not
penalise longer actions the way the sum does), ``action_class``, ``action_verb``, ``video_class``, and provenance
``video``, ``frames``, ``origin`` (plus ``input_action`` when the input already had one). A pair the IDM wrote
nothing for keeps its row with a blank ``action`` (counted as ``blank_actions`` in ``annotation_run.json``);
``wm-hub sample`` leaves such rows out. An IDM that reasons first
(``idm_rationale``) also writes ``rationale``, what it wrote before the action; its score then covers the rationale
and the action (``num_action_tokens`` counts both), the log-likelihood of all it wrote.

Action classes (Algorithm 1 stratifies by them): the paper's classes are the video datasets' own action classes
(UCF-101, Kinetics-700, Moments in Time; paper Figure 9), i.e. the class folder a key-frame pair comes from
(``video_class``). ``class_source="auto"`` uses it and falls back to the action's verb, the first word of the
generated action lowercased (``"Move the red square left"`` -> ``move``; ``(none)`` when the text has no word),
for pairs without a class; ``"verb"`` always uses the verb, ``"input"`` requires the input's class.

Scale and robustness: pairs are cut into fixed shards of ``shard_size`` consecutive pairs. A shard's images are
written first, then its rows to a temporary file renamed into place (``os.replace``), so a shard file exists
complete or not at all. A rerun with the same settings skips finished shards and does the rest: after any number
of crashes or kills every pair is in exactly one row. Under ``accelerate launch`` every process takes a disjoint
slice of the unfinished shards (``PartialState.split_between_processes``); batches never cross shards, so the
rows do not depend on the number of processes. After ``wait_for_everyone`` the main process checks that every
shard is there with exactly its planned ids, and writes ``annotation_run.json``. With ``--executor local|ray|slurm``
the unfinished shards are spread over datatrove tasks instead (:mod:`wm_hub.bootstrap.annotate_pipeline`), each
loading the IDM once, with the same output.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from wm_hub.atomic_io import read_json_object, write_json, write_jsonl, write_with
from wm_hub.bootstrap.executors import ExecutorOptions
from wm_hub.bootstrap.pairs import FramePair, PairImages, PairInput, load_pairs

CONFIG_FILE = "annotation_config.json"
RUN_FILE = "annotation_run.json"
SHARD_PATTERN = re.compile(r"annotations-(\d{5})-of-(\d{5})\.jsonl")
ClassSource = Literal["auto", "verb", "input"]
CLASS_SOURCES = get_args(ClassSource)
NO_VERB = "(none)"
# Settings a resumed run must share with the run that started the folder (the rest may change between runs).
PLAN_FIELDS = ("idm", "data", "split", "shard_size", "max_new_tokens", "do_sample", "temperature", "seed")
PLAN_FIELDS += ("class_source", "origin_prefix", "dtype")
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")


@dataclass
class AnnotateConfig(ExecutorOptions):
    """Settings of an annotation run (the fields of ``recipes/annotate.py`` and ``wm-hub annotate``).

    Attributes:
        idm: Inverse-dynamics model, a folder or Hub id ``load_backbone`` reads.
        data: Key-frame pairs: a ``wm-hub keyframes`` folder or a triplet dataset (see :mod:`wm_hub.bootstrap.pairs`).
        out: Output folder; rerun with the same settings to resume.
        split: Split of a triplet dataset.
        batch_size: Pairs per generation batch (and per scoring forward).
        max_new_tokens: Longest action, in tokens.
        shard_size: Pairs per output shard (the unit of resumption and of work sharing).
        do_sample: Sample actions (paper Eq. 1 samples from the IDM) instead of greedy decoding.
        temperature: Sampling temperature (with ``do_sample``).
        seed: Sampling seed; batch ``b`` uses ``seed + index of its first pair``, so a resumed or sharded run samples
            the same actions.
        class_source: ``auto``, ``verb`` or ``input`` (see the module docstring).
        origin_prefix: Origin of pairs read from a key-frame folder (``<origin_prefix>/<class>``).
        dtype: LM dtype (``float32``, ``bfloat16``...; ``None``: the checkpoint's).
        device: Device for the IDM (``None``: this process's accelerate device).

    With an executor (the :class:`~wm_hub.bootstrap.executors.ExecutorOptions`: ``executor``, ``tasks``,
    ``workers``...) the shards are spread over datatrove tasks instead of ``accelerate`` processes.
    """

    idm: str = field(default=None, metadata={"help": "inverse-dynamics model: folder or Hub id"})
    data: str = field(default=None, metadata={"help": "wm-hub keyframes folder or triplet dataset of pairs"})
    out: str = field(default=None, metadata={"help": "output folder (rerun to resume)"})
    split: str = field(default="train", metadata={"help": "split of a triplet dataset"})
    batch_size: int = field(default=8, metadata={"help": "pairs per generation batch"})
    max_new_tokens: int = field(default=48, metadata={"help": "longest action in tokens"})
    shard_size: int = field(default=128, metadata={"help": "pairs per output shard"})
    do_sample: bool = field(
        default=False, metadata={"help": "sample actions instead of greedy decoding", "aliases": ["--sample"]}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    class_source: ClassSource = field(
        default="auto",
        metadata={"help": "action_class: the video's class folder, else the action's verb (auto); verb; input"},
    )
    origin_prefix: str = field(default="video_keyframes", metadata={"help": "origin of key-frame folder pairs"})
    dtype: str | None = field(default=None, metadata={"help": "LM dtype, e.g. bfloat16"})
    device: str | None = field(default=None, metadata={"help": "device (default: accelerate's)"})

    def __post_init__(self):
        for name in ("idm", "data", "out"):
            if not getattr(self, name):
                raise ValueError(f"AnnotateConfig: {name} is required")
        super().__post_init__()
        for name in ("batch_size", "max_new_tokens", "shard_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"AnnotateConfig: {name} must be >= 1, got {getattr(self, name)}")
        if self.class_source not in CLASS_SOURCES:
            raise ValueError(f"AnnotateConfig: class_source must be one of {CLASS_SOURCES}, got {self.class_source!r}")
        if not 0 < self.temperature < math.inf:  # nan too: a folder started with nan could never be resumed
            raise ValueError(f"AnnotateConfig: temperature must be > 0 and finite, got {self.temperature}")


def action_verb(action: str) -> str:
    """The first word of ``action``, lowercased (its verb for imperative actions); ``(none)`` without a word."""
    match = _WORD.search(action)
    return match.group(0).lower() if match else NO_VERB


def shard_name(index: int, num_shards: int) -> str:
    """File name of shard ``index`` of ``num_shards``."""
    return f"annotations-{index:05d}-of-{num_shards:05d}.jsonl"


def read_annotations(out: str | Path) -> list[dict[str, Any]]:
    """Every row of an annotation folder's shards, in shard (input) order."""
    rows = []
    for path in sorted(Path(out).glob("annotations-*.jsonl")):
        if SHARD_PATTERN.fullmatch(path.name):
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


@dataclass
class AnnotationPlan:
    """The pairs and their fixed split into shards."""

    pairs: PairInput
    shard_size: int

    @property
    def num_shards(self) -> int:
        return max(1, -(-len(self.pairs.pairs) // self.shard_size))

    def indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, len(self.pairs.pairs)))

    def path(self, out: Path, shard: int) -> Path:
        return out / shard_name(shard, self.num_shards)

    def digest(self) -> str:
        return hashlib.sha256("\n".join(pair.id for pair in self.pairs.pairs).encode()).hexdigest()


def annotate(config: AnnotateConfig) -> dict[str, Any] | None:
    """Annotate every pair of ``config.data`` into ``config.out`` (resuming), on this process's share of the work.

    Call it from every process of an ``accelerate launch`` (or from one plain process). Spreading the shards over
    datatrove tasks (``config.executor``) is :func:`wm_hub.bootstrap.annotate_pipeline.annotate_on_executor`,
    which ``wm-hub annotate --executor`` calls.

    Returns:
        On the main process, the run summary (also in ``OUT/annotation_run.json``); ``None`` on the others. With
        Slurm tasks not all done, ``{"pending": status}`` and nothing is merged.

    Raises:
        ValueError: Bad input (named by file/row/field), ``out`` started with other settings, or an executor set
            (see above).
        FileExistsError: ``out`` holds something that is not an annotation folder.
    """
    if config.executor is not None:
        raise ValueError(
            f"executor={config.executor!r}: datatrove tasks are run by wm_hub.bootstrap.annotate_pipeline."
            "annotate_on_executor (`wm-hub annotate --executor ...`); annotate() runs this process's share, alone or "
            "under accelerate launch"
        )

    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = PartialState(cpu=config.device == "cpu" or not torch.accelerator.is_available())
    out = Path(config.out)
    plan = plan_annotation(config, check_out=state.is_main_process)
    # A new folder records its settings only once the IDM has loaded: a typo in --idm leaves nothing to clean up.
    idm = load_idm(config, state.device) if not (out / CONFIG_FILE).is_file() else None
    if state.is_main_process:
        prepare_out(out, config, plan)
    state.wait_for_everyone()
    check_config(out, config, plan)
    pending = pending_shards(plan, out)
    state.wait_for_everyone()  # everyone has listed the finished shards before anyone writes a new one

    with state.split_between_processes(pending) as mine:
        load = (lambda: idm) if idm is not None else (lambda: load_idm(config, state.device))
        stats = annotate_shards(config, plan, out, list(mine), load, state.process_index, state.num_processes)
    state.wait_for_everyone()
    stats = gather_object([stats])
    if not state.is_main_process:
        return None
    return finish_annotation(config, plan, out, stats, state.num_processes)


def plan_annotation(config: AnnotateConfig, check_out: bool = True) -> AnnotationPlan:
    """Check ``config`` against its input and output folder and cut the pairs into shards.

    Args:
        config: The run's settings.
        check_out: Refuse an ``out`` that exists and is not an annotation folder (the main process only: the others
            could see the folder it is creating).

    Raises:
        ValueError: No pairs, a pair without the class asked for, or an IDM fine-tuned as an FDM.
        FileExistsError: ``out`` holds something that is not an annotation folder.
    """
    from wm_hub.models.model_folder import trained_task

    out = Path(config.out)
    if check_out and out.exists() and not (out / CONFIG_FILE).is_file():
        if not out.is_dir() or any(out.iterdir()):
            raise FileExistsError(
                f"out {out} exists and is not an annotation folder (no {CONFIG_FILE}); choose another"
            )
    plan = AnnotationPlan(load_pairs(config.data, config.split, config.origin_prefix), config.shard_size)
    if not plan.pairs.pairs:
        raise ValueError(f"{plan.pairs.description}: no pairs to annotate")
    if config.class_source == "input":
        unclassed = next((pair for pair in plan.pairs.pairs if pair.input_class is None), None)
        if unclassed is not None:
            raise ValueError(
                f"class_source='input' but pair {unclassed.id!r} of {plan.pairs.description} has no class"
            )
    if trained_task(config.idm) == "fdm":
        raise ValueError(f"idm {config.idm} was fine-tuned as an FDM (its training_run.json says task: fdm)")
    return plan


def pending_shards(plan: AnnotationPlan, out: Path) -> list[int]:
    """The shards of ``plan`` not yet written to ``out``."""
    return [shard for shard in range(plan.num_shards) if not _finished(plan, out, shard)]


def prepare_out(out: Path, config: AnnotateConfig, plan: AnnotationPlan) -> None:
    """Create ``out`` with the run config unless it has one; drop the temporary files of an interrupted run."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / CONFIG_FILE).is_file():
        write_json(out / CONFIG_FILE, _run_config(config, plan))
    for stale in [*out.glob(".annotations-*.tmp"), *(out / "frames").rglob(".*.tmp")]:
        stale.unlink(missing_ok=True)


def _run_config(config: AnnotateConfig, plan: AnnotationPlan) -> dict[str, Any]:
    import wm_hub

    settings = {name: getattr(config, name) for name in PLAN_FIELDS}
    for name in ("idm", "data"):  # the same local folder spelled differently is the same run
        if Path(settings[name]).exists():
            settings[name] = str(Path(settings[name]).resolve())
    return {
        "wm_hub_version": wm_hub.__version__,
        "settings": settings,
        "plan": {
            "input": plan.pairs.description,
            "num_pairs": len(plan.pairs.pairs),
            "shard_size": plan.shard_size,
            "num_shards": plan.num_shards,
            "ids_sha256": plan.digest(),
        },
        "score_field": "score_mean",
    }


def check_config(out: Path, config: AnnotateConfig, plan: AnnotationPlan) -> None:
    """Refuse to resume a folder started with other settings or other pairs."""
    saved = read_json_object(out / CONFIG_FILE)
    if not all(isinstance(saved.get(group), dict) for group in ("settings", "plan")):
        raise ValueError(f"{out / CONFIG_FILE}: not an annotation config wm-hub wrote; choose a new out")
    wanted = _run_config(config, plan)
    for group in ("settings", "plan"):
        for name, value in wanted[group].items():
            if name != "input" and saved[group].get(name) != value:
                raise ValueError(
                    f"{out / CONFIG_FILE}: this folder was started with {name}={saved[group].get(name)!r}, now "
                    f"{value!r}; resume with the same settings and data, or choose a new out"
                )


def _finished(plan: AnnotationPlan, out: Path, shard: int) -> bool:
    """Whether shard ``shard`` is written; a shard file whose ids are not the planned ones is an error."""
    path = plan.path(out, shard)
    if not path.is_file():
        return False
    expected = [plan.pairs.pairs[index].id for index in plan.indices(shard)]
    ids, images = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
            ids.append(row["id"])
            images += [row["source"], row["target"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: not an annotation row; remove the file to redo the shard") from None
    if ids != expected:
        raise ValueError(f"{path}: holds ids {ids[:3]}... but the plan has {expected[:3]}...; remove it to redo it")
    # a picture of the shard deleted since: the shard is done again (pictures first, then its rows replace these)
    return all(isinstance(image, str) and (out / image).is_file() for image in images)


def load_idm(config: AnnotateConfig, device: Any):
    from wm_hub.models.loading import load_backbone

    try:
        return load_backbone(config.idm, device=config.device or device, dtype=config.dtype)
    except (OSError, ValueError) as error:
        raise ValueError(f"idm {config.idm}: cannot load it ({error})") from error


def annotate_shards(
    config: AnnotateConfig,
    plan: AnnotationPlan,
    out: Path,
    shards: list[int],
    load_idm: Callable[[], Any],
    process: int = 0,
    processes: int = 1,
) -> dict[str, Any]:
    """Annotate ``shards`` in this process, each shard written whole; returns its counts and timings.

    Args:
        config: The run's settings.
        plan: The pairs and their shards.
        out: The annotation folder.
        shards: The shards to write.
        load_idm: Gives the IDM backbone (called only when there is a shard to write).
        process: This process's index among ``processes`` (progress bar and stats).
        processes: The processes (or tasks) sharing the shards.
    """
    from tqdm.auto import tqdm

    total = sum(len(plan.indices(shard)) for shard in shards)
    stats = {"process": process, "shards": len(shards), "pairs": total, "seconds": 0.0}
    if not shards:
        return stats
    start = time.perf_counter()
    idm = load_idm()
    stats["load_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    desc = "annotate" if processes == 1 else f"annotate [process {process}]"
    with tqdm(total=total, desc=desc, unit="pair", position=process, dynamic_ncols=True) as progress:
        for shard in shards:
            indices = list(plan.indices(shard))
            rows = []
            for begin in range(0, len(indices), config.batch_size):
                batch = indices[begin : begin + config.batch_size]
                rows += annotate_batch(idm, plan.pairs, batch, config, out)
                progress.update(len(batch))
            write_jsonl(plan.path(out, shard), rows, ensure_ascii=False)
    stats["seconds"] = time.perf_counter() - start
    return stats


def annotate_batch(idm, pairs: PairInput, indices: Sequence[int], config: AnnotateConfig, out: Path) -> list[dict]:
    """Generate, score and store one batch of pairs: writes their images under ``out``, returns their rows.

    Args:
        idm: The inverse-dynamics backbone.
        pairs: The input.
        indices: Pairs of the batch (indices into ``pairs.pairs``).
        config: Generation and class settings.
        out: Annotation folder the images go to.
    """
    from wm_hub.inference.actions import generate_idm_outputs
    from wm_hub.inference.scoring import output_log_likelihoods

    images = pairs.read(indices)
    ids = idm.encode_images([image.images[0] for image in images] + [image.images[1] for image in images])
    sources, targets = ids[: len(images)], ids[len(images) :]
    seed = config.seed + indices[0] if config.do_sample else None
    outputs = generate_idm_outputs(
        idm, list(zip(sources, targets)), config.max_new_tokens, config.do_sample, config.temperature, seed
    )
    scores = output_log_likelihoods(idm, sources, targets, outputs, batch_size=None)
    rows = []
    for index, pair_images, output, score in zip(indices, images, outputs, scores):
        pair = pairs.pairs[index]
        paths = _store_images(out, pair, pair_images)
        rows.append(_row(pair, paths, output.action, score, config.class_source, output.rationale))
    return rows


def blank_actions(rows: Sequence[dict[str, Any]]) -> int:
    """How many annotation rows have a blank ``action`` (the IDM wrote nothing: no label, ``wm-hub sample`` leaves
    them out)."""
    return sum(not row["action"].strip() for row in rows)


def _row(
    pair: FramePair, paths: tuple[str, str], action: str, score, class_source: str, rationale: str | None
) -> dict[str, Any]:
    verb = action_verb(action)
    action_class = verb if class_source == "verb" or pair.input_class is None else pair.input_class
    row = {
        "id": pair.id,
        "source": paths[0],
        "target": paths[1],
        "action": action,
        "score": score.mean,
        "score_sum": score.total,
        "score_mean": score.mean,
        "num_action_tokens": score.num_tokens,
        "action_class": action_class,
        "action_verb": verb,
        "video_class": pair.input_class,
        "video": pair.video,
        "frames": list(pair.frames) if pair.frames is not None else None,
        "origin": pair.origin,
    }
    if rationale is not None:
        row["rationale"] = rationale
    if pair.input_action is not None:
        row["input_action"] = pair.input_action
    return row


def _store_images(out: Path, pair: FramePair, images: PairImages) -> tuple[str, str]:
    """Write the pair's image bytes (atomically; a frame already there is kept); returns their paths under ``out``."""
    paths = []
    for stem, data, extension in zip(pair.image_stems, (images.source, images.target), images.extensions):
        relative = f"{stem}{extension}"
        path = out / relative
        if not path.is_file():
            write_with(path, lambda tmp, data=data: tmp.write_bytes(data))
        paths.append(relative)
    return paths[0], paths[1]


def finish_annotation(
    config: AnnotateConfig, plan: AnnotationPlan, out: Path, stats: list[dict], num_processes: int
) -> dict[str, Any]:
    """Check the merged result (every shard, exactly the planned ids), write and print ``annotation_run.json``.

    Args:
        config: The run's settings.
        plan: The pairs and their shards.
        out: The annotation folder.
        stats: Per process (or task) of this run: the shards and pairs it wrote and its timings.
        num_processes: Processes or tasks of this run.
    """
    missing = [shard for shard in range(plan.num_shards) if not _finished(plan, out, shard)]
    if missing:
        raise RuntimeError(f"{out}: shard(s) {missing} were not written; rerun to finish them")
    rows = read_annotations(out)
    ids = [row["id"] for row in rows]
    if ids != [pair.id for pair in plan.pairs.pairs]:
        raise RuntimeError(f"{out}: the shards do not hold every pair exactly once, in order")
    annotated = sum(item["pairs"] for item in stats)
    seconds = max((item["seconds"] for item in stats), default=0.0)
    means = [row["score_mean"] for row in rows]
    summary = {
        "out": str(out),
        "input": plan.pairs.description,
        "pairs": len(rows),
        "shards": plan.num_shards,
        "already_done": len(rows) - annotated,
        "annotated": annotated,
        "resumed_shards": plan.num_shards - sum(item["shards"] for item in stats),
        "processes": num_processes,
        "seconds": round(seconds, 3),
        "pairs_per_second": round(annotated / seconds, 3) if seconds else None,
        "per_process": stats,
        "settings": {**asdict(config)},
        "score_field": "score_mean",
        "score_mean": {"min": min(means), "mean": sum(means) / len(means), "max": max(means)},
        "action_classes": dict(sorted(Counter(row["action_class"] for row in rows).items())),
        # rows kept as they are (every pair has its row); wm-hub sample leaves them out
        "blank_actions": blank_actions(rows),
    }
    write_json(out / RUN_FILE, summary)
    return summary

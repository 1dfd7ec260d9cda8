"""The trajectory-preference probe (paper Section 2, Figure 2, Appendix D, Figure 7).

Does a model prefer real (source, action, target) trajectories to manipulated ones? For every triplet the
reference trajectory is compared with negatives built from the same subset:

- ``random_action``: the action of another row of the subset (one whose action text differs);
- ``random_target``: the target of another row of the subset (one whose target image differs);
- ``copy``: the source observation as the target;
- ``inverse``: source and target swapped;
- ``counterfactual`` (when AURORA's ``disc_edit_data`` is given): a minimally edited, wrong action for the same
  images (see :func:`load_counterfactuals`).

Each trajectory is scored by its log-likelihood in two directions, with the model's own training format
(:mod:`wm_hub.inference.scoring`, batched): ``forward`` = ``log p(target codes | source, action)`` (the FDM view),
``inverse`` = ``log p(action | source, target)`` (the IDM view). The reference wins a comparison when its
log-likelihood is strictly higher (a tie is not a win: a negative identical to the reference is never beaten).
Win rates are reported per negative type, direction and subset. Draws of random negatives are seeded per row
(``seed`` and the row id), so they do not change when other rows are added or removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from wm_hub.atomic_io import read_jsonl_log, write_with
from wm_hub.evaluation import split_names
from wm_hub.evaluation.vlm_scoring import ChatVLMScorer
from wm_hub.inference.scoring import SequenceScore, action_log_likelihoods, target_log_likelihoods
from wm_hub.models.base import Backbone

if TYPE_CHECKING:
    from wm_hub.evaluation.triplet_sources import EvalTripletsConfig

logger = logging.getLogger(__name__)

NEGATIVE_TYPES = ("random_action", "random_target", "copy", "inverse", "counterfactual")
DIRECTIONS = ("forward", "inverse")
Reduction = Literal["sum", "mean"]
REDUCTIONS = get_args(Reduction)
ALL_SUBSETS = "all"


@dataclass(frozen=True)
class Trajectory:
    """A (source, action, target) trajectory over a table of images.

    Attributes:
        source: Index of the source observation in the image table.
        action: Action text.
        target: Index of the target observation in the image table.
    """

    source: int
    action: str
    target: int


@dataclass
class ProbeRow:
    """One triplet's reference trajectory and its negatives.

    Attributes:
        id: The triplet's id.
        subset: Its subset (random negatives are drawn within it).
        reference: The real trajectory: ``(2 * i, action, 2 * i + 1)`` for row ``i``.
        negatives: Negative type -> trajectory; a type is absent when the row has none (e.g. no other action in
            its subset, or no counterfactual action).
    """

    id: str
    subset: str
    reference: Trajectory
    negatives: dict[str, Trajectory] = field(default_factory=dict)


@dataclass
class ProbeConfig:
    """How the probe runs.

    Args:
        seed: Seed of the random-action and random-target draws.
        batch_size: Sequences per scoring forward pass.
        directions: ``forward`` and/or ``inverse``, as a list or comma-separated.
        negatives: Negative types to build, as a list or comma-separated (``counterfactual`` only where
            counterfactual actions are given).
        reduction: Compare summed log-likelihoods (``sum``, the paper's) or per-token means (``mean``).
        image_batch_size: Images per VQ encoding pass.
    """

    seed: int = 0
    batch_size: int = 8
    directions: list[str] = field(default_factory=lambda: list(DIRECTIONS))
    negatives: list[str] = field(default_factory=lambda: list(NEGATIVE_TYPES))
    reduction: Reduction = "sum"
    image_batch_size: int = 16

    def __post_init__(self) -> None:
        self.directions = split_names(self.directions)
        self.negatives = split_names(self.negatives)
        for name, values, allowed in (
            ("direction", self.directions, DIRECTIONS),
            ("negative type", self.negatives, NEGATIVE_TYPES),
        ):
            unknown = sorted(set(values) - set(allowed))
            if unknown or not values:
                raise ValueError(f"unknown {name}(s) {unknown or values}; choose from {list(allowed)}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {self.reduction!r}")
        if self.batch_size < 1 or self.image_batch_size < 1:
            raise ValueError("batch sizes must be at least 1")


@dataclass
class ProbeRunConfig:
    """The model probed and where the outputs go (:func:`evaluate_probe`, ``wm-hub probe``).

    Args:
        model: Checkpoint folder or Hub id (any backbone wm-hub loads; with ``vlm``, an image-text-to-text model).
        out: Output folder (``probe.json``, ``probe.md``, ``probe_rows.jsonl``, plots, the score cache).
        disc_data: AURORA's ``disc_edit_data`` folder: adds counterfactual-action negatives.
        limit: Probe only the first N triplets (default: all).
        device: Torch device (default: CPU).
        dtype: LM dtype, e.g. bfloat16 (default: the checkpoint's).
        vlm: The model is an understanding-only VLM (``transformers`` ``AutoModelForImageTextToText`` with a chat
            template: Qwen2-VL, Qwen2.5-VL, LLaVA...), probed in the inverse direction only
            (:mod:`wm_hub.evaluation.vlm_scoring`), as the paper probes such models beside the unified ones.
    """

    model: str
    out: str
    disc_data: str | None = None
    limit: int | None = None
    device: str | None = None
    dtype: str | None = None
    vlm: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1 (leave it out for every triplet), got {self.limit}")


@dataclass
class ProbeResult:
    """Scores and win rates of a probe run.

    Attributes:
        rows: The probed rows (reference and negatives).
        scores: ``direction -> row id -> {"reference" | negative type: log-likelihood}``.
        win_rates: ``direction -> negative type -> subset (and "all") -> {"win_rate": %, "wins", "ties", "n"}``.
        config: The run's settings.
    """

    rows: list[ProbeRow]
    scores: dict[str, dict[str, dict[str, float]]]
    win_rates: dict[str, dict[str, dict[str, dict[str, float]]]]
    config: ProbeConfig


def _normalise(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def _row_rng(seed: int, row_id: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(row_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def image_fingerprint(image: Image.Image) -> str:
    """A hash of an image's pixels (mode, size, bytes): equal images, equal fingerprints."""
    return hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


def build_probe_rows(
    ids: Sequence[str],
    subsets: Sequence[str],
    actions: Sequence[str],
    target_keys: Sequence[str],
    *,
    seed: int = 0,
    negatives: Sequence[str] = NEGATIVE_TYPES,
    counterfactuals: dict[str, str] | None = None,
) -> list[ProbeRow]:
    """Reference and negative trajectories of every row, over the image table ``[s0, t0, s1, t1, ...]``.

    Args:
        ids: Row ids (unique).
        subsets: Subset of each row.
        actions: Reference action of each row.
        target_keys: A fingerprint of each row's target image (random targets must differ from the reference).
        seed: Seed of the random draws (per row: ``seed`` and the row id).
        negatives: Negative types to build.
        counterfactuals: ``row id -> counterfactual action`` (rows without one get no ``counterfactual``).

    Returns:
        One :class:`ProbeRow` per row, in order.

    Raises:
        ValueError: Duplicate ids or mismatched lengths.
    """
    if not len(ids) == len(subsets) == len(actions) == len(target_keys):
        raise ValueError("ids, subsets, actions and target_keys must have the same length")
    if len(set(ids)) != len(ids):
        raise ValueError("row ids must be unique")
    members: dict[str, list[int]] = {}
    for index, subset in enumerate(subsets):
        members.setdefault(subset, []).append(index)
    rows = []
    for i, (row_id, subset, action) in enumerate(zip(ids, subsets, actions)):
        source, target = 2 * i, 2 * i + 1
        row = ProbeRow(row_id, subset, Trajectory(source, action, target))
        rng = _row_rng(seed, row_id)
        if "random_action" in negatives:
            others = [j for j in members[subset] if j != i and _normalise(actions[j]) != _normalise(action)]
            if others:
                row.negatives["random_action"] = Trajectory(source, actions[int(rng.choice(others))], target)
        if "random_target" in negatives:
            others = [j for j in members[subset] if j != i and target_keys[j] != target_keys[i]]
            if others:
                row.negatives["random_target"] = Trajectory(source, action, 2 * int(rng.choice(others)) + 1)
        if "copy" in negatives:
            row.negatives["copy"] = Trajectory(source, action, source)
        if "inverse" in negatives:
            row.negatives["inverse"] = Trajectory(target, action, source)
        if "counterfactual" in negatives and counterfactuals and row_id in counterfactuals:
            row.negatives["counterfactual"] = Trajectory(source, counterfactuals[row_id], target)
        rows.append(row)
    return rows


def score_trajectories(
    backbone: Backbone,
    image_ids: torch.Tensor,
    trajectories: Sequence[Trajectory],
    direction: str,
    batch_size: int | None = 8,
) -> list[SequenceScore]:
    """Log-likelihoods of trajectories in one direction, batched.

    Args:
        backbone: The model.
        image_ids: ``(num_images, image_seq_len)`` LM ids of the image table.
        trajectories: What to score.
        direction: ``forward`` (target codes given source and action) or ``inverse`` (action given both images).
        batch_size: Sequences per forward pass.

    Returns:
        One score per trajectory.
    """
    sources = [image_ids[t.source] for t in trajectories]
    targets = [image_ids[t.target] for t in trajectories]
    actions = [t.action for t in trajectories]
    if direction == "forward":
        return target_log_likelihoods(backbone, sources, actions, targets, batch_size=batch_size)
    if direction == "inverse":
        return action_log_likelihoods(backbone, sources, targets, actions, batch_size=batch_size)
    raise ValueError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")


def encode_image_table(backbone: Backbone, images: Sequence[Image.Image], batch_size: int = 16) -> torch.Tensor:
    """LM ids ``(len(images), image_seq_len)`` of the images, encoded in batches."""
    chunks = [
        backbone.encode_images(list(images[start : start + batch_size]))
        for start in tqdm(range(0, len(images), batch_size), desc="encoding images", unit="batch")
    ]
    return torch.cat(chunks)


def win_rates(
    rows: Sequence[ProbeRow], scores: dict[str, dict[str, dict[str, float]]]
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Percentage of rows whose reference scores strictly higher than each negative, per subset and overall.

    Args:
        rows: The probed rows.
        scores: ``direction -> row id -> {"reference" | negative type: log-likelihood}``.

    Returns:
        ``direction -> negative type -> subset | "all" -> {"win_rate", "wins", "ties", "n"}`` (types with no
        row are left out).
    """
    result: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for direction, by_row in scores.items():
        tallies: dict[str, dict[str, list[int]]] = {}
        for row in rows:
            row_scores = by_row[row.id]
            for negative in row.negatives:
                for subset in (row.subset, ALL_SUBSETS):
                    tally = tallies.setdefault(negative, {}).setdefault(subset, [0, 0, 0])
                    tally[0] += row_scores["reference"] > row_scores[negative]
                    tally[1] += row_scores["reference"] == row_scores[negative]
                    tally[2] += 1
        result[direction] = {
            negative: {
                subset: {"win_rate": 100.0 * wins / n, "wins": wins, "ties": ties, "n": n}
                for subset, (wins, ties, n) in sorted(by_subset.items(), key=lambda item: item[0] == ALL_SUBSETS)
            }
            for negative, by_subset in sorted(tallies.items(), key=lambda item: NEGATIVE_TYPES.index(item[0]))
        }
    return result


def _trajectory_key(direction: str, trajectory: Trajectory, image_keys: Sequence[str]) -> str:
    return json.dumps([direction, image_keys[trajectory.source], trajectory.action, image_keys[trajectory.target]])


def run_probe(
    backbone: Backbone | ChatVLMScorer,
    ids: Sequence[str],
    subsets: Sequence[str],
    sources: Sequence[Image.Image],
    actions: Sequence[str],
    targets: Sequence[Image.Image],
    config: ProbeConfig | None = None,
    counterfactuals: dict[str, str] | None = None,
    score_cache: str | Path | None = None,
) -> ProbeResult:
    """Score every row's reference and negatives in each direction and compute the win rates.

    Args:
        backbone: The model (any backbone wm-hub loads; the same one scores both directions), or an
            understanding-only VLM's :class:`~wm_hub.evaluation.vlm_scoring.ChatVLMScorer` (inverse direction only).
        ids: Row ids.
        subsets: Subset of each row.
        sources: Source observations.
        actions: Reference actions.
        targets: Target observations.
        config: Probe settings.
        counterfactuals: ``row id -> counterfactual action`` (:func:`match_counterfactuals`).
        score_cache: A JSONL file of scores: trajectories already in it are not scored again, new scores are
            appended after each batch (an interrupted run resumes). Use one file per model.

    Returns:
        The rows, their scores and the win rates.
    """
    config = config or ProbeConfig()
    vlm = isinstance(backbone, ChatVLMScorer)
    if vlm and config.directions != ["inverse"]:
        raise ValueError("an understanding-only VLM cannot score images: probe it with directions=['inverse']")
    if not len(ids) == len(subsets) == len(sources) == len(actions) == len(targets):
        raise ValueError("ids, subsets, sources, actions and targets must have the same length")
    images = [image for pair in zip(sources, targets) for image in pair]
    fingerprints = [image_fingerprint(image) for image in images]
    rows = build_probe_rows(
        ids,
        subsets,
        actions,
        fingerprints[1::2],
        seed=config.seed,
        negatives=config.negatives,
        counterfactuals=counterfactuals,
    )
    cached = _read_score_cache(score_cache) if score_cache else {}
    image_ids: torch.Tensor | None = None
    score_of: dict[str, float] = {}
    for direction in config.directions:
        todo: dict[str, Trajectory] = {}
        for row in rows:
            for trajectory in (row.reference, *row.negatives.values()):
                key = _trajectory_key(direction, trajectory, fingerprints)
                if key in cached:
                    score_of[key] = cached[key][config.reduction]
                else:
                    todo.setdefault(key, trajectory)
        if todo and image_ids is None and not vlm:
            image_ids = encode_image_table(backbone, images, config.image_batch_size)
        keys = list(todo)
        step = config.batch_size
        for start in tqdm(range(0, len(keys), step), desc=f"probe ({direction})", unit="batch"):
            batch = keys[start : start + step]
            if vlm:
                chosen = [todo[k] for k in batch]
                batch_scores = backbone.action_log_likelihoods(
                    [images[t.source] for t in chosen], [images[t.target] for t in chosen], [t.action for t in chosen]
                )
            else:
                batch_scores = score_trajectories(backbone, image_ids, [todo[k] for k in batch], direction, None)
            lines = []
            for key, score in zip(batch, batch_scores):
                score_of[key] = score.total if config.reduction == "sum" else score.mean
                lines.append(json.dumps({"key": key, "sum": score.total, "mean": score.mean}) + "\n")
            if score_cache:
                with open(score_cache, "a") as handle:
                    handle.writelines(lines)
    scores = {
        direction: {
            row.id: {
                name: score_of[_trajectory_key(direction, trajectory, fingerprints)]
                for name, trajectory in (("reference", row.reference), *row.negatives.items())
            }
            for row in rows
        }
        for direction in config.directions
    }
    return ProbeResult(rows, scores, win_rates(rows, scores), config)


def _read_score_cache(path: str | Path) -> dict[str, dict[str, float]]:
    """Scores of a cache file; a last line cut short by a crash is dropped from the file."""
    cached = {}
    for number, entry in enumerate(read_jsonl_log(path), 1):
        try:
            cached[entry["key"]] = {"sum": float(entry["sum"]), "mean": float(entry["mean"])}
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: entry {number} is not a score entry; delete the file to rescore") from None
    return cached


# ----------------------------------------------------------------------------------------------------------------
# Counterfactual actions (AURORA disc_edit_data)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class CounterfactualRow:
    """One row of AURORA's ``disc_edit_data``: a true action and a wrong one for the same images.

    Attributes:
        subset: The subset folder it came from.
        location: ``file row N`` (for messages).
        true_action: ``prompt``, or ``pos`` for image-text rows without a prompt (WhatsUp ``itm_*.json``).
        counterfactual: ``neg`` when present and different from the true action, else ``pos``.
        images: Image paths the row names (``input``, ``output``, ``image``).
    """

    subset: str
    location: str
    true_action: str
    counterfactual: str
    images: list[str]


def load_counterfactuals(disc_dir: str | Path, subsets: Sequence[str] | None = None) -> list[CounterfactualRow]:
    """Read AURORA's ``disc_edit_data`` folder (``<subset>/*.json``, lists of rows).

    Rows hold ``prompt`` (the true action of ``input`` -> ``output``) and ``pos`` (ag, something: the opposite
    action), some also ``neg`` (kubric); WhatsUp's image-text rows hold ``image``, ``pos`` (true) and ``neg``.
    Rows with no wrong action (only a ``prompt``) are left out.

    Args:
        disc_dir: The ``disc_edit_data`` folder.
        subsets: Subset folders to read (default: all).

    Returns:
        The rows that have a counterfactual action.

    Raises:
        ValueError: A file that is not a JSON list of objects, or a row with neither ``prompt`` nor ``pos``, or a
            non-string field; the message names the file, row and field.
        FileNotFoundError: ``disc_dir`` is not a folder.
    """
    disc_dir = Path(disc_dir)
    if not disc_dir.is_dir():
        raise FileNotFoundError(f"{disc_dir}: no such folder (AURORA's disc_edit_data)")
    rows = []
    for path in sorted(disc_dir.glob("*/*.json")):
        subset = path.parent.name
        if subsets is not None and subset not in subsets:
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
        for index, row in enumerate(data):
            if not isinstance(row, dict):
                raise ValueError(f"{path}: row {index} is not an object")
            for name in ("prompt", "pos", "neg", "input", "output", "image"):
                if name in row and not isinstance(row[name], str):
                    raise ValueError(f"{path}: row {index}, field {name!r}: expected a string")
            true_action = row.get("prompt") or row.get("pos")
            if not true_action:
                raise ValueError(f"{path}: row {index} has neither 'prompt' nor 'pos' (the true action)")
            wrong = [row.get(name) for name in ("neg", "pos") if row.get(name)]
            wrong = [text for text in wrong if _normalise(text) != _normalise(true_action)]
            if not wrong:
                continue
            images = [row[name] for name in ("input", "output", "image") if row.get(name)]
            rows.append(CounterfactualRow(subset, f"{path} row {index}", true_action, wrong[0], images))
    return rows


def _common_suffix(a: str, b: str) -> int:
    parts_a, parts_b = Path(a).parts[::-1], Path(b).parts[::-1]
    count = 0
    for x, y in zip(parts_a, parts_b):
        if x != y:
            break
        count += 1
    return count


def match_counterfactuals(
    ids: Sequence[str],
    subsets: Sequence[str],
    actions: Sequence[str],
    disc_rows: Sequence[CounterfactualRow],
    image_paths: dict[str, tuple[str, str]] | None = None,
) -> dict[str, str]:
    """Counterfactual action of each triplet that a ``disc_edit_data`` row describes.

    A disc row matches a triplet of the same subset whose reference action equals the row's true action (case,
    spaces and a final full stop ignored). When the triplet's image paths are known, the row must also name an
    image with the same file name as the triplet's source or target (upstream moves folders, e.g. something's
    ``frames_validation_2K/36/first.jpg`` vs ``images/36/first.jpg``); the row sharing the longest path tail wins.
    Without paths, a match needs exactly one row with that action in the subset.

    Args:
        ids: Triplet ids.
        subsets: Subset of each triplet.
        actions: Reference action of each triplet.
        disc_rows: :func:`load_counterfactuals` rows.
        image_paths: ``id -> (source path, target path)`` when known (AURORA checkouts).

    Returns:
        ``id -> counterfactual action`` for the matched triplets.
    """
    by_action: dict[tuple[str, str], list[CounterfactualRow]] = {}
    for row in disc_rows:
        by_action.setdefault((row.subset, _normalise(row.true_action)), []).append(row)
    matched = {}
    for row_id, subset, action in zip(ids, subsets, actions):
        candidates = by_action.get((subset, _normalise(action)), [])
        paths = (image_paths or {}).get(row_id)
        if paths is None:
            if len(candidates) == 1:
                matched[row_id] = candidates[0].counterfactual
            continue
        best, best_overlap = None, 0
        for candidate in candidates:
            overlap = max((_common_suffix(a, b) for a in candidate.images for b in paths), default=0)
            if overlap > best_overlap:
                best, best_overlap = candidate, overlap
        if best is not None:
            matched[row_id] = best.counterfactual
    return matched


# ----------------------------------------------------------------------------------------------------------------
# Reports and plots
# ----------------------------------------------------------------------------------------------------------------
def result_to_dict(result: ProbeResult, **extra: Any) -> dict[str, Any]:
    """JSON-ready summary: win rates, config, counts per negative type, and ``extra`` (model, data...)."""
    return {
        **extra,
        "rows": len(result.rows),
        "subsets": sorted({row.subset for row in result.rows}),
        "win_rates": result.win_rates,
        "config": asdict(result.config),
    }


def markdown_report(result: ProbeResult, title: str = "Trajectory-preference probe") -> str:
    """Markdown tables (one per direction): % of rows where the reference beats each negative, per subset."""
    subsets = sorted({row.subset for row in result.rows}) + [ALL_SUBSETS]
    lines = [f"# {title}", ""]
    lines.append(
        "Percentage of rows where the model gives the reference trajectory a strictly higher log-likelihood "
        f"({result.config.reduction} over the scored tokens) than the negative; n in brackets."
    )
    names = {"forward": "Forward (next observation | source, action)", "inverse": "Inverse (action | observations)"}
    for direction, by_negative in result.win_rates.items():
        negatives = list(by_negative)
        lines += ["", f"## {names[direction]}", ""]
        lines.append("| subset | " + " | ".join(negatives) + " |")
        lines.append("|---|" + "---|" * len(negatives))
        for subset in subsets:
            cells = []
            for negative in negatives:
                cell = by_negative[negative].get(subset)
                cells.append(f"{cell['win_rate']:.1f} ({cell['n']})" if cell else "-")
            lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_probe(result: ProbeResult, out_dir: str | Path) -> list[Path]:
    """Figure 7-style plots: NLL of reference vs negative (scatter) and NLL differences (histograms).

    Writes ``probe_scatter.png`` (one row per direction, the inverse (action) one on top as in Figure 7, one
    panel per negative type; the legend gives the % of rows where the reference is preferred) and
    ``probe_hist.png`` (``NLL(negative) - NLL(reference)``: mass right of 0 = the reference is preferred).

    Returns:
        The written files.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    directions = [direction for direction in ("inverse", "forward") if direction in result.win_rates]  # as Figure 7
    negatives = [name for name in NEGATIVE_TYPES if any(name in result.win_rates[d] for d in directions)]
    titles = {"forward": "next observation", "inverse": "action"}
    paths = []
    for kind in ("scatter", "hist"):
        figure, axes = plt.subplots(
            len(directions), len(negatives), figsize=(3.2 * len(negatives), 3.0 * len(directions)), squeeze=False
        )
        for r, direction in enumerate(directions):
            scores = result.scores[direction]
            for c, negative in enumerate(negatives):
                axis = axes[r][c]
                pairs = [
                    (-scores[row.id]["reference"], -scores[row.id][negative])
                    for row in result.rows
                    if negative in row.negatives
                ]
                stats = result.win_rates[direction].get(negative, {}).get(ALL_SUBSETS)
                if not pairs or stats is None:
                    axis.set_axis_off()
                    continue
                reference, negative_nll = np.array(pairs).T
                label = f"reference preferred: {stats['win_rate']:.1f}%"
                if kind == "scatter":
                    axis.scatter(reference, negative_nll, s=10, alpha=0.7, label=label)
                    low = float(min(reference.min(), negative_nll.min()))
                    high = float(max(reference.max(), negative_nll.max()))
                    axis.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
                    axis.set_xlabel("NLL reference")
                    axis.set_ylabel(f"NLL {negative}")
                else:
                    axis.hist(negative_nll - reference, bins=20, alpha=0.8, label=label)
                    axis.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
                    axis.set_xlabel(f"NLL {negative} - NLL reference")
                    axis.set_ylabel("rows")
                axis.set_title(f"{titles[direction]}: {negative}", fontsize=9)
                axis.legend(fontsize=7, loc="best")
        figure.tight_layout()
        path = out_dir / f"probe_{kind}.png"
        write_with(path, lambda tmp, figure=figure: figure.savefig(tmp, format="png", dpi=110))
        plt.close(figure)
        paths.append(path)
    return paths


def write_probe_outputs(result: ProbeResult, out_dir: str | Path, **extra: Any) -> dict[str, Path]:
    """Write ``probe.json`` (summary), ``probe.md`` (tables), ``probe_rows.jsonl`` and the plots into ``out_dir``.

    ``probe_rows.jsonl`` holds every row's trajectories, images named ``<row id>:source`` / ``<row id>:target``,
    and their log-likelihoods per direction. Each file is written to a temporary name, then renamed.

    Returns:
        ``name -> path`` of the written files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / "probe.json", "markdown": out_dir / "probe.md", "rows": out_dir / "probe_rows.jsonl"}
    summary = json.dumps(result_to_dict(result, **extra), indent=2) + "\n"
    write_with(files["json"], lambda tmp: tmp.write_text(summary))
    report = markdown_report(result)
    write_with(files["markdown"], lambda tmp: tmp.write_text(report))
    ids = [row.id for row in result.rows]

    def described(trajectory: Trajectory) -> dict[str, str]:
        def image(index: int) -> str:
            return f"{ids[index // 2]}:{'target' if index % 2 else 'source'}"

        return {"source": image(trajectory.source), "action": trajectory.action, "target": image(trajectory.target)}

    lines = []
    for row in result.rows:
        entry = {
            "id": row.id,
            "subset": row.subset,
            "reference": described(row.reference),
            "negatives": {name: described(trajectory) for name, trajectory in row.negatives.items()},
            "scores": {direction: result.scores[direction][row.id] for direction in result.scores},
        }
        lines.append(json.dumps(entry) + "\n")
    write_with(files["rows"], lambda tmp: tmp.write_text("".join(lines)))
    for path in plot_probe(result, out_dir):
        files[path.stem] = path
    return files


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def cache_name(model: str) -> str:
    """A score-cache file name for a model id or path (one cache per model)."""
    return f"scores-{_SAFE.sub('_', model.strip('/'))[-80:]}.jsonl"


def evaluate_probe(
    run: ProbeRunConfig, data: EvalTripletsConfig, config: ProbeConfig
) -> tuple[ProbeResult, dict[str, Path]]:
    """Probe ``run.model`` on the triplets of ``data`` and write the outputs into ``run.out``.

    Scores are cached in ``run.out`` (:func:`cache_name`): a rerun, or an interrupted run, only scores what is
    missing.

    Returns:
        The result and the written files (:func:`write_probe_outputs`).

    Raises:
        ValueError: Not a triplet dataset, an unknown subset, rows with missing images (``MissingFilesError``,
            without ``skip_missing``), a bad ``disc_edit_data`` row, or only counterfactual negatives asked for and
            none to build.
        FileNotFoundError: A data or ``disc_data`` folder that does not exist.
    """
    from wm_hub.models.loading import load_backbone

    triplets = data.load()
    dataset = triplets.dataset
    if run.limit:
        dataset = dataset.select(range(min(run.limit, len(dataset))))
    ids, actions = dataset["id"], dataset["action"]
    subsets = triplets.subsets()[: len(dataset)]
    counterfactuals = None
    if run.disc_data:
        disc_rows = load_counterfactuals(run.disc_data, sorted(set(subsets)))
        counterfactuals = match_counterfactuals(ids, subsets, actions, disc_rows, triplets.image_paths)
    if set(config.negatives) == {"counterfactual"} and not counterfactuals:  # nothing to probe: say so before scoring
        found = f"none of its rows matches the probed triplets in {run.disc_data}" if run.disc_data else "none given"
        raise ValueError(f"--negatives counterfactual needs --disc-data (AURORA's disc_edit_data folder): {found}")
    if triplets.skipped:
        names = ", ".join(f"{bad['id']} ({bad['field']}: {bad['path']})" for bad in triplets.skipped)
        logger.warning("Skipped %d row(s) with missing or unreadable images: %s", len(triplets.skipped), names)
    if run.vlm:
        if "forward" in config.directions:
            logger.info("%s is probed in the inverse direction only (an understanding-only VLM)", run.model)
            config = dataclasses.replace(config, directions=["inverse"])
        backbone = ChatVLMScorer(run.model, device=run.device, dtype=run.dtype)
    else:
        backbone = load_backbone(run.model, device=run.device, dtype=run.dtype)
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run_probe(
        backbone,
        ids,
        subsets,
        dataset["source"],
        actions,
        dataset["target"],
        config,
        counterfactuals=counterfactuals,
        score_cache=out / cache_name(run.model),
    )
    files = write_probe_outputs(
        result,
        out,
        model=run.model,
        data=triplets.description,
        skipped=triplets.skipped,
        without_target=triplets.without_target,
        counterfactual_rows=len(counterfactuals or {}),
    )
    return result, files

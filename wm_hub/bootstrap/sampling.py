"""Stratified top-K sampling of IDM-annotated pairs (paper Appendix E, Algorithm 1, Figure 9).

After annotation every key-frame pair carries the IDM's action, the action's log-likelihood under the IDM (its
*score*) and a coarse *class* (the video's class folder, an EPIC verb...). The paper keeps K of them for FDM
training, as many per class as possible (class uniformity) and the best-scored ones inside each class
(likelihood). Algorithm 1, exactly as implemented by :func:`stratified_top_k`:

1. sort the rows by score, descending;
2. visit the classes in a fixed round-robin order; each visit takes the class's best row not yet taken (a class
   with none left is passed over);
3. stop as soon as K rows are taken (possibly in the middle of a round) or when no row is left (K larger than the
   data returns every row).

The paper leaves two orders open; here they are fixed so that a run is reproducible and independent of the order
of the input rows or shards:

- **Ties in score** are broken by ``id``, ascending (integer ids numerically, before string ids, which compare as
  strings). Inside a class this decides which of two equally scored rows comes first.
- **Round-robin order of the classes**: by each class's best score, descending, then by class name. This is the
  order in which the classes first appear in the sorted list of step 1 (the scan of Algorithm 1 meets the top
  row's class first), with ties between best scores settled by name rather than by id. The order only matters
  for the last, partial round: when K is not a multiple of the number of live classes, the classes with the
  better best rows get the extra row.

The result comes back in pick order (round by round, classes in round-robin order). A consequence worth knowing:
every class gets ``min(its size, r)`` or ``r + 1`` rows for some ``r``, so small classes are taken whole and the
remaining budget is spread evenly over the larger ones (the "nearly uniform" classes of Figure 9).

Which score: annotation stores both the sum of the action tokens' log-probabilities and their per-token mean. The
default here is the per-token **mean** (``score_mean``), falling back to a plain ``score`` column: the sum favours
short actions (fewer negative terms), so ranking by it would select terse labels; the mean is length-normalised.

File interface (:func:`sample_annotations`, ``wm-hub sample``): JSONL rows in (a file, or a folder whose
``*.jsonl`` files are read in name order); the selected rows out, each written back as its original line
(byte-identical, every field kept); a JSON report of per-class counts and score statistics before and after; a
PNG of the per-class score distributions before and after (Figure 9). All three are written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from wm_hub.atomic_io import utf8_lines, write_text, write_with

DEFAULT_SCORE_FIELDS = ("score_mean", "score")  # the first one the first row has is used by default
SCORE_FIELD_ALIASES = {"mean": "score_mean", "sum": "score_sum"}
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
REPORT_SUFFIX = ".report.json"
PLOT_SUFFIX = ".scores.png"


@dataclass
class SamplingFiles:
    """Where ``wm-hub sample`` reads annotated rows and writes the sample (see :func:`sample_annotations`).

    Args:
        input: A JSONL file, or a folder: its ``annotations-*.jsonl`` shards if it has any (``wm-hub annotate``
            output), else all its ``*.jsonl`` files, in name order (:func:`input_files`).
        out: Output JSONL file; the report and the plot are written next to it (:func:`output_paths`).
    """

    input: str = field(
        metadata={
            "help": "a JSONL file, or a folder: its annotations-*.jsonl shards if it has any (wm-hub annotate "
            "output), else all its *.jsonl files, in name order",
            "metavar": "FILE_OR_DIR",
        }
    )
    out: str = field(metadata={"help": "output JSONL file (report and plot are written next to it)"})


@dataclass
class SamplingConfig:
    """How to sample annotated rows.

    Attributes:
        k: Number of rows to keep (all rows when there are fewer).
        score_field: Row field holding the score. ``None``: ``score_mean`` if the first row has it, else ``score``.
            ``mean`` and ``sum`` are short for ``score_mean`` and ``score_sum`` unless the first row has a field of
            that very name.
        class_field: Row field holding the class (a non-empty string).
        id_field: Row field holding the unique id (a string or an integer).
        action_field: Row field holding the IDM's action. A row whose action is blank (the IDM wrote nothing) is no
            label for the FDM: it is left out and counted in the report (``blank_actions``). Rows without the field
            are kept.
        keep_blank_actions: Sample rows with a blank action too.
        skip_invalid: Skip rows with a missing or non-finite score, a missing class or id (counted and listed in the
            report) instead of raising on the first one. Unparsable lines and duplicate ids always raise.
        max_plot_classes: Classes drawn in the plot (the first ones in round-robin order); the report has them all.
    """

    k: int = field(metadata={"help": "number of rows to keep (all when there are fewer)"})
    score_field: str | None = field(
        default=None,
        metadata={
            "help": "field to rank by; 'mean'/'sum' mean score_mean/score_sum (default: score_mean if the first row "
            "has it, else score)"
        },
    )
    class_field: str = field(default="action_class", metadata={"help": "field to stratify by"})
    id_field: str = field(default="id", metadata={"help": "unique id field"})
    action_field: str = field(
        default="action",
        metadata={"help": "the IDM's action; rows where it is blank (the IDM wrote nothing) are left out, counted"},
    )
    keep_blank_actions: bool = field(default=False, metadata={"help": "sample rows with a blank action too"})
    skip_invalid: bool = field(
        default=False,
        metadata={
            "help": "skip rows with a missing/non-finite score or missing class/id (counted and listed in the "
            "report) instead of stopping at the first"
        },
    )
    max_plot_classes: int = field(default=40, metadata={"help": "classes drawn in the plot, best first"})

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:  # k=0 would write an empty file
            raise ValueError(f"k must be a positive integer (the number of rows to keep), got {self.k!r}")
        if self.max_plot_classes < 1:
            raise ValueError(f"max_plot_classes must be at least 1, got {self.max_plot_classes}")
        for name in ("class_field", "id_field", "action_field"):  # a recipe's `class_field: null` names no field
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"{name} must name a row field, got {getattr(self, name)!r}")


@dataclass
class SkippedRow:
    """A row left out with ``skip_invalid``.

    Attributes:
        location: ``file:line``.
        reason: What is wrong with it.
    """

    location: str
    reason: str


@dataclass
class AnnotationRows:
    """Rows read from JSONL files, in reading order.

    Attributes:
        rows: The parsed, valid rows.
        lines: Each row's original line (no line break), written back unchanged.
        locations: Each row's ``file:line``.
        files: The files read, in order.
        skipped: Rows skipped as invalid (only with ``skip_invalid``).
        blank_actions: Valid rows left out because their action is blank.
    """

    rows: list[dict[str, Any]]
    lines: list[str]
    locations: list[str]
    files: list[str]
    skipped: list[SkippedRow] = field(default_factory=list)
    blank_actions: int = 0


@dataclass
class SamplingReport:
    """What :func:`sample_annotations` did; written as JSON next to the output.

    Attributes:
        inputs: Files read, in order.
        output: The JSONL written.
        report: This report's JSON file.
        plot: The PNG written.
        k: Rows asked for.
        score_field: Field the rows were ranked by.
        class_field: Field the rows were stratified by.
        rows_read: Valid rows read with an action (the rows sampled from).
        rows_selected: Rows written (``min(k, rows_read)``).
        skipped: Invalid rows left out (``skip_invalid``).
        blank_actions: Valid rows left out because the IDM wrote no action (see ``SamplingConfig.action_field``).
        class_order: Round-robin order of the classes.
        counts: ``{"before": {class: n}, "after": {class: n}}``, classes in round-robin order.
        scores: ``{"before"|"after": {"all": stats, "per_class": {class: stats}}}``, see :func:`score_statistics`.
    """

    inputs: list[str]
    output: str
    report: str
    plot: str
    k: int
    score_field: str
    class_field: str
    rows_read: int
    rows_selected: int
    skipped: list[SkippedRow]
    blank_actions: int
    class_order: list[str]
    counts: dict[str, dict[str, int]]
    scores: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return asdict(self)


def _id_key(value: str | int) -> tuple[int, int | str]:
    """Sort key of an id: integers numerically, before strings."""
    return (0, value) if isinstance(value, int) else (1, value)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def row_problem(row: Any, score_field: str, class_field: str, id_field: str = "id") -> str | None:
    """Why ``row`` cannot be sampled (``None`` when it can).

    Args:
        row: A parsed JSONL row.
        score_field: Field that must hold a finite number.
        class_field: Field that must hold a non-empty string.
        id_field: Field that must hold a string or an integer.

    Returns:
        A short reason naming the field, or ``None``.
    """
    if not isinstance(row, dict):
        return f"not a JSON object ({type(row).__name__})"
    if id_field not in row:
        return f"no {id_field!r} field"
    row_id = row[id_field]
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        return f"{id_field!r} is {row_id!r}, not a string or an integer"
    if score_field not in row:
        return f"no {score_field!r} field"
    score = row[score_field]
    if isinstance(score, bool) or not isinstance(score, Real):
        return f"{score_field!r} is {score!r}, not a number"
    if not math.isfinite(score):
        return f"{score_field!r} is {score!r}, not finite"
    if class_field not in row:
        return f"no {class_field!r} field"
    if not isinstance(row[class_field], str) or not row[class_field]:
        return f"{class_field!r} is {row[class_field]!r}, not a non-empty string"
    return None


def stratified_top_k_indices(
    scores: Sequence[float], classes: Sequence[str], ids: Sequence[str | int], k: int
) -> tuple[list[int], list[str]]:
    """Algorithm 1 on parallel columns (for instance a ``datasets.Dataset``'s): the picked row indices.

    ``dataset.select(stratified_top_k_indices(ds["score"], ds["action_class"], ds["id"], k)[0])`` samples a dataset
    without turning it into dicts. Same rules as :func:`stratified_top_k`; ids must be unique and orderable
    (strings, integers, or both).

    Args:
        scores: Finite numbers, higher is better.
        classes: Each row's class.
        ids: Each row's unique id (tie-breaker).
        k: Number of rows to pick.

    Returns:
        The picked indices in pick order, and the round-robin order of the classes.

    Raises:
        ValueError: Columns of different lengths, a score that is not a finite number, or a negative ``k``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    if not len(scores) == len(classes) == len(ids):
        raise ValueError(f"scores, classes and ids differ in length: {len(scores)}, {len(classes)}, {len(ids)}")
    scores, classes, ids = list(scores), list(classes), list(ids)  # dataset columns: index plain lists
    bad = next((index for index, score in enumerate(scores) if not _is_finite_number(score)), None)
    if bad is not None:
        raise ValueError(f"row {bad}: score {scores[bad]!r} is not a finite number")
    by_class: dict[str, list[int]] = {}
    for index in sorted(range(len(scores)), key=lambda i: (-scores[i], _id_key(ids[i]))):
        by_class.setdefault(classes[index], []).append(index)  # each class's rows, best first
    class_order = sorted(by_class, key=lambda name: (-scores[by_class[name][0]], name))
    picked: list[int] = []
    live = class_order
    depth = 0  # round number = position inside each class's sorted rows
    while live and len(picked) < k:
        for name in live:
            picked.append(by_class[name][depth])
            if len(picked) == k:
                break
        depth += 1
        live = [name for name in live if len(by_class[name]) > depth]
    return picked, class_order


def stratified_top_k(
    rows: Sequence[dict[str, Any]],
    k: int,
    *,
    score_field: str = "score",
    class_field: str = "action_class",
    id_field: str = "id",
) -> list[dict[str, Any]]:
    """Algorithm 1 of the paper: up to ``k`` rows, round-robin over classes, best score first in each class.

    Ties in score are broken by id (ascending); classes are visited in the order of their best score (descending),
    then by name. See the module docstring for the reasoning.

    Args:
        rows: Rows with an id, a finite score and a class (other fields are ignored and kept).
        k: Number of rows to return (every row when there are fewer).
        score_field: Field holding the score (higher is better).
        class_field: Field holding the class, a non-empty string.
        id_field: Field holding a unique string or integer id.

    Returns:
        The selected rows themselves (not copies), in pick order: round by round, classes in round-robin order.

    Raises:
        ValueError: ``k`` is negative, a row is invalid (named by its index and field), or an id repeats.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    seen: dict[str | int, int] = {}
    for index, row in enumerate(rows):
        problem = row_problem(row, score_field, class_field, id_field)
        if problem is not None:
            raise ValueError(f"row {index}: {problem}")
        if row[id_field] in seen:
            raise ValueError(
                f"row {index}: duplicate {id_field} {row[id_field]!r} (first at row {seen[row[id_field]]})"
            )
        seen[row[id_field]] = index
    picked, _ = stratified_top_k_indices(
        [float(row[score_field]) for row in rows],
        [row[class_field] for row in rows],
        [row[id_field] for row in rows],
        k,
    )
    return [rows[index] for index in picked]


def input_files(path: str | Path, exclude: Iterable[str | Path] = ()) -> list[Path]:
    """The JSONL files to read: ``path`` itself, or a folder's shards in name order.

    A folder written by ``wm-hub annotate`` is read as its ``annotations-*.jsonl`` shards only, so samples written
    into it (``--out annotated/top7k.jsonl``, built with ``data build --annotations``) are never read back as input;
    any other folder as all of its ``*.jsonl`` files.

    Args:
        path: A JSONL file or a folder of JSONL shards.
        exclude: Files never to read (the output being written into the same folder).

    Raises:
        FileNotFoundError: Nothing there, or a folder with no ``*.jsonl`` file.
    """
    path = Path(path)
    excluded = {Path(item).resolve() for item in exclude}
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    pattern = "annotations-*.jsonl" if any(path.glob("annotations-*.jsonl")) else "*.jsonl"
    files = [item for item in sorted(path.glob(pattern)) if item.is_file() and item.resolve() not in excluded]
    if not files:
        raise FileNotFoundError(f"{path}: no *.jsonl file in this folder")
    return files


def resolve_score_field(name: str | None, first_row: dict[str, Any] | None) -> str:
    """The score field to rank by, from ``--score-field`` and the first row read (see :class:`SamplingConfig`)."""
    keys = first_row if isinstance(first_row, dict) else {}
    if name is None:
        return next((candidate for candidate in DEFAULT_SCORE_FIELDS if candidate in keys), DEFAULT_SCORE_FIELDS[-1])
    if name in keys:
        return name
    return SCORE_FIELD_ALIASES.get(name, name)


def read_annotation_rows(files: Sequence[str | Path], config: SamplingConfig) -> tuple[AnnotationRows, str]:
    """Read and check JSONL rows; errors name ``file:line``.

    Blank lines are allowed. The score field is resolved from the first row (:func:`resolve_score_field`).

    Args:
        files: JSONL files, read in this order.
        config: Fields and whether to skip invalid rows.

    Returns:
        The rows and the resolved score field.

    Raises:
        ValueError: A line that is not JSON, an invalid row (unless ``skip_invalid``), or a repeated id, each naming
            the file and line (a duplicate names both).
    """
    result = AnnotationRows(rows=[], lines=[], locations=[], files=[str(path) for path in files])
    score_field: str | None = None
    seen: dict[str | int, str] = {}
    with tqdm(desc="reading annotations", unit=" rows", disable=None) as progress:
        for path in files:
            for number, line in utf8_lines(path):
                if not line.strip():
                    continue
                location = f"{path}:{number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{location}: not valid JSON ({error})") from None
                if score_field is None:
                    score_field = resolve_score_field(config.score_field, row)
                problem = row_problem(row, score_field, config.class_field, config.id_field)
                if problem is not None:
                    if not config.skip_invalid:
                        raise ValueError(f"{location}: {problem} (use skip_invalid / --skip-invalid to skip)")
                    result.skipped.append(SkippedRow(location, problem))
                    continue
                row_id = row[config.id_field]
                if row_id in seen:
                    raise ValueError(f"{location}: duplicate {config.id_field} {row_id!r} (first at {seen[row_id]})")
                seen[row_id] = location
                action = row.get(config.action_field)
                if action is not None and not isinstance(action, str):
                    problem = f"{config.action_field} must be a string, got {action!r}"
                    if not config.skip_invalid:
                        raise ValueError(f"{location}: {problem} (use skip_invalid / --skip-invalid to skip)")
                    result.skipped.append(SkippedRow(location, problem))
                    continue
                written = action.strip() if isinstance(action, str) else config.action_field not in row
                if not config.keep_blank_actions and not written:  # blank, or null: the IDM wrote nothing
                    result.blank_actions += 1
                    continue
                result.rows.append(row)
                result.lines.append(line.rstrip("\r\n"))
                result.locations.append(location)
                progress.update()
    return result, score_field or resolve_score_field(config.score_field, None)


def score_statistics(scores: Sequence[float]) -> dict[str, Any]:
    """Count, mean, population std, min, max and the :data:`QUANTILES` (linear interpolation) of ``scores``.

    Args:
        scores: Finite numbers (may be empty: every statistic but the count is then ``None``).

    Returns:
        ``{"count", "mean", "std", "min", "max", "quantiles": {"0.05": ..., ...}}`` as plain floats.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None, "quantiles": None}
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {str(q): float(value) for q, value in zip(QUANTILES, np.quantile(values, QUANTILES))},
    }


def _stage_statistics(scores: Sequence[float], classes: Sequence[str], class_order: Sequence[str]) -> dict[str, Any]:
    per_class: dict[str, list[float]] = {name: [] for name in class_order}
    for score, name in zip(scores, classes):
        per_class[name].append(score)
    return {
        "all": score_statistics(scores),
        "per_class": {name: score_statistics(values) for name, values in per_class.items()},
    }


def plot_score_distributions(
    before: dict[str, Sequence[float]],
    after: dict[str, Sequence[float]],
    path: str | Path,
    *,
    score_field: str = "score",
    title: str | None = None,
) -> Path:
    """Per-class score distributions before and after sampling, as in the paper's Figure 9 (PNG, Agg backend).

    Top panel: rows per class before and after (log scale). Bottom panel: box plots of the scores per class, before
    (grey) and after (blue). Classes are drawn in the order of ``before``'s keys. Written atomically.

    Args:
        before: ``{class: scores}`` of every row.
        after: ``{class: scores}`` of the selected rows (classes missing here count as empty).
        path: PNG file to write.
        score_field: Axis label.
        title: Figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    path = Path(path)
    names = list(before)
    positions = np.arange(len(names), dtype=np.float64)
    width = max(6.0, 0.45 * len(names) + 2.0)
    figure, (counts_axis, scores_axis) = plt.subplots(
        2, 1, figsize=(width, 7.0), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    counts_before = [len(before[name]) for name in names]
    counts_after = [len(after.get(name, ())) for name in names]
    counts_axis.bar(positions - 0.2, counts_before, width=0.4, color="0.7", label="before")
    counts_axis.bar(positions + 0.2, counts_after, width=0.4, color="tab:blue", label="after")
    counts_axis.set_yscale("log")
    counts_axis.set_ylabel("rows")
    counts_axis.legend(loc="upper right", fontsize="small")
    for offset, stage, colour in ((-0.2, before, "0.7"), (0.2, after, "tab:blue")):
        data = [list(stage.get(name, ())) for name in names]
        drawn = [i for i, values in enumerate(data) if values]
        if drawn:
            boxes = scores_axis.boxplot(
                [data[i] for i in drawn],
                positions=positions[drawn] + offset,
                widths=0.35,
                patch_artist=True,
                showfliers=True,
                flierprops={"markersize": 2},
            )
            for box in boxes["boxes"]:
                box.set_facecolor(colour)
    scores_axis.legend(
        handles=[Patch(color="0.7", label="before"), Patch(color="tab:blue", label="after")],
        loc="lower right",
        fontsize="small",
    )
    scores_axis.set_ylabel(f"IDM log-likelihood ({score_field})")
    scores_axis.set_xticks(positions, names, rotation=60, ha="right", fontsize="small")
    scores_axis.set_xlim(-0.7, len(names) - 0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    write_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
    return path


def output_paths(out: str | Path) -> tuple[Path, Path, Path]:
    """The output JSONL and, next to it, the report (``<stem>.report.json``) and plot (``<stem>.scores.png``)."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out, out.with_name(stem + REPORT_SUFFIX), out.with_name(stem + PLOT_SUFFIX)


def sample_annotations(input_path: str | Path, out: str | Path, config: SamplingConfig) -> SamplingReport:
    """Read annotated rows, keep ``config.k`` by :func:`stratified_top_k`, write them with a report and a plot.

    The output JSONL holds each selected row's original line, in pick order. The report (``<stem>.report.json``)
    and plot (``<stem>.scores.png``) go next to it; see :func:`output_paths`. Every file is written to a temporary
    name and renamed into place.

    Args:
        input_path: A JSONL file or a folder of ``*.jsonl`` shards (read in name order; ``out`` is never read).
        out: Output JSONL file (its folder is created).
        config: What to sample and how.

    Returns:
        The report that was written.

    Raises:
        FileNotFoundError: No input.
        ValueError: Bad rows (naming ``file:line``), repeated ids, no valid row at all, or an output that is an input
            (nothing is written then).
    """
    out_path, report_path, plot_path = output_paths(out)
    # The output may replace an earlier sample (it has its report beside it), never an input being read.
    earlier_sample = report_path.is_file() and not Path(input_path).is_file()
    inputs = {path.resolve() for path in input_files(input_path)}
    written = {}
    for path in (out_path, report_path, plot_path):
        try:
            written[path] = path.resolve()
        except (RuntimeError, OSError) as error:  # e.g. a symlink loop
            raise ValueError(f"--out {out}: cannot write {path} ({error})") from None
    if out_path.is_file() and not earlier_sample and written[out_path] in inputs:
        raise ValueError(f"--out {out} would overwrite the input {out_path}: write the sample to another file")
    for path in (report_path, plot_path):
        if written[path] in inputs:
            raise ValueError(f"--out {out} would write its report over the input {path}: write the sample elsewhere")
    files = input_files(input_path, exclude=(out_path,))
    data, score_field = read_annotation_rows(files, config)
    if not data.rows:
        skipped = f"{len(data.skipped)} invalid rows skipped" if data.skipped else ""
        if data.blank_actions:
            skipped += f"{', ' if skipped else ''}{data.blank_actions} rows with a blank {config.action_field!r}"
            skipped += " left out: the IDM wrote nothing; keep_blank_actions / --keep-blank-actions samples them"
        raise ValueError(f"{input_path}: no row to sample{f' ({skipped})' if skipped else ''}")
    scores = [float(row[score_field]) for row in data.rows]
    classes = [row[config.class_field] for row in data.rows]
    ids = [row[config.id_field] for row in data.rows]
    picked, class_order = stratified_top_k_indices(scores, classes, ids, config.k)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_text(out_path, "".join(data.lines[index] + "\n" for index in picked))
    picked_scores = [scores[index] for index in picked]
    picked_classes = [classes[index] for index in picked]
    before: dict[str, list[float]] = {name: [] for name in class_order}
    after: dict[str, list[float]] = {name: [] for name in class_order}
    for score, name in zip(scores, classes):
        before[name].append(score)
    for score, name in zip(picked_scores, picked_classes):
        after[name].append(score)
    drawn = class_order[: config.max_plot_classes]
    shown = f"{len(drawn)} of {len(class_order)} classes" if len(drawn) < len(class_order) else "per class"
    plot_score_distributions(
        {name: before[name] for name in drawn},
        {name: after[name] for name in drawn},
        plot_path,
        score_field=score_field,
        title=f"{len(picked)} of {len(scores)} rows, stratified top-K ({shown})",
    )
    report = SamplingReport(
        inputs=data.files,
        output=str(out_path),
        report=str(report_path),
        plot=str(plot_path),
        k=config.k,
        score_field=score_field,
        class_field=config.class_field,
        rows_read=len(data.rows),
        rows_selected=len(picked),
        skipped=data.skipped,
        blank_actions=data.blank_actions,
        class_order=class_order,
        counts={
            "before": {name: len(before[name]) for name in class_order},
            "after": {name: len(after[name]) for name in class_order},
        },
        scores={
            "before": _stage_statistics(scores, classes, class_order),
            "after": _stage_statistics(picked_scores, picked_classes, class_order),
        },
    )
    write_text(report_path, json.dumps(report.to_dict(), indent=2) + "\n")
    return report

"""Reports of AURORA-BENCH runs: Markdown tables shaped like the paper's and matplotlib plots.

Inputs are ``results.json`` files written by :func:`wm_hub.evaluation.aurora.evaluate_aurora` (one per model or
baseline, or per number of candidates K). Every output is rebuilt from those files alone.

- :func:`score_table`: paper Table 2: one metric, subsets as rows (plus "AURORA-BENCH Avg."), runs as columns
  (``models_as_rows=True`` transposes it).
- :func:`metrics_table`: paper Table 6: every (subset, metric) as a row, runs as columns, "All / GPT-4o" last.
- :func:`judge_details_table`: paper Table 3: editing success and minimal editing per subset and run.
- :func:`plot_subset_bars`: one metric per subset, grouped bars by run.
- :func:`plot_candidates`: paper Figure 4: the metric against K in {1, 2, 4, 8} per model, one panel per subset
  and the average; runs without K (baselines, prediction folders) are horizontal lines.

The best value of each row is bold (lowest for L1, highest otherwise). :func:`write_report` writes all of them into
one folder (``wm-hub eval report``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wm_hub.atomic_io import write_text, write_with

METRIC_NAMES = {
    "judge": "GPT-4o",
    "l1": "L1",
    "clip_i": "CLIP-I",
    "clip_t": "CLIP-T",
    "dino": "DINO",
    "judge_es": "ES",
    "judge_me": "ME",
}
LOWER_IS_BETTER = {"l1"}
TABLE6_METRICS = ("l1", "clip_i", "clip_t", "dino", "judge")
SUBSET_NAMES = {
    "magicbrush": "MagicBrush",
    "ag": "AG",
    "something": "Something",
    "whatsup": "WhatsUp",
    "kubric": "Kubric",
}
AVERAGE_ROW = "AURORA-BENCH Avg."


@dataclass
class ReportConfig:
    """Where a report of several runs goes (:func:`write_report`).

    Args:
        out: Folder for ``report.md`` and the plots.
        models_as_rows: Also write ``models_as_rows.md``: runs as rows, subsets as columns.
    """

    out: str
    models_as_rows: bool = False


@dataclass
class RunResults:
    """One ``results.json``.

    Attributes:
        path: The file.
        label: The run's name (``config.label``).
        num_candidates: K of a model run with verification, else ``None``.
        subsets: Per-subset summaries.
        overall: Overall summary.
        config: The run's settings.
    """

    path: str
    label: str
    num_candidates: int | None
    subsets: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    config: dict[str, Any]

    @property
    def column(self) -> str:
        """Column name in tables: the label, with K when the run sampled several candidates."""
        return (
            self.label
            if not self.num_candidates or self.num_candidates == 1
            else f"{self.label} (K={self.num_candidates})"
        )

    def value(self, subset: str | None, metric: str) -> float | None:
        """The metric of a subset (``None``: the overall mean); ``None`` when absent."""
        summary = self.overall if subset is None else self.subsets.get(subset, {})
        value = summary.get(metric)
        return float(value) if isinstance(value, int | float) else None


def load_results(paths: Sequence[str | Path]) -> list[RunResults]:
    """Read ``results.json`` files.

    Raises:
        FileNotFoundError: A file does not exist.
        ValueError: A file is not JSON or lacks ``subsets``/``overall``/``config`` (the message names file and field).
    """
    runs = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such results file")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        for key in ("subsets", "overall", "config"):
            if not isinstance(data, dict) or not isinstance(data.get(key), dict):
                raise ValueError(f"{path}: field {key!r} missing or not an object (not a wm-hub eval aurora result)")
        config = data["config"]
        model = config.get("model") if config.get("kind") == "model" else None
        runs.append(
            RunResults(
                path=str(path),
                label=str(config.get("label") or path.stem),
                num_candidates=int(model["num_candidates"]) if isinstance(model, dict) else None,
                subsets=data["subsets"],
                overall=data["overall"],
                config=config,
            )
        )
    return runs


def subsets_of(runs: Sequence[RunResults]) -> list[str]:
    """Subsets of all runs, in first-seen order."""
    names: list[str] = []
    for run in runs:
        names.extend(name for name in run.subsets if name not in names)
    return names


def metrics_of(runs: Sequence[RunResults]) -> list[str]:
    """Table-6 metrics that some run has, in the paper's order."""
    return [metric for metric in TABLE6_METRICS if any(run.value(None, metric) is not None for run in runs)]


def _format(value: float | None, best: bool, digits: int) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return f"**{text}**" if best else text


def _cells(values: Sequence[float | None], metric: str, digits: int) -> list[str]:
    present = [value for value in values if value is not None]
    best = None
    if len(present) > 1:
        best = min(present) if metric in LOWER_IS_BETTER else max(present)
    return [_format(value, value is not None and value == best, digits) for value in values]


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def _digits(metric: str) -> int:
    return 2 if metric.startswith("judge") else 3


UNPARSABLE = "judge_unparsable"
UNPARSABLE_NAME = "GPT-4o replies not parsed (excluded)"


def _unparsable_counts(runs: Sequence[RunResults]) -> list[str] | None:
    """Each run's count of judge replies that were not parsed (left out of its means), or ``None`` when no run
    recorded one: every table of judge scores shows it beside them."""
    if all(run.value(None, UNPARSABLE) is None for run in runs):
        return None
    return [_format(run.value(None, UNPARSABLE), False, 0) for run in runs]


def score_table(runs: Sequence[RunResults], metric: str = "judge", models_as_rows: bool = False) -> str:
    """Paper Table 2: ``metric`` per subset (rows) and run (columns), the average of subset means last; for a judge
    metric, the replies not parsed as their own row (column with ``models_as_rows``)."""
    subsets = subsets_of(runs)
    keys: list[str | None] = [*subsets, None]
    names = [SUBSET_NAMES.get(name, name) for name in subsets] + [AVERAGE_ROW]
    digits = _digits(metric)
    unparsable = _unparsable_counts(runs) if metric.startswith("judge") else None
    if models_as_rows:
        rows = []
        columns = [[run.value(key, metric) for run in runs] for key in keys]
        cells_by_key = [_cells(column, metric, digits) for column in columns]
        for index, run in enumerate(runs):
            count = [unparsable[index]] if unparsable else []
            rows.append([run.column, *(cells[index] for cells in cells_by_key), *count])
        extra = [UNPARSABLE_NAME] if unparsable else []
        return _markdown([f"Model ({METRIC_NAMES.get(metric, metric)})", *names, *extra], rows)
    rows = [
        [name, *_cells([run.value(key, metric) for run in runs], metric, digits)] for key, name in zip(keys, names)
    ]
    if unparsable:
        rows.append([UNPARSABLE_NAME, *unparsable])
    return _markdown([f"Dataset ({METRIC_NAMES.get(metric, metric)})", *(run.column for run in runs)], rows)


def metrics_table(runs: Sequence[RunResults], metrics: Sequence[str] | None = None) -> str:
    """Paper Table 6: rows (subset, metric), runs as columns, and "All / GPT-4o" last when the judge ran."""
    metrics = list(metrics) if metrics is not None else metrics_of(runs)
    rows = []
    for subset in subsets_of(runs):
        for position, metric in enumerate(metrics):
            values = [run.value(subset, metric) for run in runs]
            name = SUBSET_NAMES.get(subset, subset) if position == 0 else ""
            rows.append([name, METRIC_NAMES.get(metric, metric), *_cells(values, metric, _digits(metric))])
    if "judge" in metrics:
        rows.append(["All", "GPT-4o", *_cells([run.value(None, "judge") for run in runs], "judge", 2)])
        unparsable = _unparsable_counts(runs)
        if unparsable:
            rows.append(["All", UNPARSABLE_NAME, *unparsable])
    return _markdown(["Dataset", "Metric", *(run.column for run in runs)], rows)


def judge_details_table(runs: Sequence[RunResults]) -> str:
    """Paper Table 3: editing success (ES) and minimal editing (ME) per subset, two columns per run."""
    header = ["Dataset"]
    for run in runs:
        header += [f"{run.column} ES", f"{run.column} ME"]
    rows = []
    for key, name in [*((s, SUBSET_NAMES.get(s, s)) for s in subsets_of(runs)), (None, "Avg.")]:
        row = [name]
        for run in runs:
            row += [_format(run.value(key, metric), False, 2) for metric in ("judge_es", "judge_me")]
        rows.append(row)
    rows.append(["GPT-4o", *(cell for run in runs for cell in (_format(run.value(None, "judge"), False, 2), ""))])
    unparsable = _unparsable_counts(runs)
    if unparsable:
        rows.append([UNPARSABLE_NAME, *(cell for count in unparsable for cell in (count, ""))])
    return _markdown(header, rows)


def _coverage(runs: Sequence[RunResults]) -> str:
    lines = []
    for run in runs:
        parts = [f"{SUBSET_NAMES.get(name, name)} {summary.get('n', 0)}" for name, summary in run.subsets.items()]
        skipped = run.overall.get("skipped") or []
        unparsable = run.overall.get("judge_unparsable")
        line = f"- {run.column} (`{run.path}`): rows " + ", ".join(parts)
        if skipped:
            line += f"; skipped (missing images): {', '.join(skipped)}"
        if unparsable:
            line += f"; judge replies not parsed (excluded): {unparsable}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def markdown_report(runs: Sequence[RunResults]) -> str:
    """A Markdown report: Table 2 (judge), Table 6 (every metric), Table 3 (ES/ME) when present, and coverage."""
    parts = ["# AURORA-BENCH results\n"]
    metrics = metrics_of(runs)
    if "judge" in metrics:
        parts += ["## GPT-4o-as-judge score (paper Table 2)\n", score_table(runs, "judge")]
    parts += ["## All metrics (paper Table 6)\n", metrics_table(runs, metrics)]
    if "judge" in metrics:
        parts += ["## Judge details: editing success and minimal editing (paper Table 3)\n", judge_details_table(runs)]
    parts += ["## Rows\n", _coverage(runs)]
    return "\n".join(parts)


def write_markdown_report(runs: Sequence[RunResults], path: str | Path) -> Path:
    """Write :func:`markdown_report` to ``path`` (atomically)."""
    text = markdown_report(runs)
    return write_text(path, text)


def _save_figure(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        return write_with(path, lambda tmp: figure.savefig(tmp, format=path.suffix[1:], dpi=120, bbox_inches="tight"))
    finally:
        plt.close(figure)


def plot_subset_bars(runs: Sequence[RunResults], metric: str, path: str | Path) -> Path:
    """Grouped bars: ``metric`` per subset (and the average), one bar per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys: list[str | None] = [*subsets_of(runs), None]
    names = [SUBSET_NAMES.get(key, key) if key else "Avg." for key in keys]
    width = 0.8 / max(len(runs), 1)
    figure, axis = plt.subplots(figsize=(1.6 * len(keys) + 2, 3.5))
    positions = np.arange(len(keys))
    for index, run in enumerate(runs):
        values = [run.value(key, metric) for key in keys]
        heights = [np.nan if value is None else value for value in values]
        axis.bar(positions + (index - (len(runs) - 1) / 2) * width, heights, width, label=run.column)
    axis.set_xticks(positions, names)
    axis.set_ylabel(METRIC_NAMES.get(metric, metric))
    axis.set_title(f"AURORA-BENCH {METRIC_NAMES.get(metric, metric)} per subset")
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: bars stay visible
    return _save_figure(figure, Path(path))


def candidate_series(runs: Sequence[RunResults]) -> tuple[dict[str, list[RunResults]], list[RunResults]]:
    """Model runs grouped by label and sorted by K (the lines of Figure 4), and the other runs (flat lines)."""
    series: dict[str, list[RunResults]] = {}
    flat = []
    for run in runs:
        if run.num_candidates is None:
            flat.append(run)
        else:
            series.setdefault(run.label, []).append(run)
    for label, group in series.items():
        group.sort(key=lambda run: run.num_candidates)
        counts = [run.num_candidates for run in group]
        if len(set(counts)) != len(counts):
            raise ValueError(f"runs of {label!r} repeat a number of candidates: {[run.path for run in group]}")
    return series, flat


def plot_candidates(runs: Sequence[RunResults], metric: str, path: str | Path) -> Path:
    """Paper Figure 4: ``metric`` against K per model, one panel per subset plus the average.

    Raises:
        ValueError: No model run (with a number of candidates) among ``runs``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series, flat = candidate_series(runs)
    if not series:
        raise ValueError("no forward-dynamics model run (with a number of candidates K) to plot against K")
    keys: list[str | None] = [*subsets_of(runs), None]
    figure, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 3), squeeze=False)
    counts = sorted({run.num_candidates for group in series.values() for run in group})
    for axis, key in zip(axes[0], keys):
        for label, group in series.items():
            points = [(run.num_candidates, run.value(key, metric)) for run in group]
            points = [(k, value) for k, value in points if value is not None]
            axis.plot([k for k, _ in points], [value for _, value in points], marker="o", label=label)
        for run in flat:
            value = run.value(key, metric)
            if value is not None:
                axis.axhline(value, linestyle="--", linewidth=1, color="grey")
                axis.annotate(run.column, (counts[0], value), fontsize="x-small", va="bottom")
        axis.set_xscale("log", base=2)
        axis.set_xticks(counts, [str(k) for k in counts])
        axis.set_xlabel("K")
        axis.set_title(SUBSET_NAMES.get(key, key) if key else "Avg.")
    axes[0][0].set_ylabel(METRIC_NAMES.get(metric, metric))
    axes[0][0].legend(fontsize="small")
    return _save_figure(figure, Path(path))


def write_report(results: Sequence[str | Path], config: ReportConfig) -> dict[str, Any]:
    """Write the report of the runs in ``results`` (``results.json`` files, columns in this order) into
    ``config.out``: ``report.md``, ``<metric>_subsets.png`` per metric and, when a model was run with several K,
    ``<metric>_vs_k.png``; ``models_as_rows.md`` with ``config.models_as_rows``.

    Returns:
        ``{"runs": column names, "metrics": the metrics reported, "written": the files}``.

    Raises:
        FileNotFoundError: A results file does not exist.
        ValueError: A file that is not a result, or no metric in any of them.
    """
    runs = load_results(results)
    metrics = metrics_of(runs)
    if not metrics:
        raise ValueError(f"no metric in {', '.join(map(str, results))}")
    out = Path(config.out)
    written = [str(write_markdown_report(runs, out / "report.md"))]
    if config.models_as_rows:
        text = "\n".join(score_table(runs, metric, models_as_rows=True) for metric in metrics)
        written.append(str(write_text(out / "models_as_rows.md", text)))
    series, _ = candidate_series(runs)
    for metric in metrics:
        written.append(str(plot_subset_bars(runs, metric, out / f"{metric}_subsets.png")))
        if any(len(group) > 1 for group in series.values()):
            written.append(str(plot_candidates(runs, metric, out / f"{metric}_vs_k.png")))
    return {"runs": [run.column for run in runs], "metrics": metrics, "written": written}

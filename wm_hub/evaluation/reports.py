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

The best value of each row is bold (lowest for L1, highest otherwise). Runs that share a column name (the same label
and K, e.g. three ``--seed`` runs) are averaged into one column by :func:`average_repeats` (paper Table 4 averages 3
runs): cells show ``mean ± std`` and Figure 4 gets error bars. :func:`plot_judge_distributions` draws the judge's
editing-success and minimal-editing scores (paper Figure 11) from the runs' ``<results>.rows.jsonl``.
:func:`write_report` writes all of them into one folder (``wm-hub eval report``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
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
        repeats: How many runs this one averages (:func:`average_repeats`).
        stds: Their standard deviation per subset (``None``: the overall) and metric, when ``repeats > 1``.
        paths: Every results file it averages.
    """

    path: str
    label: str
    num_candidates: int | None
    subsets: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    config: dict[str, Any]
    repeats: int = 1
    stds: dict[str | None, dict[str, float]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)

    def std(self, subset: str | None, metric: str) -> float | None:
        """The standard deviation over the averaged runs (``None`` for a single run)."""
        return self.stds.get(subset, {}).get(metric)

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
    runs, seen = [], {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such results file")
        if path.resolve() in seen:
            raise ValueError(f"{path} is given twice (also as {seen[path.resolve()]}): it would count as two runs")
        seen[path.resolve()] = path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
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


AVERAGED_KEYS = ("n",)  # counts kept as the first run's, not averaged
SUMMED_COUNTS = ("judge_parsed", "judge_unparsable", "judge_cached")  # replies over all the averaged runs


def average_repeats(runs: Sequence[RunResults]) -> list[RunResults]:
    """Runs that share a column name averaged into one, in first-seen order: every numeric value is the mean over
    the runs that have it, with its sample standard deviation in :attr:`RunResults.stds`; counts of judge replies are
    summed.

    Raises:
        ValueError: Runs that share a column name but differ in more than their seed and output paths (another
            model saved under the same folder name, another geometry or judge...): their mean would mean nothing.
    """

    groups: dict[str, list[RunResults]] = {}
    for run in runs:
        groups.setdefault(run.column, []).append(run)
    averaged = []
    for column, group in groups.items():
        first = group[0]
        if len(group) == 1:
            averaged.append(first)
            continue
        differing = sorted(
            {key for run in group[1:] for key in _settings(first.config) | _settings(run.config)
             if _settings(first.config).get(key) != _settings(run.config).get(key)}
        )  # fmt: skip
        if differing:
            raise ValueError(
                f"{', '.join(run.path for run in group)}: runs named {column!r} differ in {differing}, not only in "
                "their seed: give them different --name labels"
            )
        stds: dict[str | None, dict[str, float]] = {}
        subsets = {
            name: _combine([run.subsets[name] for run in group if name in run.subsets], stds.setdefault(name, {}))
            for name in subsets_of(group)
        }
        overall = _combine([run.overall for run in group], stds.setdefault(None, {}))
        paths = [run.path for run in group]
        averaged.append(
            RunResults(
                ", ".join(paths),
                first.label,
                first.num_candidates,
                subsets,
                overall,
                first.config,
                repeats=len(group),
                stds=stds,
                paths=paths,
            )  # fmt: skip
        )
    return averaged


REPEAT_FREE_KEYS = ("seed", "out", "report", "predictions_dir", "judge_cache_dir", "skipped_files")


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """A run's settings without what may differ between repeats of it (seeds, output paths)."""
    settings = {key: value for key, value in config.items() if key not in REPEAT_FREE_KEYS}
    for name, free in (("model", "seed"), ("ip2p", "seed"), ("judge", "cache_dir")):
        if isinstance(settings.get(name), dict):
            settings[name] = {key: value for key, value in settings[name].items() if key != free}
    return settings


def _combine(summaries: list[dict[str, Any]], stds: dict[str, float]) -> dict[str, Any]:
    """One summary of several runs' summaries: numeric means (standard deviations into ``stds``), unparsable judge
    replies summed, everything else the first run's."""
    import numpy as np

    merged = dict(summaries[0])
    for metric in {name for summary in summaries for name in summary}:
        values = [summary[metric] for summary in summaries if isinstance(summary.get(metric), int | float)]
        if not values or metric in AVERAGED_KEYS or isinstance(values[0], bool):
            continue
        if metric in SUMMED_COUNTS:
            merged[metric] = int(sum(values))
            continue
        merged[metric] = float(np.mean(values))
        if len(values) > 1:
            stds[metric] = float(np.std(values, ddof=1))
    return merged


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


def _value_with_std(run: RunResults, key: str | None, metric: str, digits: int) -> str:
    spread = run.std(key, metric)
    text = _format(run.value(key, metric), False, digits)
    return text if spread is None else f"{text} ± {spread:.{digits}f}"


def _run_cells(runs: Sequence[RunResults], key: str | None, metric: str, digits: int) -> list[str]:
    """``metric`` of ``key`` for each run, the best bold, ``± std`` after an averaged run's mean."""
    cells = _cells([run.value(key, metric) for run in runs], metric, digits)
    for index, run in enumerate(runs):
        spread = run.std(key, metric)
        if spread is not None:
            cells[index] += f" ± {spread:.{digits}f}"
    return cells


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
        cells_by_key = [_run_cells(runs, key, metric, digits) for key in keys]
        for index, run in enumerate(runs):
            count = [unparsable[index]] if unparsable else []
            rows.append([run.column, *(cells[index] for cells in cells_by_key), *count])
        extra = [UNPARSABLE_NAME] if unparsable else []
        return _markdown([f"Model ({METRIC_NAMES.get(metric, metric)})", *names, *extra], rows)
    rows = [[name, *_run_cells(runs, key, metric, digits)] for key, name in zip(keys, names)]
    if unparsable:
        rows.append([UNPARSABLE_NAME, *unparsable])
    return _markdown([f"Dataset ({METRIC_NAMES.get(metric, metric)})", *(run.column for run in runs)], rows)


def metrics_table(runs: Sequence[RunResults], metrics: Sequence[str] | None = None) -> str:
    """Paper Table 6: rows (subset, metric), runs as columns, and "All / GPT-4o" last when the judge ran."""
    metrics = list(metrics) if metrics is not None else metrics_of(runs)
    rows = []
    for subset in subsets_of(runs):
        for position, metric in enumerate(metrics):
            name = SUBSET_NAMES.get(subset, subset) if position == 0 else ""
            rows.append([name, METRIC_NAMES.get(metric, metric), *_run_cells(runs, subset, metric, _digits(metric))])
    if "judge" in metrics:
        rows.append(["All", "GPT-4o", *_run_cells(runs, None, "judge", 2)])
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
            row += [_value_with_std(run, key, metric, 2) for metric in ("judge_es", "judge_me")]
        rows.append(row)
    rows.append(["GPT-4o", *(cell for run in runs for cell in (_value_with_std(run, None, "judge", 2), ""))])
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
        source = (
            f"mean ± std of {run.repeats} runs: " + ", ".join(f"`{p}`" for p in run.paths)
            if run.repeats > 1
            else f"`{run.path}`"
        )
        line = f"- {run.column} ({source}): rows " + ", ".join(parts)
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
            points = [(run.num_candidates, run.value(key, metric), run.std(key, metric)) for run in group]
            points = [(k, value, spread) for k, value, spread in points if value is not None]
            errors = [spread or 0.0 for _, _, spread in points] if any(p[2] is not None for p in points) else None
            axis.errorbar(
                [p[0] for p in points], [p[1] for p in points], yerr=errors, marker="o", capsize=3, label=label
            )
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


def rows_file(results_path: str | Path) -> Path:
    """The per-row JSONL ``wm-hub eval aurora`` writes beside ``results_path`` (``R.json`` -> ``R.rows.jsonl``)."""
    path = Path(results_path)
    return path.with_name(f"{path.stem}.rows.jsonl")


def judge_scores(run: RunResults) -> dict[str, list[float]]:
    """The judge's parsed ``editing_success`` and ``minimal_editing`` scores of every row of ``run`` (all its
    averaged files), read from the rows files; empty lists when none has judge scores."""
    scores: dict[str, list[float]] = {"editing_success": [], "minimal_editing": []}
    for path in run.paths or [run.path]:
        rows = rows_file(path)
        if not rows.is_file():
            continue
        for line in rows.read_text().splitlines():
            judged = json.loads(line).get("judge") if line.strip() else None
            if isinstance(judged, dict) and judged.get("parsed"):
                for name in scores:
                    scores[name].append(float(judged[name]))
    return scores


def plot_judge_distributions(runs: Sequence[RunResults], path: str | Path) -> Path:
    """Paper Figure 11: how often each editing-success and minimal-editing score (0-10) was given, per run.

    Raises:
        ValueError: No run has a rows file with parsed judge replies.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scored = [(run, judge_scores(run)) for run in runs]
    scored = [(run, scores) for run, scores in scored if scores["editing_success"]]
    if not scored:
        raise ValueError("no rows file with parsed judge replies beside the results (<results>.rows.jsonl)")
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    bins = np.arange(12) - 0.5
    width = 0.8 / len(scored)
    for axis, (name, title) in zip(
        axes, (("editing_success", "Editing success"), ("minimal_editing", "Minimal editing"))
    ):
        for index, (run, scores) in enumerate(scored):
            counts, _ = np.histogram(scores[name], bins=bins)
            share = counts / counts.sum()
            axis.bar(np.arange(11) + (index - (len(scored) - 1) / 2) * width, share, width, label=run.column)
        axis.set_xticks(range(11))
        axis.set_xlabel("score")
        axis.set_title(title)
    axes[0].set_ylabel("share of rows")
    axes[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save_figure(figure, Path(path))


def write_report(results: Sequence[str | Path], config: ReportConfig) -> dict[str, Any]:
    """Write the report of the runs in ``results`` (``results.json`` files, columns in this order) into
    ``config.out``: ``report.md``, ``<metric>_subsets.png`` per metric and, when a model was run with several K,
    ``<metric>_vs_k.png``; ``judge_scores.png`` (Figure 11) when the rows files hold judge replies;
    ``models_as_rows.md`` with ``config.models_as_rows``. Files that share a column are averaged
    (:func:`average_repeats`).

    Returns:
        ``{"runs": column names, "metrics": the metrics reported, "written": the files}``.

    Raises:
        FileNotFoundError: A results file does not exist.
        ValueError: A file that is not a result, or no metric in any of them.
    """
    runs = average_repeats(load_results(results))
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
    if "judge" in metrics and any(judge_scores(run)["editing_success"] for run in runs):
        written.append(str(plot_judge_distributions(runs, out / "judge_scores.png")))
    return {"runs": [run.column for run in runs], "metrics": metrics, "written": written}

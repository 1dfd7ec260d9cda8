"""Scoring a best/worst study (paper Table 5): per-model means, Wilcoxon tests, inter-annotator agreement.

Every answer (one annotator, one row) gives each model +1 if chosen as best, -1 if chosen as worst, 0 otherwise.

- **Scores**: the mean of these points per model over the answers of each subset, and over all answers
  (``overall``: the paper's "All", the mean over the annotated samples).
- **Significance**: for each model against the reference, a Wilcoxon signed-rank test
  (:func:`scipy.stats.wilcoxon`, two-sided, ``zero_method`` default ``"wilcox"``: zero differences are dropped)
  on the paired points of the two models over the same answers, per subset and overall. A marker (``†``) flags
  ``p < alpha`` (0.05), as in Table 5.
- **Agreement**, on rows answered by two annotators or more: the pairwise agreement on the best and on the worst
  model (fraction of annotator pairs on the same row who chose the same model; chance is ``1 / models`` for
  uniform choices) and Fleiss' kappa (:func:`statsmodels.stats.inter_rater.fleiss_kappa`, categories = the models)
  on the rows that have the most common number of annotators (Fleiss' kappa needs the same count on every row).
"""

from __future__ import annotations

import json
import math
import sqlite3
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from wm_hub.atomic_io import write_text
from wm_hub.human_eval.storage import Answer, AnswerStore
from wm_hub.human_eval.study import ANSWERS_FILE, StudyKey, load_key, load_study

MARKER = "†"


@dataclass
class ScoreConfig:
    """How ``wm-hub human-eval score`` scores a study.

    Args:
        study: The study folder (its ``key.json`` de-anonymises the answers).
        answers: The answers: an SQLite database written by the app (default ``<study>/answers.sqlite``) or a
            JSON Lines file with one ``{"annotator", "row", "best", "worst"}`` object per line.
        reference: The model the others are tested against (default: the first model given at build time).
        alpha: Significance level of the marker.
        zero_method: ``scipy.stats.wilcoxon``'s treatment of zero differences.
        out: Folder for ``scores.json`` and ``scores.md`` (default: the study folder).
    """

    study: str | Path | None = None
    answers: str | Path | None = None
    reference: str | None = None
    alpha: float = 0.05
    zero_method: Literal["wilcox", "pratt", "zsplit"] = "wilcox"
    out: str | Path | None = None

    def __post_init__(self) -> None:
        if not self.study:
            raise ValueError("ScoreConfig: study is required (the study folder)")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.out is not None and Path(self.out).exists() and not Path(self.out).is_dir():
            raise ValueError(f"--out {self.out} is a file; scores.json and scores.md need a folder")


def read_answers(path: str | Path, study_fingerprint: str | None = None) -> list[Answer]:
    """Answers from an app database (``.sqlite``/``.db``) or a JSON Lines file.

    Args:
        path: The answers file.
        study_fingerprint: If given, a database served for another study is refused.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A JSON Lines line that is not an answer (the line and field are named), a database of
            another study, or a file that is not an SQLite database.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such answers file")
    if path.suffix in (".sqlite", ".db", ".sqlite3"):
        try:
            store = AnswerStore(path)
            stored = store.study_fingerprint()
            answers = store.answers()
        except sqlite3.DatabaseError as error:
            raise ValueError(f"{path}: not an answers database of wm-hub human-eval serve ({error})") from None
        if study_fingerprint is not None and stored is not None and stored != study_fingerprint:
            raise ValueError(f"{path}: these answers were collected for another study (study.json differs)")
        return answers
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a JSON Lines answers file (not UTF-8 text: {error.reason})") from None
    answers = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON ({error})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected an object with annotator, row, best, worst")
        for field, kind in (("annotator", str), ("row", str), ("best", int), ("worst", int)):
            if not isinstance(record.get(field), kind) or isinstance(record.get(field), bool):
                raise ValueError(
                    f"{path}:{number}: field {field!r} must be a {kind.__name__}, got {record.get(field)!r}"
                )
        answers.append(Answer(record["annotator"], record["row"], record["best"], record["worst"]))
    return answers


def _check(answers: Sequence[Answer], key: StudyKey) -> None:
    errors, seen = [], set()
    for answer in answers:
        order = key.orders.get(answer.row)
        if order is None:
            errors.append(f"annotator {answer.annotator}, row {answer.row}: no such row in the study key")
            continue
        for field in ("best", "worst"):
            if not 1 <= getattr(answer, field) <= len(order):
                errors.append(
                    f"annotator {answer.annotator}, row {answer.row}: {field} {getattr(answer, field)} is not a "
                    f"displayed position (1..{len(order)})"
                )
        if answer.best == answer.worst:
            errors.append(f"annotator {answer.annotator}, row {answer.row}: best and worst are both {answer.best}")
        if (answer.annotator, answer.row) in seen:
            errors.append(f"annotator {answer.annotator}, row {answer.row}: answered twice")
        seen.add((answer.annotator, answer.row))
    if errors:
        raise ValueError(f"{len(errors)} bad answer(s):\n  " + "\n  ".join(errors))


def answer_points(answer: Answer, key: StudyKey) -> dict[str, int]:
    """Model -> +1 (best), -1 (worst) or 0 for one answer."""
    order = key.orders[answer.row]
    points = dict.fromkeys(key.models, 0)
    points[order[answer.best - 1]] = 1
    points[order[answer.worst - 1]] = -1
    return points


def _wilcoxon(x: Sequence[int], y: Sequence[int], zero_method: str) -> dict[str, Any]:
    from scipy.stats import wilcoxon

    nonzero = sum(a != b for a, b in zip(x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-zero differences: scipy warns and answers p = 1
        result = wilcoxon(x, y, zero_method=zero_method)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    return {
        "statistic": None if math.isnan(statistic) else statistic,
        "p_value": None if math.isnan(p_value) else p_value,
        "n": len(x),
        "n_nonzero": nonzero,
    }


def _group(points: Sequence[dict[str, int]], models: Sequence[str], reference: str, config: ScoreConfig) -> dict:
    result: dict[str, Any] = {
        "n": len(points),
        "scores": {name: (sum(p[name] for p in points) / len(points) if points else None) for name in models},
        "wilcoxon": {},
    }
    if points:
        for name in models:
            if name != reference:
                test = _wilcoxon([p[name] for p in points], [p[reference] for p in points], config.zero_method)
                test["significant"] = test["p_value"] is not None and test["p_value"] < config.alpha
                result["wilcoxon"][name] = test
    return result


def agreement(answers: Sequence[Answer], key: StudyKey) -> dict[str, Any]:
    """Inter-annotator agreement on the best and on the worst model (see the module docstring).

    Returns:
        ``rows`` (rows with 2+ annotators), ``pairs`` (annotator pairs on the same row), ``chance`` (``1 /
        models``), and for ``best`` and ``worst``: ``pairwise`` and ``fleiss_kappa`` (with ``kappa_rows`` and
        ``kappa_annotators`` it was computed on); values are ``None`` where there is nothing to compare.
    """
    from statsmodels.stats.inter_rater import fleiss_kappa

    by_row: dict[str, list[Answer]] = {}
    for answer in answers:
        by_row.setdefault(answer.row, []).append(answer)
    shared = {row: group for row, group in by_row.items() if len(group) >= 2}
    counts = Counter(len(group) for group in shared.values())
    # the most common annotator count (the larger on a tie): Fleiss' kappa needs the same count on every row
    kappa_count = max(counts, key=lambda count: (counts[count], count)) if counts else None
    result: dict[str, Any] = {
        "rows": len(shared),
        "pairs": sum(len(group) * (len(group) - 1) // 2 for group in shared.values()),
        "chance": 1 / len(key.models),
    }
    for field in ("best", "worst"):
        agree = total = 0
        table = []
        for row, group in shared.items():
            chosen = [key.orders[row][getattr(answer, field) - 1] for answer in group]
            for a, b in combinations(chosen, 2):
                agree, total = agree + (a == b), total + 1
            if len(group) == kappa_count:
                table.append([chosen.count(name) for name in key.models])
        kappa = None
        if table:
            value = float(fleiss_kappa(table, method="fleiss"))
            kappa = None if math.isnan(value) else value
        result[field] = {
            "pairwise": agree / total if total else None,
            "fleiss_kappa": kappa,
            "kappa_rows": len(table),
            "kappa_annotators": kappa_count,
        }
    return result


def score_answers(answers: Sequence[Answer], key: StudyKey, config: ScoreConfig) -> dict[str, Any]:
    """Table 5 from answers and the study key (see the module docstring).

    Raises:
        ValueError: Unknown reference, or bad answers (unknown rows, positions out of range, best equal to worst,
            a row answered twice by one annotator; all named).
    """
    reference = config.reference or key.models[0]
    if reference not in key.models:
        raise ValueError(f"reference {reference!r} is not a model of this study: {key.models}")
    _check(answers, key)
    points = [answer_points(answer, key) for answer in answers]
    subsets = {
        subset: _group(
            [p for p, answer in zip(points, answers) if key.row_subsets[answer.row] == subset],
            key.models,
            reference,
            config,
        )
        for subset in key.subsets
    }
    for subset, group in subsets.items():
        group["rows"] = len({answer.row for answer in answers if key.row_subsets[answer.row] == subset})
    overall = _group(points, key.models, reference, config)
    overall["rows"] = len({answer.row for answer in answers})
    return {
        "models": list(key.models),
        "reference": reference,
        "alpha": config.alpha,
        "test": f"scipy.stats.wilcoxon, two-sided, zero_method={config.zero_method!r}, paired per answer",
        "subsets": subsets,
        "overall": overall,
        "annotators": dict(sorted(Counter(answer.annotator for answer in answers).items())),
        "agreement": agreement(answers, key),
    }


def _format(value: float | None, bold: bool = False, marker: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:.2f}" + (f" {MARKER}" if marker else "")
    return f"**{text}**" if bold else text


def markdown_report(scores: dict[str, Any]) -> str:
    """The scores as Markdown: Table 5 (subsets as rows, models as columns), p-values, counts and agreement."""
    models, reference = scores["models"], scores["reference"]
    groups = [*scores["subsets"].items(), ("All", scores["overall"])]
    header = "| | " + " | ".join(models) + " |\n|---|" + "---|" * len(models) + "\n"
    table = ""
    for name, group in groups:
        values = [v for v in group["scores"].values() if v is not None]
        best = max(values) if values else None
        cells = [
            _format(
                group["scores"][model],
                bold=group["scores"][model] is not None and group["scores"][model] == best,
                marker=group["wilcoxon"].get(model, {}).get("significant", False),
            )
            for model in models
        ]
        table += f"| {name} | " + " | ".join(cells) + " |\n"
    others = [model for model in models if model != reference]
    p_table = "| | n | " + " | ".join(others) + " |\n|---|---|" + "---|" * len(others) + "\n"
    for name, group in groups:
        cells = []
        for model in others:
            p_value = group["wilcoxon"].get(model, {}).get("p_value")
            cells.append("-" if p_value is None else f"{p_value:.4f}")
        p_table += f"| {name} | {group['n']} | " + " | ".join(cells) + " |\n"
    agreement_data = scores["agreement"]
    lines = [
        "# Human evaluation",
        "",
        "Mean points per answer (+1 best, -1 worst, 0 otherwise); best per row in bold. "
        f"{MARKER}: the gap to **{reference}** is significant (Wilcoxon signed-rank test, p < {scores['alpha']}).",
        "",
        header + table,
        f"## Wilcoxon p-values against {reference}",
        "",
        f"{scores['test']}; n = answers.",
        "",
        p_table,
        "## Annotators",
        "",
        ", ".join(f"{name}: {count}" for name, count in scores["annotators"].items()) or "no answers",
        "",
        "## Inter-annotator agreement",
        "",
        f"{agreement_data['rows']} row(s) with 2+ annotators, {agreement_data['pairs']} annotator pair(s); "
        f"chance pairwise agreement {agreement_data['chance']:.2f} (uniform choice).",
        "",
        "| | pairwise agreement | Fleiss' kappa | kappa on |\n|---|---|---|---|",
    ]
    for field in ("best", "worst"):
        data = agreement_data[field]
        on = f"{data['kappa_rows']} rows x {data['kappa_annotators']} annotators" if data["kappa_rows"] else "-"
        lines.append(f"| {field} | {_format(data['pairwise'])} | {_format(data['fleiss_kappa'])} | {on} |")
    return "\n".join(lines) + "\n"


def score_study(config: ScoreConfig) -> tuple[dict[str, Any], Path, Path]:
    """Score a study's answers and write ``scores.json`` and ``scores.md``.

    Returns:
        The scores (see :func:`score_answers`) and the two files written.

    Raises:
        FileNotFoundError: No key or no answers file.
        ValueError: Bad answers or reference, no answer at all (a table of dashes is not a result), or answers in
            the file the scores would replace.
    """
    study = Path(config.study)
    key = load_key(study)
    answers_path = config.answers or study / ANSWERS_FILE
    answers = read_answers(answers_path, load_study(study).fingerprint)
    if not answers:
        raise ValueError(f"{answers_path}: no answers yet; collect some with `wm-hub human-eval serve {study}`")
    out = Path(config.out or study)
    json_path, md_path = out / "scores.json", out / "scores.md"
    for written in (json_path, md_path):
        if written.resolve() == Path(answers_path).resolve():
            raise ValueError(
                f"--answers {answers_path} is the {written.name} this writes: move the answers or give --out"
            )
    scores = score_answers(answers, key, config)
    write_text(json_path, json.dumps(scores, indent=2, ensure_ascii=False) + "\n")
    write_text(md_path, markdown_report(scores))
    return scores, json_path, md_path

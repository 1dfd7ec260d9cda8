"""``wm-hub human-eval build|serve|score``: the paper's blind best/worst human study (Section 4.3.1, Table 5)."""

from __future__ import annotations

import argparse
import sys

from wm_hub.cli._tasks import Task

ABOUT = (
    "The paper's human evaluation: annotators pick the best and the worst of N anonymous model outputs per row. "
    "See docs/human_eval.md."
)


def _study_folder(parser: argparse.ArgumentParser) -> None:
    """STUDY, the first word after the task: the configs' ``study`` field (``--study`` and YAML set it too)."""
    parser.add_argument(
        "study", nargs="?", default=argparse.SUPPRESS, metavar="STUDY", help="the study folder (as --study)"
    )


def _build(config) -> int:
    from wm_hub.human_eval.study import build_study, load_key

    try:
        out = build_study(config)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise SystemExit(f"error: {error}") from None
    skipped = load_key(out).skipped
    if skipped:
        ids = sorted({bad["id"] for bad in skipped})
        print(
            f"Left out {len(ids)} AURORA-BENCH row(s) with missing or unreadable images (listed in key.json): "
            + ", ".join(ids)
        )
    print(f"Study written to {out} (keep {out / 'key.json'} from annotators); serve: wm-hub human-eval serve {out}")
    return 0


def _serve(config) -> int:
    from wm_hub.human_eval.app import serve

    try:
        serve(config)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    return 0


def _score(config) -> int:
    from wm_hub.human_eval.scoring import markdown_report, score_study

    try:
        scores, json_path, md_path = score_study(config)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    sys.stdout.write(markdown_report(scores))
    print(f"\nWrote {json_path} and {md_path}")
    return 0


def _study_config() -> tuple[type, ...]:
    from wm_hub.human_eval.study import StudyConfig

    return (StudyConfig,)


def _serve_config() -> tuple[type, ...]:
    from wm_hub.human_eval.app import ServeConfig

    return (ServeConfig,)


def _score_config() -> tuple[type, ...]:
    from wm_hub.human_eval.scoring import ScoreConfig

    return (ScoreConfig,)


TASKS = (
    Task(
        words=("human-eval", "build"),
        help="sample rows, anonymise and shuffle the models, copy the images",
        configs=_study_config,
        run=_build,
        description=f"{ABOUT}\n\n"
        "Samples --per-subset rows of each AURORA-BENCH subset, shuffles the rows and, independently for every row, "
        "the order of the models, and writes the study folder: study.json (what annotators see, outputs as "
        '"Model 1..N"), key.json (which model is behind each output: keep it from annotators) and the images '
        "(outputs re-encoded as PNG). Everything is drawn from --seed: the same command writes the same study.",
        epilog="example:\n"
        "  wm-hub human-eval build --predictions A=preds/a B=preds/b --data-dir AURORA --out study --per-subset 5",
    ),
    Task(
        words=("human-eval", "serve"),
        help="the annotation web app (Flask)",
        configs=_serve_config,
        run=_serve,
        description=f"{ABOUT}\n\n"
        "Serves STUDY to annotators: each picks a name, which is their link (/a/<name>) and resumes where they "
        "stopped. Answers go to STUDY/answers.sqlite (or --db); key.json is never served.",
        epilog="example:\n  wm-hub human-eval serve study --host 0.0.0.0 --port 7860",
        arguments=_study_folder,
    ),
    Task(
        words=("human-eval", "score"),
        help="Table 5: mean points, Wilcoxon tests, agreement (JSON + Markdown)",
        configs=_score_config,
        run=_score,
        description=f"{ABOUT}\n\n"
        "Scores the answers of STUDY as the paper's Table 5: each answer gives +1 to the best model and -1 to the "
        "worst; mean points per model and subset, Wilcoxon signed-rank tests against --reference, and the "
        "inter-annotator agreement. Writes scores.json and scores.md (in the study folder, or --out).",
        epilog="example:\n  wm-hub human-eval score study --reference A",
        arguments=_study_folder,
    ),
)

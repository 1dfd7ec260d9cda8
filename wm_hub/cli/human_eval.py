"""``wm-hub human-eval build|serve|score``: the paper's blind best/worst human study (Section 4.3.1, Table 5)."""

from __future__ import annotations

import argparse
import sys


def _predictions(values: list[str]) -> dict[str, str]:
    predictions: dict[str, str] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name.strip() or not folder:
            raise SystemExit(f"error: --predictions takes NAME=DIR, got {value!r}")
        if name in predictions:
            raise SystemExit(f"error: model name {name!r} given twice in --predictions")
        predictions[name.strip()] = folder
    return predictions


def _build(args: argparse.Namespace) -> int:
    from wm_hub.data.build_report import MissingFilesError
    from wm_hub.human_eval.study import StudyConfig, build_study

    try:
        config = StudyConfig(
            predictions=_predictions(args.predictions),
            data_dir=args.data_dir,
            out=args.out,
            per_subset=args.per_subset,
            seed=args.seed,
            subsets=[part.strip() for part in args.subsets.split(",") if part.strip()] if args.subsets else None,
            skip_missing=args.skip_missing,
        )
        out = build_study(config)
    except (ValueError, FileNotFoundError, FileExistsError, MissingFilesError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"Study written to {out} (keep {out / 'key.json'} from annotators); serve: wm-hub human-eval serve {out}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from wm_hub.human_eval.app import create_app

    if not 1 <= args.port <= 65535:
        raise SystemExit(f"error: --port must be in 1..65535, got {args.port}")
    try:
        app = create_app(args.study, db_path=args.db)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(
        f"Serving {args.study} on http://{args.host}:{args.port}/ (answers in {app.config['STORE'].path})", flush=True
    )
    app.run(host=args.host, port=args.port, threaded=True, debug=False, use_reloader=False)
    return 0


def _score(args: argparse.Namespace) -> int:
    from wm_hub.human_eval.scoring import ScoreConfig, markdown_report, score_study

    try:
        scores, json_path, md_path = score_study(
            ScoreConfig(
                study=args.study, answers=args.answers, reference=args.reference, alpha=args.alpha, out=args.out
            )
        )
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    sys.stdout.write(markdown_report(scores))
    print(f"\nWrote {json_path} and {md_path}")
    return 0


def register(subparsers) -> None:
    """Add ``human-eval`` with its ``build``, ``serve`` and ``score`` tasks."""
    parser = subparsers.add_parser(
        "human-eval",
        help="blind best/worst human evaluation: build a study, serve it, score it (paper Table 5)",
        description="The paper's human evaluation: annotators pick the best and the worst of N anonymous model "
        "outputs per row. See docs/human_eval.md.",
    )
    tasks = parser.add_subparsers(title="steps", metavar="<step>", required=True)

    build = tasks.add_parser("build", help="sample rows, anonymise and shuffle the models, copy the images")
    build.add_argument(
        "--predictions", nargs="+", required=True, metavar="NAME=DIR", help="model name and its prediction folder"
    )
    build.add_argument("--data-dir", required=True, help="AURORA checkout (test.json and data/)")
    build.add_argument("--out", required=True, help="study folder to write (new or empty)")
    build.add_argument("--per-subset", type=int, default=5, help="rows sampled per subset (default 5, the paper's)")
    build.add_argument("--seed", type=int, default=0, help="seed of the sampling and of every shuffle")
    build.add_argument("--subsets", help="comma-separated AURORA-BENCH subsets (default: the paper's five)")
    build.add_argument("--skip-missing", action="store_true", help="leave out rows whose AURORA images are missing")
    build.set_defaults(func=_build)

    serve = tasks.add_parser("serve", help="the annotation web app (Flask)")
    serve.add_argument("study", help="study folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860, a Space's)")
    serve.add_argument("--db", help="answers database (default STUDY/answers.sqlite)")
    serve.set_defaults(func=_serve)

    score = tasks.add_parser("score", help="Table 5: mean points, Wilcoxon tests, agreement (JSON + Markdown)")
    score.add_argument("study", help="study folder (with key.json)")
    score.add_argument("--reference", help="model the others are tested against (default: the first at build)")
    score.add_argument("--answers", help="answers database or JSON Lines file (default STUDY/answers.sqlite)")
    score.add_argument("--alpha", type=float, default=0.05, help="significance level of the marker (default 0.05)")
    score.add_argument("--out", help="folder for scores.json and scores.md (default: the study folder)")
    score.set_defaults(func=_score)

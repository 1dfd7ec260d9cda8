"""``wm-hub eval aurora``: AURORA-BENCH predictions and metrics (paper Tables 2, 3 and 6)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PAPER_SUBSETS = "magicbrush,ag,something,whatsup,kubric"


def _names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def _aurora(args: argparse.Namespace) -> int:
    from wm_hub.evaluation.aurora import AuroraEvalConfig, JudgeOptions, ModelOptions, evaluate_aurora
    from wm_hub.evaluation.baselines import InstructPix2PixConfig
    from wm_hub.evaluation.judge import JudgeRequestError
    from wm_hub.evaluation.reports import load_results, write_markdown_report
    from wm_hub.inference.pipelines import WorldModelLoadError

    try:
        config = AuroraEvalConfig(
            data_dir=args.data_dir,
            predictions=args.predictions,
            out=args.out,
            subsets=args.subsets,
            metrics=args.metrics,
            skip_missing=args.skip_missing,
            name=args.name,
            limit=args.limit,
            batch_size=args.batch_size,
            device=args.device,
            predictions_dir=args.predictions_dir,
            clip_model=args.clip_model,
            dino_model=args.dino_model,
            clip_t_text=args.clip_t_text,
            judge=JudgeOptions(
                model=args.judge_model,
                base_url=args.judge_base_url,
                cache_dir=args.judge_cache_dir,
                max_concurrency=args.judge_concurrency,
            ),
            ip2p=InstructPix2PixConfig(
                model=args.ip2p_model,
                num_inference_steps=args.ip2p_steps,
                guidance_scale=args.ip2p_guidance_scale,
                image_guidance_scale=args.ip2p_image_guidance_scale,
                resolution=args.ip2p_resolution,
                seed=args.seed,
            ),
            model=ModelOptions(
                idm=args.idm,
                num_candidates=args.num_candidates,
                temperature=args.temperature,
                top_k=args.top_k,
                top_p=args.top_p,
                seed=args.seed,
                dtype=args.dtype,
            ),
        )
        if not Path(args.data_dir).is_dir():
            raise FileNotFoundError(f"--data-dir {args.data_dir}: no such folder (the AURORA checkout root)")
        results = evaluate_aurora(config)
        if args.report:
            write_markdown_report(load_results([args.out]), args.report)
    except (FileNotFoundError, ValueError, JudgeRequestError, WorldModelLoadError) as error:
        raise SystemExit(f"error: {error}") from None
    except RuntimeError as error:
        if "API key" not in str(error):  # the judge's missing-key error; anything else is a bug to show in full
            raise
        raise SystemExit(f"error: {error}") from None
    summary = {
        "results": args.out,
        "rows": str(config.rows_path),
        "report": args.report,
        "subsets": {
            name: {key: value for key, value in subset.items() if not key.startswith("judge_usage")}
            for name, subset in results["subsets"].items()
        },
        "overall": results["overall"],
    }
    print(json.dumps(summary, indent=2))
    return 0


def register(tasks) -> None:
    """Add ``wm-hub eval aurora``."""
    parser = tasks.add_parser(
        "aurora",
        help="AURORA-BENCH: predictions (copy, InstructPix2Pix, a folder, an FDM) and L1/CLIP/DINO/judge metrics",
        description="Evaluate next-observation predictions on AURORA-BENCH (paper Tables 2, 3 and 6). Rows are read "
        "by the `aurora` dataset builder (bench config): missing images stop the run naming every bad row, or are "
        "skipped and named in the results with --skip-missing. Writes OUT (results.json: per-subset means, the "
        "overall mean of subset means, the config) and OUT's stem + .rows.jsonl (every per-row value, the judge's "
        "raw replies). Generated predictions go to <OUT dir>/predictions/<row id>.png, each written when done, and "
        "a rerun reuses them (resume). The judge's API key is read from OPENAI_API_KEY and never written.",
        epilog="examples:\n"
        "  wm-hub eval aurora --data-dir AURORA --predictions copy --metrics l1,clip_i,clip_t,dino --out copy.json\n"
        "  wm-hub eval aurora --data-dir AURORA --predictions ip2p --metrics l1,judge --out ip2p/results.json\n"
        "  wm-hub eval aurora --data-dir AURORA --predictions my-preds/ --metrics judge --out mine.json "
        "--report mine.md\n"
        "  wm-hub eval aurora --data-dir AURORA --predictions org/c-ft --idm org/c-idm --num-candidates 4 "
        "--metrics judge --out cft-k4/results.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", required=True, help="the AURORA checkout root (test.json and data/)")
    parser.add_argument(
        "--subsets",
        type=_names,
        default=_names(PAPER_SUBSETS),
        help=f"comma-separated benchmark subsets, any `task` of test.json with targets (default {PAPER_SUBSETS})",
    )
    parser.add_argument(
        "--predictions",
        required=True,
        metavar="{copy,ip2p,DIR,MODEL}",
        help="copy (source as prediction), ip2p (InstructPix2Pix), DIR (one image per row: DIR/<row id>.png, e.g. "
        "DIR/ag/12.png), or a forward-dynamics model id/folder",
    )
    parser.add_argument(
        "--metrics", type=_names, default=["l1"], help="comma-separated: l1, clip_i, clip_t, dino, judge (default l1)"
    )
    parser.add_argument("--out", required=True, help="results.json to write")
    parser.add_argument("--report", help="also write a Markdown report (Table 2/6 layout) of this run here")
    parser.add_argument("--skip-missing", action="store_true", help="skip rows with missing images, naming them")
    parser.add_argument("--name", help="label of this run in reports (default from --predictions)")
    parser.add_argument("--limit", type=int, help="only the first N rows of each subset (quick checks)")
    parser.add_argument("--batch-size", type=int, default=8, help="rows per batch (default 8)")
    parser.add_argument("--device", help="torch device (default cuda when available)")
    parser.add_argument("--predictions-dir", help="where generated predictions go (default <OUT dir>/predictions)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of ip2p and models (default 0)")
    group = parser.add_argument_group("embedding metrics")
    group.add_argument("--clip-model", default="openai/clip-vit-base-patch32", help="CLIP for CLIP-I/CLIP-T")
    group.add_argument("--dino-model", default="facebook/dino-vitb16", help="DINO (ViT or DINOv2) for DINO")
    group.add_argument(
        "--clip-t-text",
        choices=("auto", "action", "caption"),
        default="auto",
        help="CLIP-T text: the row's caption when it has one (auto, default), always the action, or the caption",
    )
    group = parser.add_argument_group("judge (GPT-4o-as-judge, paper appendix F)")
    group.add_argument("--judge-model", default="gpt-4o", help="chat model (default gpt-4o)")
    group.add_argument("--judge-base-url", help="OpenAI-compatible endpoint (default: the openai client's)")
    group.add_argument("--judge-cache-dir", help="reply cache (default <OUT dir>/judge_cache)")
    group.add_argument("--judge-concurrency", type=int, default=8, help="requests in flight (default 8)")
    group = parser.add_argument_group("InstructPix2Pix baseline (--predictions ip2p)")
    group.add_argument("--ip2p-model", default="timbrooks/instruct-pix2pix", help="diffusers pipeline id or folder")
    group.add_argument("--ip2p-steps", type=int, default=20, help="denoising steps (default 20)")
    group.add_argument("--ip2p-guidance-scale", type=float, default=7.5, help="text guidance (default 7.5)")
    group.add_argument("--ip2p-image-guidance-scale", type=float, default=1.5, help="image guidance (default 1.5)")
    group.add_argument("--ip2p-resolution", type=int, default=512, help="square input/output side (default 512)")
    group = parser.add_argument_group("forward-dynamics model (--predictions MODEL)")
    group.add_argument("--idm", help="inverse-dynamics model that picks the best of --num-candidates")
    group.add_argument("--num-candidates", type=int, default=1, help="candidates per row, K (default 1)")
    group.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    group.add_argument("--top-k", type=int, help="top-k filter")
    group.add_argument("--top-p", type=float, help="nucleus filter")
    group.add_argument("--dtype", help="model dtype (bfloat16, float16, float32; default the checkpoint's)")
    parser.set_defaults(func=_aurora)

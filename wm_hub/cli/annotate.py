"""``wm-hub annotate``: label key-frame pairs with actions by an inverse-dynamics model (paper section 3.2)."""

from __future__ import annotations

import argparse
import json


def _annotate(args: argparse.Namespace) -> int:
    from wm_hub.bootstrap.annotate import AnnotateConfig, annotate

    try:
        config = AnnotateConfig(
            idm=args.idm,
            data=args.data,
            out=args.out,
            split=args.split,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            shard_size=args.shard_size,
            do_sample=args.sample,
            temperature=args.temperature,
            seed=args.seed,
            class_source=args.class_source,
            origin_prefix=args.origin_prefix,
            dtype=args.dtype,
            device=args.device,
        )
        summary = annotate(config)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    if summary is not None:
        rate = summary["pairs_per_second"]
        print(json.dumps({key: value for key, value in summary.items() if key != "settings"}, indent=2))
        print(f"annotated {summary['annotated']} pairs ({summary['already_done']} already done)", end="")
        print(f" at {rate} pairs/s" if rate else "")
    return 0


def register(subparsers) -> None:
    """Add ``wm-hub annotate``."""
    parser = subparsers.add_parser(
        "annotate",
        help="label key-frame pairs with actions generated and scored by an inverse-dynamics model",
        description="IDM annotation of key-frame pairs (paper section 3.2): for every pair the IDM generates an "
        "action (batched, greedy unless --sample) and scores it, log p(action | source, target) over the action "
        "tokens and eos in the IDM's training format (score_sum, score_mean, num_action_tokens; score = "
        "score_mean, what stratified sampling ranks by).\n\n"
        "DATA is a folder written by `wm-hub keyframes` (consecutive key frames of each video form pairs) or a "
        "triplet dataset with id, source, target columns (e.g. `wm-hub data build video_keyframes` output, a "
        "Parquet file, a Hub id).\n\n"
        "OUT gets annotations-NNNNN-of-NNNNN.jsonl shards (each written atomically) and the pair images under "
        "frames/, which the synthetic_triplets builder and `wm-hub sample` read as they are, plus "
        "annotation_config.json and annotation_run.json. Rerun the same command to resume after a crash: "
        "finished shards are kept, every pair ends up in exactly one row. For several GPUs, run "
        "recipes/annotate.py under `accelerate launch`.",
        epilog="examples:\n"
        "  wm-hub keyframes UCF-101/ --out ucf101-kf\n"
        "  wm-hub annotate --idm outputs/anole-7b-idm --data ucf101-kf --out ucf101-annotated --batch-size 16\n"
        "  wm-hub data build shapes_world --config videos --out shapes-videos\n"
        "  wm-hub annotate --idm tiny-idm --data shapes-videos --out shapes-annotated --max-new-tokens 16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--idm", required=True, metavar="MODEL", help="inverse-dynamics model: folder or Hub id")
    parser.add_argument("--data", required=True, help="a `wm-hub keyframes` folder or a triplet dataset of pairs")
    parser.add_argument("--out", required=True, help="output folder (rerun with the same settings to resume)")
    parser.add_argument("--split", default="train", help="split of a triplet dataset (default: train)")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per generation batch (default: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="longest action in tokens (default: 48)")
    parser.add_argument("--shard-size", type=int, default=128, help="pairs per output shard (default: 128)")
    parser.add_argument("--sample", action="store_true", help="sample actions instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    parser.add_argument(
        "--class-source",
        choices=("auto", "verb", "input"),
        default="auto",
        help="action_class: the video's class folder, else the action's first word (auto, default); always the "
        "verb; or the input's class (required)",
    )
    parser.add_argument(
        "--origin-prefix",
        default="video_keyframes",
        help="origin of key-frame folder pairs (default: video_keyframes)",
    )
    parser.add_argument("--dtype", default=None, help="LM dtype, e.g. bfloat16 (default: the checkpoint's)")
    parser.add_argument("--device", default=None, help="device, e.g. cuda:0 or cpu (default: the accelerator)")
    parser.set_defaults(func=_annotate)

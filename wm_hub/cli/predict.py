"""``wm-hub predict``: sample candidate next images for one source image and action."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wm_hub.atomic_io import write_json, write_with


def _open_image(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError:
        raise SystemExit(f"error: --image {path}: no such file") from None
    except UnidentifiedImageError:
        raise SystemExit(f"error: --image {path}: not an image PIL can read") from None
    except OSError as error:  # a truncated or damaged file, or a folder
        raise SystemExit(f"error: --image {path}: cannot be read ({error})") from None


def _predict(args: argparse.Namespace) -> int:
    from wm_hub.cli._checks import check_trained_task
    from wm_hub.inference.generation import check_sampling, generate_images
    from wm_hub.models.loading import load_backbone

    if args.num_candidates < 1:
        raise SystemExit(f"error: --num-candidates must be >= 1, got {args.num_candidates}")
    try:
        check_sampling(args.temperature, args.top_k, args.top_p, as_flags=True)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if not args.action.strip():
        raise SystemExit("error: --action is blank: give the action text")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SystemExit(f"error: --out {args.out} is a file: give an output folder")
    check_trained_task("--model", args.model, "fdm")
    source = _open_image(args.image)
    backbone = load_backbone(args.model, device=args.device, dtype=args.dtype)
    prompt = backbone.build_fdm_sequence(source, args.action).input_ids
    output = generate_images(
        backbone,
        [prompt],
        num_candidates=args.num_candidates,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(output.images[0]):
        path = write_with(out / f"candidate_{index}.png", lambda tmp, image=image: image.save(tmp, format="PNG"))
        paths.append(str(path))
    for stale in set(out.glob("candidate_*.png")) - {Path(path) for path in paths}:  # from an earlier, larger run
        stale.unlink()
    summary = {"model": args.model, "image": args.image, "action": args.action, "seed": args.seed, "images": paths}
    write_json(out / "prediction.json", summary)
    print(json.dumps(summary, indent=2))
    return 0


def _add_sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-candidates", type=int, default=4, help="images sampled in one batch (default: 4)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (paper: 1.0)")
    parser.add_argument("--top-k", type=int, help="keep the k most likely image tokens (default: all)")
    parser.add_argument("--top-p", type=float, help="nucleus sampling over image tokens (default: off)")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed (default: 0)")


def _add_predict(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="forward dynamics: source image + action -> candidate next images",
        description="Sample candidate next observations for one source image and action with a world-model "
        "backbone, all candidates in one batched generate call. Writes candidate_<i>.png and prediction.json.",
        epilog='example: wm-hub predict --model /tmp/tiny-chameleon --image kitchen.jpg --action "open the drawer" '
        "--num-candidates 4 --out preds/",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--image", required=True, help="source image file")
    parser.add_argument("--action", required=True, help="action text")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", help="torch device (default: CPU)")
    parser.add_argument("--dtype", help="LM dtype, e.g. bfloat16 (default: checkpoint's)")
    _add_sampling_args(parser)
    parser.set_defaults(func=_predict)


def register(subparsers) -> None:
    """Add ``wm-hub predict``."""
    _add_predict(subparsers)

"""``wm-hub generate`` and ``wm-hub rollout``: the forward-dynamics pipeline from the command line."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from wm_hub.atomic_io import write_json, write_with
from wm_hub.cli._checks import check_trained_task


def _check_model(flag: str, name: str) -> None:
    """A model argument that is clearly a local path (absolute, ``./``, ``../``, ``~`` or deeper than org/name)."""
    looks_local = os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1
    if looks_local and not Path(name).expanduser().is_dir():
        raise SystemExit(f"error: {flag} {name}: no such model folder")


def _load(task: str, flag: str, name: str, args: argparse.Namespace):
    from transformers import pipeline

    from wm_hub.inference.pipelines import WorldModelLoadError

    _check_model(flag, name)
    options: dict[str, Any] = {}
    if args.device is not None:
        options["device"] = args.device
    if args.dtype is not None:
        options["dtype"] = args.dtype
    try:
        return pipeline(task, model=os.path.expanduser(name), **options)
    except WorldModelLoadError as error:
        raise SystemExit(f"error: {flag} {name}: {error.__cause__ or error}") from None
    except OSError as error:
        raise SystemExit(f"error: {flag} {name}: {error}") from None


def _check_image(path: str) -> None:
    if not Path(path).is_file():
        raise SystemExit(f"error: --image {path}: no such file")


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    if args.num_candidates < 1:
        raise SystemExit(f"error: --num-candidates must be >= 1, got {args.num_candidates}")
    if args.num_candidates > 1 and args.idm is None:
        raise SystemExit("error: --num-candidates > 1 needs --idm MODEL to choose the best candidate")
    from wm_hub.inference.generation import check_sampling

    try:
        check_sampling(args.temperature, args.top_k, args.top_p, as_flags=True)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    return {
        "num_candidates": args.num_candidates,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "seed": args.seed,
        "cache_implementation": args.cache,
    }


def _save_png(image, path: Path) -> None:
    """Write ``image`` as PNG atomically."""
    write_with(path, lambda tmp: image.save(tmp, format="PNG"))


def _run(args: argparse.Namespace, actions: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Load the models and run the pipeline; one result per step."""
    from transformers.image_utils import load_image

    _check_image(args.image)
    sampling = _sampling(args)
    try:
        image = load_image(args.image)
    except Exception as error:  # PIL raises several types for unreadable files
        raise SystemExit(f"error: --image {args.image}: not a readable image ({error})") from None
    check_trained_task("--fdm", args.fdm, "fdm")
    if args.idm:
        check_trained_task("--idm", args.idm, "idm")
    fdm = _load("forward-dynamics", "--fdm", args.fdm, args)
    verifier = _load("inverse-dynamics", "--idm", args.idm, args) if args.idm else None
    results = fdm(image, actions=actions, verifier=verifier, **sampling)
    settings = {"fdm": args.fdm, "idm": args.idm, "image": args.image, **sampling}
    return results, settings


def _generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise SystemExit(f"error: --out {args.out}: must be a .png file")
    if not args.action.strip():
        raise SystemExit("error: --action is blank: give the action text")
    (result,), settings = _run(args, [args.action])
    _save_png(result["image"], out)
    print(json.dumps({"output": str(out), "action": args.action, "score": result["score"], **settings}, indent=2))
    return 0


def _rollout(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {args.out}: exists and is not a folder")
    if not args.actions or any(not action.strip() for action in args.actions):
        raise SystemExit("error: --actions holds a blank action: give every step's action text")
    results, settings = _run(args, args.actions)
    width = max(2, len(str(len(results))))
    steps = []
    for step, (action, result) in enumerate(zip(args.actions, results), start=1):
        name = f"step_{step:0{width}d}.png"
        _save_png(result["image"], out / name)
        steps.append({"step": step, "action": action, "image": name, "score": result["score"]})
    summary = {"steps": steps, **settings}
    write_json(out / "rollout.json", summary)
    for stale in set(out.glob("step_*.png")) - {out / step["image"] for step in steps}:  # of an earlier, longer run
        stale.unlink()
    print(json.dumps({"output": str(out), **summary}, indent=2))
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fdm", required=True, metavar="MODEL", help="forward-dynamics model: folder or Hub id")
    parser.add_argument("--image", required=True, help="the current observation (image file)")
    parser.add_argument("--idm", metavar="MODEL", help="inverse-dynamics model that picks the best of N candidates")
    parser.add_argument(
        "--num-candidates", type=int, default=1, metavar="N", help="candidates per step (N > 1 needs --idm)"
    )
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (paper: 1.0)")
    parser.add_argument("--top-k", type=int, default=None, help="keep the k most likely image tokens")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling over image tokens")
    parser.add_argument("--seed", type=int, default=None, help="seed (a rollout's step i uses seed + i)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: GPU 0 if any)")
    parser.add_argument("--dtype", default=None, help="LM dtype, e.g. bfloat16 (default: as saved)")
    parser.add_argument("--cache", choices=["static"], default=None, help="static KV cache (faster on GPU)")


def register(subparsers) -> None:
    """Add ``wm-hub generate`` and ``wm-hub rollout``."""
    generate = subparsers.add_parser(
        "generate",
        help="predict the next observation of an image after an action (optionally best-of-N with an IDM)",
        description="Run pipeline('forward-dynamics') once. With --idm and --num-candidates N, the FDM samples N "
        "candidates in one batch and the IDM keeps the one with the highest log p(action | image, candidate) "
        "(summed over the action tokens). Writes OUT atomically and prints a JSON summary.",
        epilog="example:\n  wm-hub generate --fdm my-fdm --image kitchen.jpg --action 'open the drawer' "
        "--idm my-idm --num-candidates 8 --out next.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(generate)
    generate.add_argument("--action", required=True, help="the action text")
    generate.add_argument("--out", required=True, metavar="PNG", help="where to write the predicted image")
    generate.set_defaults(func=_generate)

    rollout = subparsers.add_parser(
        "rollout",
        help="apply several actions in turn, each prediction feeding the next step",
        description="Run pipeline('forward-dynamics') with actions=[A1, A2, ...]: step i predicts from the image of "
        "step i - 1 (the first from --image). Writes OUT/step_01.png, ... and OUT/rollout.json (actions, files, "
        "verifier scores), each atomically.",
        epilog="example:\n  wm-hub rollout --fdm my-fdm --image kitchen.jpg --actions 'open the drawer' "
        "'take out a spoon' --out rollout/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(rollout)
    rollout.add_argument("--actions", required=True, nargs="+", metavar="ACTION", help="the actions, in order")
    rollout.add_argument("--out", required=True, metavar="DIR", help="output folder")
    rollout.set_defaults(func=_rollout)

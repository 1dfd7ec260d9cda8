"""``wm-hub tiny-model``: a random tiny backbone of a real layout, for tests and demos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ARCHS = ("chameleon", "liquid", "emu3")
FIT_REPORT = "vq_fit.json"  # written next to a fitted VQGAN: data, settings, held-out PSNR


def _read_vqgan(path: str):
    from diffusers import VQModel

    from wm_hub.models.chameleon_vqgan import VQGAN_SUBFOLDER

    folder = Path(path) / VQGAN_SUBFOLDER if (Path(path) / VQGAN_SUBFOLDER).is_dir() else Path(path)
    if not (folder / "config.json").is_file():
        raise SystemExit(f"error: --vqgan {path}: no VQModel folder (config.json + weights) there or in its vqgan/")
    return VQModel.from_pretrained(folder), folder


def _tiny_model(args: argparse.Namespace) -> int:
    from wm_hub.models.tiny import TinySpec, save_tiny_model

    if args.arch == "emu3" and (args.vqgan or args.fit_vq):
        raise SystemExit("error: --vqgan/--fit-vq: emu3 has its own VQ model, not Chameleon's VQGAN")
    if args.fit_steps and not args.fit_vq:
        raise SystemExit("error: --fit-steps needs --fit-vq")
    vqgan, fitted_from = _read_vqgan(args.vqgan) if args.vqgan else (None, None)
    vq_sizes = TinySpec() if vqgan is None else TinySpec(vqgan.config.sample_size, vqgan.config.num_vq_embeddings)
    spec = TinySpec(
        image_size=args.image_size or vq_sizes.image_size,
        seed=args.seed,
        num_image_codes=args.num_image_codes or vq_sizes.num_image_codes,
    )
    fit_report = None
    if args.fit_vq:
        from wm_hub.training.vq_fitting import VQFitConfig, fit_tiny_vqgan

        fit_config = VQFitConfig(seed=args.seed, **({"steps": args.fit_steps} if args.fit_steps else {}))
        vqgan, metrics = fit_tiny_vqgan(spec, fit_config)
        fit_report = {"data": args.fit_vq, "spec": vars(spec), "config": vars(fit_config), **metrics.to_dict()}
    elif fitted_from is not None and (fitted_from / FIT_REPORT).is_file():
        fit_report = json.loads((fitted_from / FIT_REPORT).read_text())
    try:
        out = save_tiny_model(args.arch, args.out, spec, vqgan)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if fit_report is not None:
        (out / "vqgan" / FIT_REPORT).write_text(json.dumps(fit_report, indent=2) + "\n")
        print(f"VQGAN fit: held-out PSNR {fit_report['heldout_psnr']:.2f} dB, {fit_report['codes_used']} codes used")
    weights = "random weights" if vqgan is None else "random LM, fitted VQGAN"
    print(f"Wrote a tiny {args.arch} backbone ({weights}) to {out} (load it with wm_hub.load_backbone({str(out)!r}))")
    return 0


def _add_tiny_model(subparsers) -> None:
    parser = subparsers.add_parser(
        "tiny-model",
        help="write a random tiny backbone (real layout, local tokenizer) for tests and demos",
        description="Build a random-weight backbone with the real layout of its family (vocabulary, special tokens, "
        "VQ architecture) at laptop size, and save it like a real checkpoint. wm_hub.load_backbone(DIR) loads it "
        "through the same code path as Anole-7b, Liquid-7B or Emu3.",
        epilog="examples: wm-hub tiny-model --arch chameleon --out /tmp/tiny-chameleon; wm-hub tiny-model --arch "
        "chameleon --out /tmp/tiny-fitted --fit-vq shapes_world (then --vqgan /tmp/tiny-fitted reuses its VQGAN)",
    )
    parser.add_argument("--arch", choices=ARCHS, required=True, help="backbone family")
    parser.add_argument("--out", required=True, help="output folder (config.json, weights, tokenizer, VQ model)")
    parser.add_argument(
        "--image-size", type=int, help="image side in pixels (default: 64 -> 8x8 tokens, or the --vqgan's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    parser.add_argument("--num-image-codes", type=int, help="VQ codebook size (default: 512, or the --vqgan's)")
    vq = parser.add_mutually_exclusive_group()
    vq.add_argument(
        "--fit-vq",
        choices=("shapes_world",),
        help="chameleon/liquid: fit the VQGAN on this data so decoded images are recognisable (a few CPU minutes); "
        "PSNR in OUT/vqgan/vq_fit.json",
    )
    vq.add_argument("--vqgan", help="chameleon/liquid: reuse the fitted VQGAN of a model folder (or its vqgan/)")
    parser.add_argument("--fit-steps", type=int, help="training steps of --fit-vq (default: VQFitConfig's)")
    parser.set_defaults(func=_tiny_model)


def register(subparsers) -> None:
    """Add ``wm-hub tiny-model``."""
    _add_tiny_model(subparsers)

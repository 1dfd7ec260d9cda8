"""``wm-hub convert-vqgan``: Meta's/Anole's vqgan.ckpt as a diffusers VQModel folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def _convert_vqgan(args: argparse.Namespace) -> int:
    from wm_hub.models.chameleon_vqgan import load_taming_checkpoint, read_vqgan_yaml

    if not Path(args.ckpt).is_file():
        raise SystemExit(f"error: --ckpt {args.ckpt}: no such file")
    vqgan = load_taming_checkpoint(args.ckpt, read_vqgan_yaml(args.yaml) if args.yaml else None)
    vqgan.save_pretrained(args.out)
    print(f"Wrote the VQGAN (diffusers.VQModel, encoder + decoder) to {args.out}")
    return 0


def _add_convert_vqgan(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-vqgan",
        help="convert Meta's/Anole's vqgan.ckpt (Chameleon's VQGAN) into a diffusers VQModel folder",
        description="HF Chameleon checkpoints ship only the VQ encoder; the decoder is in Meta's vqgan.ckpt "
        "(taming-transformers layout). This writes it as a diffusers.VQModel folder. Put it in <model>/vqgan "
        "and load_backbone(<model>) finds it, or pass vqgan=<folder> to load_backbone.",
        epilog="example: wm-hub convert-vqgan --ckpt tokenizer/vqgan.ckpt --yaml tokenizer/vqgan.yaml "
        "--out Anole-7b-v0.1-hf/vqgan",
    )
    parser.add_argument("--ckpt", required=True, help="path to vqgan.ckpt")
    parser.add_argument("--yaml", help="path to vqgan.yaml (default: Chameleon-7B's config)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(func=_convert_vqgan)


def register(subparsers) -> None:
    """Add ``wm-hub convert-vqgan``."""
    _add_convert_vqgan(subparsers)

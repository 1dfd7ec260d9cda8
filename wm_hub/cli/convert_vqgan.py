"""``wm-hub convert-vqgan``: Meta's/Anole's vqgan.ckpt as a diffusers VQModel folder."""

from __future__ import annotations

from wm_hub.cli._tasks import Task


def _convert_vqgan(config) -> int:
    from wm_hub.models.chameleon_vqgan import convert_vqgan

    try:
        out = convert_vqgan(config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"Wrote the VQGAN (diffusers.VQModel, encoder + decoder) to {out}")
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.models.chameleon_vqgan import ConvertVQGANConfig

    return (ConvertVQGANConfig,)


TASKS = (
    Task(
        words=("convert-vqgan",),
        help="convert Meta's/Anole's vqgan.ckpt (Chameleon's VQGAN) into a diffusers VQModel folder",
        configs=_configs,
        run=_convert_vqgan,
        description="HF Chameleon checkpoints ship only the VQ encoder; the decoder is in Meta's vqgan.ckpt "
        "(taming-transformers layout). This writes it as a diffusers.VQModel folder. Put it in <model>/vqgan "
        "and load_backbone(<model>) finds it, or pass vqgan=<folder> to load_backbone.",
        epilog="example:\n  wm-hub convert-vqgan --ckpt tokenizer/vqgan.ckpt --yaml tokenizer/vqgan.yaml "
        "--out Anole-7b-v0.1-hf/vqgan",
    ),
)

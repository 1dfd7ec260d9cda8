"""``wm-hub tiny-model``: a random tiny backbone of a real layout, for tests and demos."""

from __future__ import annotations

from wm_hub.cli._tasks import Task


def _tiny_model(config) -> int:
    from wm_hub.training.vq_fitting import write_tiny_model

    try:
        report = write_tiny_model(config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    if report is not None:
        print(f"VQGAN fit: held-out PSNR {report['heldout_psnr']:.2f} dB, {report['codes_used']} codes used")
    weights = "random LM, fitted VQGAN" if config.fit_vq or config.vqgan else "random weights"
    print(
        f"Wrote a tiny {config.arch} backbone ({weights}) to {config.out} "
        f"(load it with wm_hub.load_backbone({config.out!r}))"
    )
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.models.tiny import TinyModelConfig

    return (TinyModelConfig,)


TASKS = (
    Task(
        words=("tiny-model",),
        help="write a random tiny backbone (real layout, local tokenizer) for tests and demos",
        configs=_configs,
        run=_tiny_model,
        description="Build a random-weight backbone with the real layout of its family (vocabulary, special "
        "tokens, VQ architecture) at laptop size, and save it like a real checkpoint. wm_hub.load_backbone(DIR) "
        "loads it through the same code path as Anole-7b, Liquid-7B or Emu3.\n\n"
        "The random VQGAN of chameleon and liquid decodes every code to noise: --fit-vq fits one so that decoded "
        "images are recognisable, --vqgan reuses one fitted before (the two exclude each other).",
        epilog="examples:\n"
        "  wm-hub tiny-model --arch chameleon --out /tmp/tiny-chameleon\n"
        "  wm-hub tiny-model --arch chameleon --out /tmp/tiny-fitted --fit-vq shapes_world\n"
        "  wm-hub tiny-model --arch liquid --out /tmp/tiny-liquid --vqgan /tmp/tiny-fitted   (reuses its VQGAN)",
    ),
)

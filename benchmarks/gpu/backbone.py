"""Chameleon-7B-shape decode speed through wm-hub's generation path, and VQGAN throughput at 512 px (for an H100).

Builds the real Chameleon-7B shape (``ChameleonConfig()`` defaults: hidden 4096, 32 layers, vocab 65536) with
RANDOM weights directly on the GPU in bf16, a vocabulary with the real Chameleon id layout (``<s> <pad> </s> <unk>``
at 0-3, image codes ``IMGIMG...Z`` at 4..8195, ``<eoss>`` 8196, ``<racm3:break>`` 8197, reserved fillers up to
``<reserved08706>`` at 8710, ``<image>`` at 8711, fillers up to 65536) and a matching byte-level tokenizer, so the
real :class:`~wm_hub.models.chameleon.ChameleonBackbone` is used; the VQGAN is ``diffusers.VQModel`` at Meta's 512 px
config (float32, as wm-hub keeps it). Nothing is downloaded.

Measured:

- ``generate_images`` of one FDM prompt (about 1.1k tokens) with 1 and 8 candidates, dynamic and static KV cache:
  the whole call, the prefill alone (one forward of the prompt at that batch) and
  ``decode ms/step = (call - prefill) / (layout steps - 1)``. ``generation_layout`` forces exactly
  ``image_seq_len + 1`` new tokens (1025 at 512 px). Before each measured call a short generation with the same
  batch and the same total length (prompt + layout) warms up kernels and, for the static cache, ``generate``'s
  automatic ``torch.compile``; its time is reported as ``warmup_s``.
- VQ encode images/s (batch 16): the raw diffusers encoder + quantiser on pixels on the GPU, transformers' own
  ``ChameleonVQVAE`` encoder in bf16 (the LM's ``get_image_tokens``), and ``Backbone.encode_images`` from PIL images
  (CPU preprocessing included); VQ decode images/s: raw ``decode_codes`` and ``Backbone.decode_images`` (to PIL).

The printed table compares with the anchors of ``hf-facts.md`` (HF ``generate`` on the same shape, H100, bf16).
Results go to ``$OUT/backbone_gpu.json`` when ``OUT`` is set (the device tool copies back only files under ``$OUT``),
else ``benchmarks/results/backbone_gpu.json``; the file is rewritten after every measurement, so a run cut short
keeps what it measured.

Device setup: the GPU machine has torch, transformers, accelerate and peft but NOT diffusers, and it cannot reach a
package index. Build the wheels here (``bash benchmarks/gpu/prepare_wheels.sh``: diffusers and importlib_metadata
into ``benchmarks/gpu/wheels/``), then run ``bash benchmarks/gpu/run_on_device.sh`` there with that folder carried:
it installs the wheels with ``pip install --no-index --no-deps``, installs wm-hub itself with
``pip install --no-deps --no-build-isolation -e .`` and runs this script.

``--tiny`` runs the same code on the CPU with a tiny Chameleon shape (hidden 64, 2 layers, codebook 512, 64 px),
as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from diffusers import VQModel
from PIL import Image
from transformers import ChameleonConfig, ChameleonImageProcessorPil, PreTrainedTokenizerFast

from wm_hub.inference.generation import generate_images
from wm_hub.models.base import BackboneConfig
from wm_hub.models.chameleon import BOI_TOKEN, END_OF_TURN_TOKEN, EOI_TOKEN, ChameleonBackbone
from wm_hub.models.chameleon import ChameleonWorldModelForConditionalGeneration as ChameleonLM
from wm_hub.models.chameleon_vqgan import decode_codes, encode_codes, vqmodel_config_from_chameleon_vq_config
from wm_hub.models.processing import WorldModelProcessor
from wm_hub.models.tiny import build_byte_tokenizer, chameleon_image_token

REPO_ROOT = Path(__file__).resolve().parents[2]
ACTION = "Move the red cube to the left of the cup."
SEED = 0
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]

# hf-facts.md, "Anchor measurements (H100, random-weight Chameleon-7B shape, bf16, transformers 5.17)".
ANCHOR_DECODE_MS = {("dynamic", 1): 33.6, ("dynamic", 8): 83.6, ("static", 1): 10.3, ("static", 8): 12.6}
ANCHOR_DECODE_MS[("static", 16)] = 15.5
ANCHOR_FLOOR_MS = 4.2
ANCHOR_VQ_ENCODE_PER_S = 187.0


@dataclass(frozen=True)
class ChameleonShape:
    """Sizes of a Chameleon model and of its vocabulary layout.

    Args:
        name: Label stored with the results.
        config: ``ChameleonConfig`` overrides (empty: the 7B defaults, whose ``vq_config`` is Meta's 512 px VQGAN).
        num_image_codes: VQ codebook size (image tokens at ids ``4 .. 4 + num_image_codes - 1``).
        num_reserved: Filler tokens between ``<racm3:break>`` and the end-of-turn token.
        image_size: Image side in pixels.
        warmup_grid: Token-grid side of the short warm-up generation.
    """

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    num_image_codes: int = 8192
    num_reserved: int = 512
    image_size: int = 512
    warmup_grid: int = 4


REAL_7B = ChameleonShape(name="chameleon-7b (random weights)")
TINY = ChameleonShape(
    name="tiny chameleon (random weights)",
    config={
        "vocab_size": 1024,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 1024,
        "vq_config": {
            "embed_dim": 32,
            "num_embeddings": 512,
            "latent_channels": 32,
            "resolution": 64,
            "base_channels": 32,
            "channel_multiplier": [1, 1, 2, 2],
            "num_res_blocks": 1,
        },
    },
    num_image_codes=512,
    num_reserved=8,
    image_size=64,
    warmup_grid=2,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="Tiny shape on the CPU (smoke test).")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="Candidates per generate call.")
    parser.add_argument("--caches", nargs="+", default=["static", "dynamic"], choices=["dynamic", "static"])
    parser.add_argument("--vq-batch", type=int, default=16, help="Images per VQ encode/decode call.")
    parser.add_argument("--vq-repeats", type=int, default=5, help="Timed VQ repeats (median reported).")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: $OUT or benchmarks/results).")
    return parser.parse_args()


def default_out(tiny: bool) -> Path:
    name = "backbone_gpu_tiny.json" if tiny else "backbone_gpu.json"
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / name
    return REPO_ROOT / "benchmarks" / "results" / name


def chameleon_vocabulary(num_image_codes: int, num_reserved: int, vocab_size: int) -> tuple[list[str], list[str]]:
    """Token names in Chameleon's id layout, split around the 256 byte symbols of :func:`build_byte_tokenizer`.

    Returns:
        ``leading`` (specials, image codes, ``<eoss>``, ``<racm3:break>``, reserved fillers, end-of-turn,
        ``<image>``) and ``trailing`` fillers that bring the vocabulary to ``vocab_size``. With 8192 codes and 512
        reserved fillers the ids are Chameleon-7B's: codes 4..8195, eoi 8196, boi 8197, end-of-turn 8710, image 8711.
    """
    leading = [*SPECIAL_TOKENS, *(chameleon_image_token(code) for code in range(num_image_codes))]
    leading += [EOI_TOKEN, BOI_TOKEN]
    # Chameleon names reserved token id i "<reserved{i - 4:05d}>": <reserved08706> is id 8710.
    leading += [f"<reserved{token_id - 4:05d}>" for token_id in range(len(leading), len(leading) + num_reserved)]
    leading += [END_OF_TURN_TOKEN, "<image>"]
    num_trailing = vocab_size - len(leading) - 256
    if num_trailing < 0:
        raise ValueError(f"vocab_size {vocab_size} is too small for {len(leading)} tokens plus 256 bytes")
    trailing = [f"<filler{token_id:05d}>" for token_id in range(vocab_size - num_trailing, vocab_size)]
    return leading, trailing


def chameleon_tokenizer(shape: ChameleonShape, vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer whose special and image tokens sit at Chameleon's ids."""
    leading, trailing = chameleon_vocabulary(shape.num_image_codes, shape.num_reserved, vocab_size)
    specials = [*SPECIAL_TOKENS, EOI_TOKEN, BOI_TOKEN, END_OF_TURN_TOKEN, "<image>"]
    tokenizer = build_byte_tokenizer(
        leading, specials, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>", trailing_tokens=trailing
    )
    if len(tokenizer) != vocab_size:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, expected {vocab_size}")
    return tokenizer


def build_backbones(
    shape: ChameleonShape, device: torch.device, dtype: torch.dtype
) -> tuple[ChameleonBackbone, ChameleonBackbone]:
    """The measured backbone and a warm-up view of it (same LM, tokenizer and VQGAN, smaller token grid).

    The LM is created directly on ``device`` in ``dtype`` with random weights; the VQGAN stays float32.
    """
    vocab_size = shape.config.get("vocab_size", ChameleonConfig().vocab_size)
    tokenizer = chameleon_tokenizer(shape, vocab_size)
    config = ChameleonConfig(
        **shape.config,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        vocabulary_map=tokenizer.get_vocab(),
    )
    torch.manual_seed(SEED)
    with device:
        model = ChameleonLM._from_config(config, dtype=dtype).eval()
        vqgan = VQModel(**vqmodel_config_from_chameleon_vq_config(model.config.vq_config)).eval()
    size = shape.image_size
    images = ChameleonImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    downsample = 2 ** (len(vqgan.config.block_out_channels) - 1)
    # The warm-up view first: each backbone writes its settings into the shared model config. One processor each:
    # the processor records the token grid of its view.
    warmup_size = shape.warmup_grid * downsample
    warmup = ChameleonBackbone(model, WorldModelProcessor(images, tokenizer), vqgan, _settings(warmup_size))
    measured = ChameleonBackbone(model, WorldModelProcessor(images, tokenizer), vqgan, _settings(size))
    return measured, warmup


def _settings(image_size: int) -> BackboneConfig:
    return BackboneConfig(arch="chameleon", image_size=image_size)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of one call of ``fn``, with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    return statistics.median(seconds(fn, device) for _ in range(repeats))


def synthetic_images(count: int, size: tuple[int, int] = (640, 480)) -> list[Image.Image]:
    """Colour gradients plus noise (the device machine has no image data)."""
    rng = np.random.default_rng(SEED)
    width, height = size
    ramp_x = np.linspace(0, 255, width)[None, :, None]
    ramp_y = np.linspace(0, 255, height)[:, None, None]
    images = []
    for _ in range(count):
        mix = rng.uniform(0, 1, size=(1, 1, 3))
        base = mix * ramp_x + (1 - mix) * ramp_y + rng.normal(0, 20, size=(height, width, 3))
        images.append(Image.fromarray(base.clip(0, 255).astype(np.uint8), mode="RGB"))
    return images


def bench_vq(backbone: ChameleonBackbone, batch: int, repeats: int) -> dict[str, float]:
    """VQ encode/decode images/s: raw on-device calls and wm-hub's PIL-level API."""
    device = backbone.device
    images = synthetic_images(batch)
    pixels = backbone.preprocess(images).to(device)
    ids = backbone.encode_images(images)
    codes = backbone.ids_to_codes(ids).to(device)
    lm_pixels = pixels.to(backbone.model.dtype)
    cases = {
        "encode_raw_diffusers_fp32": lambda: encode_codes(backbone.vqgan, pixels),
        "encode_hf_chameleon_vqvae_lm_dtype": lambda: backbone.model.get_image_tokens(lm_pixels),
        "encode_images_from_pil": lambda: backbone.encode_images(images),
        "decode_raw_diffusers_fp32": lambda: decode_codes(backbone.vqgan, codes, backbone.image_grid),
        "decode_images_to_pil": lambda: backbone.decode_images(ids),
    }
    with torch.no_grad():
        return {f"{name}_images_per_s": batch / median_seconds(fn, device, repeats) for name, fn in cases.items()}


def fdm_prompt(backbone: ChameleonBackbone) -> list[int]:
    """An FDM generation prompt around a random source image."""
    generator = torch.Generator().manual_seed(SEED)
    num_codes = len(backbone.image_token_ids)
    source = backbone.codes_to_ids(torch.randint(0, num_codes, (backbone.image_seq_len,), generator=generator))
    return backbone.build_fdm_sequence(source, ACTION).input_ids


def padded_prompt(backbone: ChameleonBackbone, length: int) -> list[int]:
    """A generation prompt of exactly ``length`` tokens: bos, repeated text, then the image prefix."""
    prefix = backbone.image_prefix_ids()
    filler = backbone.tokenizer(" the", add_special_tokens=False)["input_ids"]
    body_len = length - 1 - len(prefix)
    return [backbone.bos_token_id, *(filler * body_len)[:body_len], *prefix]


def prefill_seconds(backbone: ChameleonBackbone, prompt: list[int], batch: int) -> float:
    """Median time of one forward of ``batch`` copies of the prompt (what ``generate`` runs before decoding)."""
    input_ids = torch.tensor([prompt] * batch, device=backbone.device)
    mask = torch.ones_like(input_ids)

    def forward() -> None:
        with torch.no_grad():
            backbone.model(input_ids=input_ids, attention_mask=mask, use_cache=True, logits_to_keep=1)

    return median_seconds(forward, backbone.device, repeats=3)


def bench_generation(
    measured: ChameleonBackbone, warmup: ChameleonBackbone, prompt: list[int], batch: int, cache: str
) -> dict[str, Any]:
    """One ``generate_images`` call of ``batch`` candidates, after a short warm-up with the same total length."""
    device = measured.device
    steps = len(measured.generation_layout())
    total_len = len(prompt) + steps
    warmup_prompt = padded_prompt(warmup, total_len - len(warmup.generation_layout()))
    implementation = None if cache == "dynamic" else cache

    def generate(backbone: ChameleonBackbone, tokens: list[int]) -> None:
        generate_images(
            backbone, [tokens], num_candidates=batch, seed=SEED, cache_implementation=implementation, decode=False
        )

    warmup_s = seconds(lambda: generate(warmup, warmup_prompt), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    call_s = seconds(lambda: generate(measured, prompt), device)
    prefill_s = prefill_seconds(measured, prompt, batch)
    row = {
        "cache": cache,
        "batch": batch,
        "prompt_len": len(prompt),
        "steps": steps,
        "warmup_s": warmup_s,
        "call_s": call_s,
        "prefill_s": prefill_s,
        "decode_ms_per_step": (call_s - prefill_s) / (steps - 1) * 1000,
        "call_ms_per_step": call_s / steps * 1000,
        "tokens_per_s": batch * steps / call_s,
    }
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def machine_info(device: torch.device) -> dict[str, Any]:
    import diffusers

    info = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def print_generation_table(rows: list[dict[str, Any]], compare: bool) -> None:
    """Decode speed per (cache, batch); with ``compare``, against the H100 anchors and the bandwidth floor."""
    header = (
        f"{'cache':<8} {'batch':>5} {'decode ms/step':>15} {'anchor':>7} {'vs anchor':>9} {'vs floor':>8} "
        f"{'prefill s':>9} {'call s':>8} {'warmup s':>8} {'tok/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if "error" in row:
            print(f"{row['cache']:<8} {row['batch']:>5} FAILED: {row['error']}")
            continue
        ms = row["decode_ms_per_step"]
        anchor = ANCHOR_DECODE_MS.get((row["cache"], row["batch"])) if compare else None
        anchor_cells = f"{anchor:>7.1f} {ms / anchor:>8.2f}x" if anchor else f"{'-':>7} {'-':>9}"
        floor_cell = f"{ms / ANCHOR_FLOOR_MS:>7.2f}x" if compare else f"{'-':>8}"
        print(
            f"{row['cache']:<8} {row['batch']:>5} {ms:>15.2f} {anchor_cells} {floor_cell} "
            f"{row['prefill_s']:>9.3f} {row['call_s']:>8.2f} {row['warmup_s']:>8.2f} {row['tokens_per_s']:>8.1f}"
        )
    if compare:
        print(f"anchors: HF generate, same shape, H100 (hf-facts.md); floor: {ANCHOR_FLOOR_MS} ms (weights read once)")


def print_vq_table(vq: dict[str, float], compare: bool) -> None:
    """VQ throughput; with ``compare``, encoders against the H100 anchor."""
    for name, value in vq.items():
        note = ""
        if compare and name.startswith(("encode_raw", "encode_hf")):
            note = f"  ({value / ANCHOR_VQ_ENCODE_PER_S:.2f}x the {ANCHOR_VQ_ENCODE_PER_S:.0f} img/s anchor)"
        print(f"  {name:<52} {value:9.1f}{note}")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    out = args.out or default_out(args.tiny)
    shape = TINY if args.tiny else REAL_7B
    device = torch.device("cpu" if args.tiny else "cuda")
    measured, warmup = build_backbones(shape, device, torch.bfloat16)
    prompt = fdm_prompt(measured)
    payload: dict[str, Any] = {
        "machine": machine_info(device),
        "shape": {
            "name": shape.name,
            "lm_parameters": sum(p.numel() for p in measured.model.parameters()),
            "vocab_size": measured.model.config.vocab_size,
            "hidden_size": measured.model.config.hidden_size,
            "num_hidden_layers": measured.model.config.num_hidden_layers,
            "image_size": shape.image_size,
            "image_seq_len": measured.image_seq_len,
            "lm_dtype": str(measured.model.dtype),
            "attn_implementation": measured.model.config._attn_implementation,
        },
        "anchors": {
            "decode_ms_per_step": {f"{cache}_b{batch}": ms for (cache, batch), ms in ANCHOR_DECODE_MS.items()},
            "floor_ms_per_step": ANCHOR_FLOOR_MS,
            "vq_encode_images_per_s": ANCHOR_VQ_ENCODE_PER_S,
        },
        "build_s": time.perf_counter() - started,
        "generation": [],
    }
    print(f"built {shape.name} on {device} in {payload['build_s']:.1f} s; prompt {len(prompt)} tokens", flush=True)
    payload["vq"] = bench_vq(measured, args.vq_batch, args.vq_repeats)
    payload["runtime_s"] = time.perf_counter() - started
    write_json(out, payload)
    print("VQ images/s:")
    print_vq_table(payload["vq"], compare=not args.tiny)
    for cache in args.caches:
        for batch in args.batches:
            try:
                row = bench_generation(measured, warmup, prompt, batch, cache)
                print(f"  {cache} b{batch}: {row['decode_ms_per_step']:.2f} ms/step", flush=True)
            except Exception as error:  # one failing setting (OOM, compile error) must not lose the others
                row = {"cache": cache, "batch": batch, "error": repr(error)}
                print(f"  {cache} b{batch}: FAILED {error!r}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            payload["generation"].append(row)
            payload["runtime_s"] = time.perf_counter() - started
            write_json(out, payload)
    print()
    print_generation_table(payload["generation"], compare=not args.tiny)
    print(f"\ntotal runtime {payload['runtime_s']:.1f} s; wrote {out}")


if __name__ == "__main__":
    main()

"""CPU benchmark of the Chameleon-layout VQGAN's memory format: encoding and decoding, contiguous vs channels-last.

``VQGANBackbone`` (Chameleon, Liquid and the sandbox) holds its VQGAN with channels-last convolution weights and
``encode_codes`` feeds it channels-last pixels. For each VQGAN below, one copy per memory format (weights and input
pixels alike) runs the encoder (``quant_conv(encoder(x))``, batches of ``--batch-size``) on the same pictures, and
decodes their codes (``decode_codes``), timed round-robin (median of ``--repeats``), with a check that
``encode_codes`` (channels-last) gives the codes of the contiguous features:

- ``sandbox``: the shipped sandbox tokenizer (``sandbox/base/vqgan``, 32 px) on held-out shapes-world pictures, the
  pictures ``make demo`` encodes 32000 of before its IDM trains;
- ``tiny_chameleon``: the tiny Chameleon preset's random VQGAN (64 px) on the same pictures resized.

Only ratios within one run mean anything on a shared CPU. Usage::

    .venv/bin/python benchmarks/bench_vq_memory_format.py [--pictures 1024] [--threads 2]
        [--out benchmarks/results/vq_memory_format_cpu.json]
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # as `make demo` gives its stages (wm_hub.sandbox.finetune)

import torch  # noqa: E402
from bench_backbone import interleaved_timings, machine_info, write_json  # noqa: E402

from wm_hub.data.shapes_world import ShapesWorld  # noqa: E402
from wm_hub.models.chameleon_vqgan import decode_codes, encode_codes, nearest_codes  # noqa: E402
from wm_hub.models.loading import load_backbone  # noqa: E402
from wm_hub.models.tiny import build_tiny_backbone  # noqa: E402
from wm_hub.sandbox.world import SANDBOX_BASE, SANDBOX_WORLD  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "vq_memory_format_cpu.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=1024, help="Pictures encoded per timed call.")
    parser.add_argument("--batch-size", type=int, default=32, help="Pictures per encoder call (make demo: 32).")
    parser.add_argument("--repeats", type=int, default=5, help="Timed rounds (medians are reported).")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    return parser.parse_args()


def _features(vq, pixels: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    return vq.quant_conv(vq.encoder(pixels.contiguous(memory_format=memory_format)))


def _codes(vq, features: torch.Tensor) -> torch.Tensor:
    """The codes of ``(B, D, h, w)`` features, as ``encode_codes`` picks them."""
    batch, dim = features.shape[:2]
    return nearest_codes(features.permute(0, 2, 3, 1).reshape(-1, dim), vq.quantize.embedding.weight).reshape(
        batch, -1
    )


def measure(backbone, pictures, batch_size: int, repeats: int) -> dict:
    """Encode and decode ``pictures`` with a contiguous and a channels-last copy of ``backbone.vqgan``."""
    batches = [backbone._pixels(pictures[i : i + batch_size]) for i in range(0, len(pictures), batch_size)]
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    layouts = {name: copy.deepcopy(backbone.vqgan).to(memory_format=fmt) for name, fmt in formats.items()}
    grid = backbone.image_grid
    with torch.inference_mode():
        codes = [encode_codes(layouts["channels_last"], pixels)[0] for pixels in batches]
        plain = [_features(layouts["contiguous"], pixels, torch.contiguous_format) for pixels in batches]
        same = all(torch.equal(c, _codes(backbone.vqgan, f)) for c, f in zip(codes, plain))
        cases = {}
        for name, vq in layouts.items():
            cases[f"encode_{name}"] = lambda vq=vq, f=formats[name]: [_features(vq, x, f) for x in batches]
            cases[f"decode_{name}"] = lambda vq=vq: [decode_codes(vq, c, grid) for c in codes]
        timings = interleaved_timings(cases, repeats)
    count = len(pictures)
    return {
        "image_size": backbone.config.image_size,
        "pictures": count,
        "same_codes": same,
        "timings": timings,
        "pictures_per_s": {name: count / value["median_s"] for name, value in timings.items()},
        "encode_speedup": timings["encode_contiguous"]["median_s"] / timings["encode_channels_last"]["median_s"],
        "decode_speedup": timings["decode_contiguous"]["median_s"] / timings["decode_channels_last"]["median_s"],
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    machine = machine_info(args.threads)
    world = ShapesWorld(SANDBOX_WORLD)
    pictures = []
    for index in range(args.pictures // 2):
        triplet = world.triplet("test", index)
        pictures += [triplet.source, triplet.target]
    sandbox = load_backbone(str(SANDBOX_BASE))
    tiny = build_tiny_backbone("chameleon")
    size = tiny.config.image_size
    results = {
        "sandbox": measure(sandbox, pictures, args.batch_size, args.repeats),
        "tiny_chameleon": measure(tiny, [p.resize((size, size)) for p in pictures], args.batch_size, args.repeats),
    }
    payload = {
        "note": "CPU figures: compare ratios within this run only.",
        "machine": {**machine, "load_average_at_end": os.getloadavg()},
        "settings": {"batch_size": args.batch_size, "repeats": args.repeats},
        "results": results,
    }
    write_json(args.out, payload)
    for name, result in results.items():
        print(
            f"{name}: encode {result['encode_speedup']:.2f}x, decode {result['decode_speedup']:.2f}x "
            f"channels-last vs contiguous, same codes: {result['same_codes']}"
        )


if __name__ == "__main__":
    main()

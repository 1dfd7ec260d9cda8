"""Fit the sandbox tokenizer (:func:`wm_hub.sandbox.tokenizer.fit_sandbox_tokenizer`) and measure it on held-out pairs.

Writes stability, cell exactness and code accuracy on ``--pairs`` held-out triplets of the sandbox world (or of the
64 px default world with ``--world default``) with the fit's wall time, to compare fitting choices::

    python benchmarks/bench_sandbox_tokenizer.py --steps 800 --out benchmarks/results/sandbox_tokenizer_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from wm_hub.data.shapes_world import WorldConfig
from wm_hub.sandbox.tokenizer import SandboxTokenizerConfig, fit_sandbox_tokenizer, measure_tokenizer
from wm_hub.sandbox.world import SANDBOX_WORLD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--world", choices=("sandbox", "default"), default="sandbox")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    world = SANDBOX_WORLD if args.world == "sandbox" else WorldConfig()
    config = SandboxTokenizerConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, progress=False)
    vqgan, log = fit_sandbox_tokenizer(world, config)
    result = {
        "world": args.world, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "fit_seconds": log["seconds"], "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(), **measure_tokenizer(vqgan, world, args.pairs),
    }  # fmt: skip
    runs = json.loads(args.out.read_text())["runs"] if args.out.is_file() else []
    args.out.write_text(json.dumps({"runs": [*runs, result]}, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

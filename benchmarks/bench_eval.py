"""CPU benchmark of the AURORA-BENCH image metrics: rows/s of L1, CLIP-I + CLIP-T and DINO, batch 1 vs batch 8.

The images are the real AURORA-BENCH sample (``../shared/data/aurora-bench-mini``: the 29 rows of the paper's
five subsets with a target; generated images when absent), the embedding models have the real shapes (CLIP
ViT-B/32: ``CLIPConfig()``; DINO ViT-B/16: ``ViTConfig()``) with random weights, saved locally and loaded through
:class:`~wm_hub.evaluation.image_metrics.ClipScorer` / ``DinoScorer`` as the runner does (nothing downloaded).
Each case scores every row (prediction = source, as the copy baseline), timed round-robin after a warm-up, median
of ``--repeats``. Only ratios within one run compare well on a shared machine. Usage::

    .venv/bin/python benchmarks/bench_eval.py [--batch-sizes 1 8] [--repeats 3] [--threads 2]
        [--out benchmarks/results/eval_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from wm_hub.evaluation.image_metrics import ClipScorer, DinoScorer, EmbeddingConfig, l1_distance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_MINI = REPO_ROOT.parent / "shared" / "data" / "aurora-bench-mini"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "eval_cpu.json"
SUBSETS = ("magicbrush", "ag", "something", "whatsup", "kubric")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds (medians are reported).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    return parser.parse_args()


def load_rows() -> tuple[list[Image.Image], list[Image.Image], list[str], str]:
    """(sources, targets, actions, where they come from)."""
    if (BENCH_MINI / "test.json").is_file():
        sources, targets, actions = [], [], []
        for row in json.loads((BENCH_MINI / "test.json").read_text()):
            paths = [BENCH_MINI / row.get(field, "") for field in ("input", "output")]
            if row["task"] in SUBSETS and row.get("output") and all(path.is_file() for path in paths):
                sources.append(Image.open(paths[0]).convert("RGB"))
                targets.append(Image.open(paths[1]).convert("RGB"))
                actions.append(row["instruction"])
        return sources, targets, actions, str(BENCH_MINI)
    generator = torch.Generator().manual_seed(0)
    images = [
        Image.fromarray(torch.randint(0, 256, (480, 640, 3), generator=generator, dtype=torch.uint8).numpy())
        for _ in range(32)
    ]
    return images[:16], images[16:], [f"move object {i} left" for i in range(16)], "generated 640x480 noise"


def save_models(root: Path) -> tuple[Path, Path]:
    """Random CLIP ViT-B/32 and DINO ViT-B/16 (real shapes) with their processors, saved under ``root``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, ViTConfig, ViTImageProcessor, ViTModel

    from wm_hub.models.tiny import build_byte_tokenizer

    torch.manual_seed(0)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    CLIPModel(CLIPConfig(text_config={"vocab_size": 49408}, vision_config={"patch_size": 32})).save_pretrained(
        root / "clip"
    )
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(
        root / "clip"
    )
    build_byte_tokenizer(specials, specials, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>").save_pretrained(
        root / "clip"
    )
    ViTModel(ViTConfig(patch_size=16, image_size=224), add_pooling_layer=False).save_pretrained(root / "dino")
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(root / "dino")
    return root / "clip", root / "dino"


def time_round_robin(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, float]]:
    """Median/min/max seconds of each case, cases interleaved so that machine load hits them alike."""
    for run in cases.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)} for name, v in times.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    sources, targets, actions, origin = load_rows()
    rows = len(sources)
    with tempfile.TemporaryDirectory() as tmp:
        clip_dir, dino_dir = save_models(Path(tmp))
        cases: dict[str, Callable[[], object]] = {"l1": lambda: [l1_distance(s, t) for s, t in zip(sources, targets)]}
        for batch_size in args.batch_sizes:
            clip = ClipScorer(EmbeddingConfig(str(clip_dir), "cpu", batch_size))
            dino = DinoScorer(EmbeddingConfig(str(dino_dir), "cpu", batch_size))
            cases[f"clip_i+clip_t batch {batch_size}"] = lambda clip=clip: (
                clip.image_similarity(sources, targets),
                clip.text_similarity(sources, actions),
            )
            cases[f"dino batch {batch_size}"] = lambda dino=dino: dino.image_similarity(sources, targets)
        timings = time_round_robin(cases, args.repeats)
    results = {
        name: {**timing, "rows_per_s": rows / timing["median_s"], "spread": timing["max_s"] / timing["min_s"]}
        for name, timing in timings.items()
    }
    first, last = args.batch_sizes[0], args.batch_sizes[-1]
    speedups = {
        metric: results[f"{metric} batch {first}"]["median_s"] / results[f"{metric} batch {last}"]["median_s"]
        for metric in ("clip_i+clip_t", "dino")
    }
    report = {
        "benchmark": "bench_eval",
        "rows": rows,
        "images": origin,
        "models": {"clip": "random CLIP ViT-B/32 shape", "dino": "random DINO ViT-B/16 shape"},
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "cases": results,
        f"speedup_batch_{last}_vs_{first}": speedups,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    for name, result in results.items():
        rate, median, spread = result["rows_per_s"], result["median_s"], result["spread"]
        print(f"{name:28s} {rate:8.2f} rows/s  (median {median:.3f} s, spread x{spread:.2f})")
    print(f"batch {last} vs {first}: " + ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""CPU benchmark of IDM annotation: pairs/s of ``wm_hub.bootstrap.annotate`` with a tiny IDM, batched vs one pair.

Builds unlabelled shapes-world video pairs in the Hub layout (``shapes_world`` builder, config ``videos``) and a
tiny random Chameleon IDM saved to disk, then runs the whole annotation path (read pairs, VQ-encode, generate,
score, write images and shards) into a fresh folder for each batch size, round-robin over ``--repeats`` rounds
(median reported, min/max kept, so that load from other processes hits every case alike). Model loading is not
counted (``pairs_per_second`` of the run summary times the annotation loop only).

It also splits one batch's time into its parts (VQ encoding, ``generate_idm_outputs``, scoring) to show what
scoring costs next to generation: teacher-forced (``action_log_likelihoods``, a second forward over the images) and
read off the generation (``output_log_likelihoods``, what annotation does), with the largest difference between
the two scores and the share of rows the generation could score. A random tiny IDM rarely ends its text within the
budget, so every row falls back to teacher forcing; ``--idm``/``--data`` time the parts on a trained IDM and its
key-frame pairs instead (e.g. ``demo_out/idm`` and ``demo_out/keyframes`` after ``make demo``). Only ratios within
one run are meaningful on CPU. Usage::

    .venv/bin/python benchmarks/bench_annotate.py [--videos 12] [--batch-sizes 1 8 16] [--max-new-tokens 24]
        [--repeats 3] [--out benchmarks/results/annotate_cpu.json]
    .venv/bin/python benchmarks/bench_annotate.py --idm demo_out/idm --data demo_out/keyframes --batch-sizes 256 \
        --out benchmarks/results/annotate_demo_idm_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_backbone.py: spinning OpenMP threads distort timings

import datasets  # noqa: E402
import torch  # noqa: E402

from wm_hub import load_backbone  # noqa: E402
from wm_hub.bootstrap.annotate import AnnotateConfig, annotate, read_annotations  # noqa: E402
from wm_hub.bootstrap.pairs import load_pairs  # noqa: E402
from wm_hub.hub.dataset_folder import build_hub_dataset  # noqa: E402
from wm_hub.inference.actions import generate_idm_outputs  # noqa: E402
from wm_hub.inference.scoring import (  # noqa: E402
    action_log_likelihoods,
    generated_score,
    output_log_likelihoods,
)
from wm_hub.models.tiny import save_tiny_model  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "annotate_cpu.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12, help="Shapes-world videos (4 pairs each).")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16], help="Batch sizes to compare.")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="Longest action in tokens.")
    parser.add_argument("--repeats", type=int, default=3, help="Rounds over the batch sizes.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file.")
    parser.add_argument("--idm", help="A trained IDM folder: time one batch's parts with it (no whole runs).")
    parser.add_argument("--data", help="Its key-frame pairs (a folder `wm-hub annotate --data` reads); with --idm.")
    args = parser.parse_args()
    if (args.idm is None) != (args.data is None):
        parser.error("--idm and --data go together")
    return args


def time_parts(idm_dir: str, data: str, batch_size: int, max_new_tokens: int, repeats: int) -> dict[str, float]:
    """Median seconds of each part of one annotation batch of ``batch_size`` pairs, and how the two scores agree."""
    idm = load_backbone(idm_dir)
    pairs = load_pairs(data)
    batch_size = min(batch_size, len(pairs.pairs))
    parts: dict[str, list[float]] = {
        "read_s": [], "vq_encode_s": [], "generate_s": [], "score_s": [], "score_from_generation_s": []
    }  # fmt: skip
    for _ in range(repeats):
        start = time.perf_counter()
        images = pairs.read(list(range(batch_size)))
        parts["read_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        ids = idm.encode_images([pair.images[0] for pair in images] + [pair.images[1] for pair in images])
        parts["vq_encode_s"].append(time.perf_counter() - start)
        sources, targets = ids[:batch_size], ids[batch_size:]
        start = time.perf_counter()
        outputs = generate_idm_outputs(idm, list(zip(sources, targets)), max_new_tokens)
        parts["generate_s"].append(time.perf_counter() - start)
        actions, rationales = [o.action for o in outputs], [o.rationale for o in outputs]
        start = time.perf_counter()
        forced = action_log_likelihoods(idm, sources, targets, actions, None, rationales)
        parts["score_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        read = output_log_likelihoods(idm, sources, targets, outputs, batch_size=None)
        parts["score_from_generation_s"].append(time.perf_counter() - start)
    medians: dict[str, float] = {name: statistics.median(values) for name, values in parts.items()}
    medians["score_over_generate"] = medians["score_s"] / medians["generate_s"]
    medians["score_from_generation_over_generate"] = medians["score_from_generation_s"] / medians["generate_s"]
    medians["max_score_difference"] = max(abs(a.total - b.total) for a, b in zip(forced, read))
    examples = [idm.build_idm_sequence(s, t, o.action, o.rationale) for s, t, o in zip(sources, targets, outputs)]
    scored = [generated_score(example, output) is not None for example, output in zip(examples, outputs)]
    medians["rows_scored_from_generation"] = sum(scored) / len(outputs)
    return medians


def main() -> None:
    args = parse_args()
    datasets.disable_progress_bars()
    if args.idm is not None:
        parts = time_parts(args.idm, args.data, max(args.batch_sizes), args.max_new_tokens, args.repeats)
        print(f"one batch of {max(args.batch_sizes)}: " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))
        payload = {
            "note": "CPU seconds of one annotation batch of a trained IDM: compare within this run only.",
            "machine": {"torch": torch.__version__, "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()},
            "settings": {"idm": args.idm, "data": args.data, "max_new_tokens": args.max_new_tokens},
            f"batch_{max(args.batch_sizes)}_parts": parts,
        }
        write_result(args.out, payload)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        idm_dir = str(work / "tiny-idm")
        save_tiny_model("chameleon", idm_dir)
        data = str(work / "pairs")
        build = build_hub_dataset("shapes_world", data, config_name="videos", num_train=args.videos, num_test=1)
        num_pairs = build.num_examples["train"]
        runs: dict[int, list[float]] = {size: [] for size in args.batch_sizes}
        rows: dict[int, list[dict]] = {}
        for round_index in range(args.repeats):
            for size in args.batch_sizes:
                out = work / f"out-{size}-{round_index}"
                config = AnnotateConfig(
                    idm=idm_dir, data=data, out=str(out), batch_size=size, max_new_tokens=args.max_new_tokens
                )
                summary = annotate(config)
                runs[size].append(summary["pairs_per_second"])
                rows[size] = read_annotations(out)
        parts = time_parts(idm_dir, data, max(args.batch_sizes), args.max_new_tokens, args.repeats)
    base = args.batch_sizes[0]
    results = {}
    for size, values in runs.items():
        same = sum(row["action"] == other["action"] for row, other in zip(rows[size], rows[base]))
        results[f"batch_{size}"] = {
            "pairs_per_s": statistics.median(values),
            "min": min(values),
            "max": max(values),
            f"speedup_vs_batch_{base}": statistics.median(values) / statistics.median(runs[base]),
            f"same_actions_as_batch_{base}": same / num_pairs,
        }
    payload = {
        "note": "CPU figures with a random tiny IDM: compare ratios within this run only.",
        "machine": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "settings": {
            "pairs": num_pairs,
            "videos": args.videos,
            "max_new_tokens": args.max_new_tokens,
            "repeats": args.repeats,
            "idm": "tiny random chameleon (wm_hub.models.tiny)",
        },
        "results": results,
        f"batch_{max(args.batch_sizes)}_parts": parts,
    }
    for name, result in results.items():
        print(f"{name:<10} {result['pairs_per_s']:8.2f} pairs/s  (min {result['min']:.2f}, max {result['max']:.2f})")
    print(f"one batch of {max(args.batch_sizes)}: " + ", ".join(f"{key} {value:.3f}" for key, value in parts.items()))
    write_result(args.out, payload)


def write_result(out: Path, payload: dict) -> None:
    """Write ``payload`` to ``out`` atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

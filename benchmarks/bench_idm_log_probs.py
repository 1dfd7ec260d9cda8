"""CPU benchmark of the memory an IDM's generation takes to give every written token its log-probability.

``generate_idm_outputs`` (annotation, the IDM pipeline, the reasoning verifier) scores what the IDM writes from the
generation itself. It used to ask ``generate`` for every step's raw logits (``output_logits=True``) and read the
written tokens' log-probabilities off them at the end, which keeps ``pairs x steps x vocabulary`` float32 values
alive: 2.4 GB for 64 pairs, 144 steps and Chameleon's 65536 tokens. It now records them as it goes
(``TokenLogProbs``, a forward hook), keeping one step's logits.

Each case runs in its own process on a tiny random Chameleon whose vocabulary is Chameleon-7B's size (65536 tokens:
a 65272-code VQ and the text tokens), with image tokens suppressed as annotation does: the peak resident
memory above the resident memory just before the call (``VmHWM``, reset), the call's seconds and, to check that
both read the same numbers, the largest difference between their log-probabilities. Usage::

    .venv/bin/python benchmarks/bench_idm_log_probs.py [--pairs 64] [--steps 144]
        [--out benchmarks/results/idm_log_probs_cpu.json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_backbone.py: spinning OpenMP threads distort timings

import torch  # noqa: E402
from bench_backbone import machine_info, write_json  # noqa: E402

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig  # noqa: E402
from wm_hub.inference.actions import generate_idm_outputs  # noqa: E402
from wm_hub.inference.generation import left_pad  # noqa: E402
from wm_hub.models.tiny import TinySpec, build_tiny_backbone  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "idm_log_probs_cpu.json"
VOCABULARY = 65536  # Chameleon-7B's
CASES = ("recorded_per_step", "output_logits")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=64, help="Pairs in the one generate call.")
    parser.add_argument(
        "--steps", type=int, default=144, help="Tokens generated (an IDM's action + rationale budget)."
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file.")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one case, in a child process
    return parser.parse_args()


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> float:
    """Start a new peak of resident memory (Linux: ``5`` to ``/proc/self/clear_refs``) once the allocator has given
    its free memory back; the resident MB now."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def run_case(case: str, pairs: int, steps: int) -> dict:
    """One case in this process: the call's peak memory growth, seconds and the log-probabilities it gives."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    idm = build_tiny_backbone("chameleon", TinySpec(num_image_codes=VOCABULARY - 264))
    world = ShapesWorld(WorldConfig(image_size=idm.config.image_size))
    triplets = [world.triplet("test", index % 32) for index in range(pairs)]
    batch = [(t.source, t.target) for t in triplets]
    pictures = [image for pair in batch for image in pair]  # encoded a few at a time: no large transient to free
    images = [ids for start in range(0, len(pictures), 8) for ids in idm.images_as_ids(pictures[start : start + 8])]
    batch = list(zip(images[::2], images[1::2]))
    generate_idm_outputs(idm, batch[:2], max_new_tokens=4)  # warm-up: allocator and kernels
    before = reset_peak_rss()
    start = time.perf_counter()
    if case == "recorded_per_step":
        log_probs = [list(output.token_log_probs) for output in generate_idm_outputs(idm, batch, steps)]
    else:  # what generate_idm_outputs did before: keep every step's logits, read the tokens' off them at the end
        prompts = [idm.build_idm_sequence(source, target).input_ids for source, target in batch]
        input_ids, attention_mask = left_pad(prompts, idm.pad_token_id)
        output = idm.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            max_new_tokens=steps,
            eos_token_id=idm.eos_token_id,
            pad_token_id=idm.pad_token_id,
            suppress_tokens=idm.image_token_ids.tolist(),
            output_logits=True,
            return_dict_in_generate=True,
        )
        generated = output.sequences[:, input_ids.shape[1] :]
        log_probs = torch.stack(
            [
                torch.log_softmax(logits.float(), dim=-1).gather(-1, generated[:, step, None])[:, 0]
                for step, logits in enumerate(output.logits)
            ],
            dim=1,
        ).tolist()
    seconds = time.perf_counter() - start
    return {"peak_growth_mb": _status_mb("VmHWM") - before, "seconds": seconds, "log_probs": log_probs}


def main() -> None:
    args = parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.pairs, args.steps)))
        return
    results = {}
    for case in CASES:
        command = [sys.executable, __file__, "--case", case, "--pairs", str(args.pairs), "--steps", str(args.steps)]
        print(f"running {case}...", flush=True)
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results[case] = json.loads(done.stdout.strip().splitlines()[-1])
    reference, recorded = results["output_logits"].pop("log_probs"), results["recorded_per_step"].pop("log_probs")
    largest = max(abs(a - b) for row_a, row_b in zip(reference, recorded) for a, b in zip(row_a, row_b))
    steps = {len(row) for row in recorded}  # a row that ends early is padded to the longest
    for case, result in results.items():
        print(f"  {case:<18} peak +{result['peak_growth_mb']:8.1f} MB   {result['seconds']:6.2f} s")
    print(f"  largest log-probability difference {largest:.2e}")
    write_json(
        args.out,
        {
            "note": "CPU, tiny random Chameleon with Chameleon-7B's 65536-token vocabulary; peak resident memory "
            "growth during one generate call of every pair, one thread.",
            "machine": machine_info(1),
            "settings": {"pairs": args.pairs, "steps": sorted(steps), "vocabulary": VOCABULARY},
            "results": results,
            "logits_kept_mb": {
                "recorded_per_step": args.pairs * VOCABULARY * 4 / 2**20,
                "output_logits": args.pairs * args.steps * VOCABULARY * 4 / 2**20,
            },
            "largest_log_prob_difference": largest,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""CPU benchmark of best-of-N verification through ``pipeline("forward-dynamics")`` with tiny random backbones.

For each requested tiny family, the FDM is the tiny preset and the IDM verifier a second tiny model of the same
family with other random weights (the paper's FDM and IDM share their backbone). Measured, all through the real
pipeline path (VQ encoding of the source, prompt building, ``generate_images``, VQ decoding, IDM scoring), each case
timed round-robin after a warm-up (median of ``--repeats``):

- ``one_sample``: ``pipe(image, action)``, one candidate, no verifier;
- ``best_of_N``: ``pipe(image, action, num_candidates=N, verifier=idm)``: ONE batched generation of the N candidates
  sharing the prompt, then ONE batched IDM forward scoring all N (the IDM has its own VQ: candidates are decoded
  and re-encoded);
- ``best_of_N_shared_vq``: the same with an IDM that shares the FDM's image tokenizer (here the same backbone, as
  in the paper): the IDM scores the sampled ids and the source ids the FDM read (no VQ at all), reading the
  candidates' shared start (the source) once; only the winner is decoded. The FDM reads the prompt once for its N
  candidates in both cases (``generate_images(share_prefill=True)``);
- ``N_sequential_samples``: N calls of ``one_sample`` (what a loop over single samples costs, without scoring);
- ``sequential_best_of_N``: N single-sample calls, each followed by its own IDM score (best-of-N done one at a time);
- the parts of best-of-N: ``generation_N`` (``generate_images`` with N candidates, no decoding), ``vq_decode_N``
  (the FDM's VQ decoding the N candidates), ``idm_vq_encode_N`` (the IDM's VQ encoding them), ``scoring_N``
  (``idm.score`` of N candidates: encoding + one forward) and ``scoring_N_sequential`` (one call per candidate).

``best_of_N_shared_vq_over_one_sample_paired`` is the median over rounds of the ratio of the two calls made one
after the other in the same round, which cancels most of a shared machine's slow periods (the plain ratio divides
medians taken over all rounds). Only the ratios within one run mean anything: tiny models on a shared CPU are
dominated by per-step overhead, which is exactly the regime where batching the N candidates pays. ``--threads``
and OpenMP's waiting matter: with 2 threads and passive waiting (this script's default, see bench_backbone.py)
every matrix product of 8 rows wakes the sleeping second thread (1-row products stay on one thread), so 8 rows cost
~3x one; with 1 thread, or 2 spinning ones (``OMP_WAIT_POLICY=ACTIVE``), they cost ~1.3x one.

The tiny presets write text one byte per token (the IDM's question and an action: ~90 tokens per scored row, where a
real tokenizer writes ~20), which inflates the verifier's share. ``--text bpe`` gives the tiny tokenizers byte-level
BPE merges fitted on the shapes world's texts and the prompt instructions (``fit_byte_merges`` asked for up to 256
merges; the trainer stops at 182, once every word of the corpus is one token: an action is ~8 tokens). Usage::

    .venv/bin/python benchmarks/bench_verification.py [--archs chameleon liquid emu3] [--candidates 8] [--repeats 3]
        [--threads 2] [--text bytes|bpe] [--out benchmarks/results/verification_cpu.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

# Before torch loads OpenMP (see bench_backbone.py: spinning OpenMP threads on a shared 2-core machine cost 30-70x).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import transformers  # noqa: E402
from bench_backbone import interleaved_timings, paired_ratio, write_json  # noqa: E402
from transformers import pipeline  # noqa: E402

import wm_hub  # noqa: E402, F401  (registers the pipeline tasks)
from wm_hub.data.shapes_world import ShapesWorld, WorldConfig  # noqa: E402
from wm_hub.inference.generation import generate_images  # noqa: E402
from wm_hub.models.tiny import TINY_PRESETS, TinySpec, build_tiny_backbone, fit_byte_merges  # noqa: E402
from wm_hub.sandbox.text import sandbox_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "verification_cpu.json"
SEED = 0
BPE_VOCAB_SIZE = 512  # 256 byte symbols + up to 256 merges (182 fit the shapes world's texts)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["chameleon", "liquid", "emu3"], help="Tiny families to run.")
    parser.add_argument("--candidates", type=int, default=8, help="N of best-of-N.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds (medians are reported).")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads.")
    parser.add_argument(
        "--text",
        choices=["bytes", "bpe"],
        default="bytes",
        help="Text tokenizer of the tiny models: one byte per token (the presets') or BPE fitted on the world's texts",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    return parser.parse_args()


def text_merges(text: str) -> tuple[tuple[str, str], ...]:
    """The tiny models' text merges: none for ``bytes``, 256 fitted on the shapes world's texts for ``bpe``."""
    if text == "bytes":
        return ()
    return fit_byte_merges(sandbox_corpus(WorldConfig(image_size=TinySpec().image_size)), BPE_VOCAB_SIZE)


def bench_arch(arch: str, candidates: int, repeats: int, merges: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """All cases for one tiny family; times in seconds, ratios against ``one_sample`` and ``best_of_N``."""
    fdm_backbone = build_tiny_backbone(arch, TinySpec(seed=0, text_merges=merges))
    idm_backbone = build_tiny_backbone(arch, TinySpec(seed=1, text_merges=merges))
    fdm = pipeline("forward-dynamics", model=fdm_backbone, device="cpu")
    idm = pipeline("inverse-dynamics", model=idm_backbone, device="cpu")
    # an IDM that shares the FDM's image tokenizer (here: the same backbone) scores the sampled ids directly
    shared_vq_idm = pipeline("inverse-dynamics", model=fdm_backbone, device="cpu")
    example = ShapesWorld(WorldConfig(image_size=fdm_backbone.config.image_size)).triplet("test", 0)
    source, action = example.source, example.action.text
    prompt = fdm_backbone.build_fdm_sequence(source, action).input_ids
    n = candidates
    sample_ids = generate_images(fdm_backbone, [prompt], n, seed=SEED, decode=False).image_ids[0]
    samples = fdm_backbone.decode_images(sample_ids)

    def sequential_samples() -> None:
        for index in range(n):
            fdm(source, action, seed=SEED + index)

    def sequential_best_of_n() -> None:
        for index in range(n):
            result = fdm(source, action, seed=SEED + index)
            idm.score(source, result["image"], action)

    def sequential_scoring() -> None:
        for candidate in samples:
            idm.score(source, candidate, action)

    cases = {  # one_sample and best_of_N_shared_vq side by side: their per-round ratio is paired
        "one_sample": lambda: fdm(source, action, seed=SEED),
        f"best_of_{n}_shared_vq": lambda: fdm(source, action, num_candidates=n, verifier=shared_vq_idm, seed=SEED),
        f"best_of_{n}": lambda: fdm(source, action, num_candidates=n, verifier=idm, seed=SEED),
        f"{n}_sequential_samples": sequential_samples,
        f"sequential_best_of_{n}": sequential_best_of_n,
        f"generation_{n}": lambda: generate_images(fdm_backbone, [prompt], n, seed=SEED, decode=False),
        f"vq_decode_{n}": lambda: fdm_backbone.decode_images(sample_ids),
        f"idm_vq_encode_{n}": lambda: idm_backbone.encode_images(samples),
        f"scoring_{n}": lambda: idm.score(source, samples, action),
        f"scoring_{n}_sequential": sequential_scoring,
    }
    timings = interleaved_timings(cases, repeats)
    median = {name: timing["median_s"] for name, timing in timings.items()}
    best = median[f"best_of_{n}"]
    ratios = {
        f"best_of_{n}_over_one_sample": best / median["one_sample"],
        f"best_of_{n}_shared_vq_over_best_of_{n}": median[f"best_of_{n}_shared_vq"] / best,
        f"best_of_{n}_shared_vq_over_one_sample": median[f"best_of_{n}_shared_vq"] / median["one_sample"],
        f"best_of_{n}_shared_vq_over_one_sample_paired": paired_ratio(
            timings[f"best_of_{n}_shared_vq"]["samples_s"], timings["one_sample"]["samples_s"]
        ),
        f"{n}_sequential_samples_over_one_sample": median[f"{n}_sequential_samples"] / median["one_sample"],
        f"{n}_sequential_samples_over_best_of_{n}": median[f"{n}_sequential_samples"] / best,
        f"sequential_best_of_{n}_over_best_of_{n}": median[f"sequential_best_of_{n}"] / best,
        f"generation_{n}_share_of_best_of_{n}": median[f"generation_{n}"] / best,
        f"vq_decode_{n}_share_of_best_of_{n}": median[f"vq_decode_{n}"] / best,
        f"idm_vq_encode_{n}_share_of_best_of_{n}": median[f"idm_vq_encode_{n}"] / best,
        f"scoring_share_of_best_of_{n}": median[f"scoring_{n}"] / best,
        f"scoring_{n}_sequential_over_batched": median[f"scoring_{n}_sequential"] / median[f"scoring_{n}"],
    }
    return {
        "image_size": fdm_backbone.config.image_size,
        "image_seq_len": fdm_backbone.image_seq_len,
        "generated_tokens_per_image": len(fdm_backbone.generation_layout()),
        "fdm_prompt_len": len(prompt),
        "idm_sequence_len": len(fdm_backbone.build_idm_sequence(source, example.target, action).input_ids),
        "vocab_size": len(fdm_backbone.processor.tokenizer),
        "timings": timings,
        "ratios": ratios,
    }


def print_report(results: dict[str, Any], candidates: int) -> None:
    n = candidates
    for arch, result in results.items():
        print(
            f"\n{arch} (image {result['image_seq_len']} tokens, FDM prompt {result['fdm_prompt_len']} tokens, "
            f"IDM sequence {result['idm_sequence_len']} tokens)"
        )
        for name, timing in result["timings"].items():
            spread = timing["max_s"] / timing["min_s"]
            print(f"  {name:<28} {timing['median_s'] * 1000:9.1f} ms   (spread {spread:.2f})")
        for name, value in result["ratios"].items():
            print(f"  {name:<44} {value:6.2f}")
    print(f"\nbest_of_{n}: one generate call of {n} candidates + one IDM forward of {n} rows.")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_start = os.getloadavg()
    results, skipped = {}, []
    merges = text_merges(args.text)
    for arch in args.archs:
        if arch not in TINY_PRESETS:
            print(f"note: no tiny preset for {arch!r} (have {sorted(TINY_PRESETS)}); skipped")
            skipped.append(arch)
            continue
        print(f"running {arch}...", flush=True)
        results[arch] = bench_arch(arch, args.candidates, args.repeats, merges)
    print_report(results, args.candidates)
    runtime = time.perf_counter() - started
    write_json(
        args.out,
        {
            "note": "CPU figures with random tiny FDM and IDM: compare ratios within this run only.",
            "machine": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "torch_threads": args.threads,
                "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
                "load_average_at_start": load_start,
                "load_average_at_end": os.getloadavg(),
            },
            "settings": {
                "candidates": args.candidates,
                "repeats": args.repeats,
                "seed": SEED,
                "fdm": "tiny preset, seed 0",
                "idm": "tiny preset of the same family, seed 1",
                "data": "shapes world test triplet 0",
                "text": args.text,
                "text_merges": len(merges),
            },
            "skipped_archs": skipped,
            "results": results,
            "runtime_s": runtime,
        },
    )
    print(f"\ntotal runtime {runtime:.1f} s; wrote {args.out}")


if __name__ == "__main__":
    main()

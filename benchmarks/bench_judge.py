"""CPU benchmark of the GPT-4o-as-judge metric against the local OpenAI-compatible server (tests/openai_server.py).

Rows are the real AURORA-BENCH sample (``../shared/data/aurora-bench-mini``: the rows of the paper's five subsets
with both images; generated images when absent), the ground-truth target standing in for the prediction, through
:func:`wm_hub.evaluation.judge.judge_rows` and the real ``openai`` client. The server holds every request for
``--latency`` seconds (a stand-in for the endpoint's answer time; GPT-4o takes seconds per image pair), so the
cases show what bounded concurrency buys and what the client side costs:

- ``sent``: rows/s with ``max_concurrency`` in ``--concurrency`` (default 1 and 8), nothing cached;
- ``overhead``: the same with zero latency at concurrency 1 (PNG encoding, hashing, JSON, HTTP on this machine);
- ``cached``: a rerun served from the reply cache (no request sent; the server's count is checked).

Each case is timed ``--repeats`` times (median reported, min/max kept). Usage::

    .venv/bin/python benchmarks/bench_judge.py [--latency 0.5] [--concurrency 1 8] [--repeats 3]
        [--out benchmarks/results/judge_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from openai_server import OpenAIServer, Reply  # noqa: E402

from wm_hub.evaluation.judge import JudgeConfig, JudgeRequest, judge_rows  # noqa: E402

BENCH_MINI = REPO_ROOT.parent / "shared" / "data" / "aurora-bench-mini"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "judge_cpu.json"
SUBSETS = ("magicbrush", "ag", "something", "whatsup", "kubric")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.5, help="Seconds the server holds each request.")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds (medians are reported).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    return parser.parse_args()


def load_requests() -> tuple[list[JudgeRequest], str]:
    """Judge requests of the benchmark sample (prediction = source), and where they come from."""
    if (BENCH_MINI / "test.json").is_file():
        requests = []
        for index, row in enumerate(json.loads((BENCH_MINI / "test.json").read_text())):
            paths = [BENCH_MINI / row.get(field, "") for field in ("input", "output")]
            if row["task"] in SUBSETS and row.get("output") and all(path.is_file() for path in paths):
                source, target = (_open_rgb(path) for path in paths)
                requests.append(JudgeRequest(f"{row['task']}/{index}", row["instruction"], source, target))
        return requests, str(BENCH_MINI)
    requests = [
        JudgeRequest(
            f"generated/{index}",
            f"move object {index}",
            Image.effect_noise((512, 512), 40 + index).convert("RGB"),
            Image.effect_noise((512, 512), 60 + index).convert("RGB"),
        )
        for index in range(24)
    ]
    return requests, "generated 512x512 noise images"


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def time_case(server: OpenAIServer, requests: list[JudgeRequest], config: JudgeConfig, repeats: int) -> dict:
    """Median/min/max seconds of judging every request (a fresh cache each round unless ``config`` has one)."""
    seconds = []
    for _ in range(repeats):
        before = len(server.chat_requests())
        start = time.perf_counter()
        results = judge_rows(requests, config, progress=False)
        seconds.append(time.perf_counter() - start)
        assert all(result.parsed for result in results)
        sent = len(server.chat_requests()) - before
    median = statistics.median(seconds)
    return {
        "rows": len(requests),
        "requests_sent_last_round": sent,
        "median_s": median,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "rows_per_s": len(requests) / median,
        "max_in_flight": server.max_in_flight,
    }


def main() -> None:
    args = parse_args()
    requests, source = load_requests()
    results: dict = {
        "benchmark": "judge",
        "rows_from": source,
        "latency_s": args.latency,
        "repeats": args.repeats,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "cases": {},
    }
    with OpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
        os.environ["OPENAI_API_KEY"] = server.api_key

        def config(concurrency: int, cache_dir: str | None = None) -> JudgeConfig:
            return JudgeConfig(base_url=server.base_url, max_concurrency=concurrency, cache_dir=cache_dir)

        judge_rows(requests[:2], config(1), progress=False)  # warm-up (imports, connection)
        for concurrency in args.concurrency:
            server.reset()
            server.responder = lambda body: Reply(delay=args.latency)
            results["cases"][f"sent_c{concurrency}"] = time_case(server, requests, config(concurrency), args.repeats)
        server.reset()
        server.responder = lambda body: Reply()
        results["cases"]["overhead_c1"] = time_case(server, requests, config(1), args.repeats)
        cache_dir = str(Path(tmp) / "cache")
        judge_rows(requests, config(8, cache_dir), progress=False)
        server.reset()
        results["cases"]["cached"] = time_case(server, requests, config(8, cache_dir), args.repeats)
        assert results["cases"]["cached"]["requests_sent_last_round"] == 0
    cases = results["cases"]
    low, high = min(args.concurrency), max(args.concurrency)
    results["speedup_concurrency"] = cases[f"sent_c{high}"]["rows_per_s"] / cases[f"sent_c{low}"]["rows_per_s"]
    results["ideal_speedup"] = min(high, len(requests)) / low
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(f".{args.out.name}.tmp")
    tmp_out.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    print(f"{len(requests)} rows from {source}; server latency {args.latency} s")
    for name, case in cases.items():
        print(
            f"{name:>12}: {case['rows_per_s']:8.1f} rows/s (median {case['median_s']:.3f} s, in flight <= "
            f"{case['max_in_flight']}, sent {case['requests_sent_last_round']})"
        )
    print(
        f"concurrency {high} vs {low}: {results['speedup_concurrency']:.2f}x (ideal {results['ideal_speedup']:.2f}x)"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

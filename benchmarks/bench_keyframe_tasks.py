"""Key frames of a video tree in one process against datatrove tasks over several worker processes.

The tree: the shared real videos (``bikes.mp4``, ``carphone_pristine.mp4``) and ``--sandbox-videos`` generated
shapes-world videos (the demo's). Each configuration writes a fresh output folder per round, the two alternate for
``--repeats`` rounds, and the ratio of the median wall times is the figure (only ratios within one run compare on a
shared machine)::

    python benchmarks/bench_keyframe_tasks.py --out benchmarks/results/keyframe_tasks_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from wm_hub.bootstrap.keyframe_pipeline import keyframe_runner
from wm_hub.bootstrap.keyframes import KeyframeExtractionConfig, extract_keyframes
from wm_hub.sandbox.videos import write_sandbox_videos

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def run(tree: Path, out: Path, executor: str | None, tasks: int, workers: int) -> tuple[float, list[dict]]:
    config = KeyframeExtractionConfig(out=str(out), videos=[str(tree)], executor=executor, tasks=tasks)
    config.workers = workers
    start = time.perf_counter()
    extract_keyframes(config, keyframe_runner(config) if executor else None)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "keyframes.jsonl").read_text().splitlines()]
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-videos", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        write_sandbox_videos(tree / "sandbox", args.sandbox_videos)
        (tree / "real").mkdir()
        for video in sorted(SHARED_VIDEOS.glob("*.mp4")):
            shutil.copy(video, tree / "real" / video.name)
        one_times, task_times, same = [], [], []
        for round_ in range(args.repeats):
            one_s, one_rows = run(tree, Path(tmp) / f"one-{round_}", None, 1, 1)
            tasks_s, task_rows = run(tree, Path(tmp) / f"tasks-{round_}", "local", args.tasks, args.workers)
            one_times.append(one_s)
            task_times.append(tasks_s)
            same.append(one_rows == task_rows)
    one_s, tasks_s = statistics.median(one_times), statistics.median(task_times)
    record = {
        "videos": len(one_rows),
        "sandbox_videos": args.sandbox_videos,
        "real_videos": [video.name for video in sorted(SHARED_VIDEOS.glob("*.mp4"))],
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "repeats": args.repeats,
        "one_process_s": {"median": round(one_s, 2), "all": [round(t, 2) for t in one_times]},
        "datatrove": {
            "tasks": args.tasks,
            "workers": args.workers,
            "seconds": {"median": round(tasks_s, 2), "all": [round(t, 2) for t in task_times]},
        },
        "speed_up": round(one_s / tasks_s, 2),
        "same_rows": all(same),
    }
    print(json.dumps(record, indent=2))
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

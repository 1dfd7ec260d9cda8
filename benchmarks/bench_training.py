"""CPU benchmark of a training step: the weighted loss vs TRL's plain loss, pre-tokenised data vs tokenising inside.

With a tiny backbone and shapes-world FDM triplets, times optimizer steps (wall time between consecutive steps, so
the data loading and collation of each step are included) of

- ``plain``: TRL's ``SFTTrainer`` with its own collator on the pre-tokenised ``input_ids``/``labels``;
- ``weighted``: ``FDMTrainer`` on the same rows with their recognition ``token_weights``;
- ``tokenise_in_step``: ``FDMTrainer`` on the raw triplets, whose collator runs pre-tokenisation (VQ encoder,
  sequence building, recognition weights) on each batch, as training without pre-tokenisation would.

Cases run round-robin for ``--rounds`` rounds of ``--steps`` steps; the first ``--warmup`` steps of each run are
dropped, and the last (the data loader's one-batch look-ahead leaves it nothing to collate). Medians are reported;
only the ratios are meaningful on CPU. Usage::

    .venv/bin/python benchmarks/bench_training.py [--arch chameleon] [--batch-size 8] [--steps 20] [--rounds 3]
        [--out benchmarks/results/training_cpu.json]
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
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_backbone.py: spinning OpenMP threads distort timings

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from wm_hub.data.collator import WorldModelCollator  # noqa: E402
from wm_hub.data.schema import TRIPLET_FEATURES  # noqa: E402
from wm_hub.data.shapes_world import ShapesWorld  # noqa: E402
from wm_hub.models.base import Backbone  # noqa: E402
from wm_hub.models.tiny import build_tiny_backbone  # noqa: E402
from wm_hub.training.pretokenize import PretokenizeConfig, _tokenize_batch, pretokenize  # noqa: E402
from wm_hub.training.trainers import FDMTrainer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "training_cpu.json"
CASES = ("plain", "weighted", "tokenise_in_step")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="chameleon", help="Tiny preset to train.")
    parser.add_argument("--batch-size", type=int, default=8, help="Rows per optimizer step.")
    parser.add_argument("--steps", type=int, default=20, help="Optimizer steps per run.")
    parser.add_argument("--warmup", type=int, default=2, help="Steps dropped at the start of each run.")
    parser.add_argument("--rounds", type=int, default=3, help="Round-robin rounds over the cases.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file.")
    return parser.parse_args()


class StepTimer(TrainerCallback):
    """Wall time between consecutive optimizer steps (data loading and collation included)."""

    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())

    def intervals(self, warmup: int) -> list[float]:
        """Step times after ``warmup`` steps, without the last (the loader fetched its batch one step earlier)."""
        return [later - earlier for earlier, later in zip(self.ends, self.ends[1:])][warmup:-1]


class TokenizingCollator:
    """Pre-tokenises each batch of raw triplets inside the step, then pads it like the pre-tokenised path."""

    def __init__(self, backbone: Backbone, config: PretokenizeConfig):
        self.backbone, self.config = backbone, config
        self.pad = WorldModelCollator(backbone.pad_token_id)

    def __call__(self, triplets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {key: [triplet[key] for triplet in triplets] for key in ("source", "target", "action")}
        columns = _tokenize_batch(batch, self.backbone, self.config)
        return self.pad([dict(zip(columns, values)) for values in zip(*columns.values())])


def run_case(case: str, arch: str, triplets, rows, args: argparse.Namespace, work: Path) -> tuple[list[float], float]:
    """Train ``args.steps`` steps of ``case`` on a fresh backbone; the step intervals after warm-up, the mean loss."""
    backbone = build_tiny_backbone(arch)
    timer = StepTimer()
    config = SFTConfig(
        output_dir=str(work / case),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=1e-3,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        report_to=[],
        save_strategy="no",
        logging_steps=args.steps,
        disable_tqdm=True,
        seed=0,
    )
    if case == "plain":
        config.dataset_kwargs = {"skip_prepare_dataset": True}
        trainer = SFTTrainer(
            model=backbone.model,
            args=config,
            train_dataset=rows.select_columns(["input_ids", "labels"]),
            processing_class=backbone.tokenizer,
            callbacks=[timer],
        )
    elif case == "weighted":
        trainer = FDMTrainer(backbone=backbone, args=config, train_dataset=rows, callbacks=[timer])
    else:
        collator = TokenizingCollator(backbone, PretokenizeConfig(task="fdm", loss_weighting="l2"))
        trainer = FDMTrainer(
            backbone=backbone, args=config, train_dataset=triplets, data_collator=collator, callbacks=[timer]
        )
    loss = trainer.train().training_loss
    return timer.intervals(args.warmup), loss


def main() -> None:
    args = parse_args()
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    rows_needed = args.batch_size * args.steps
    world = ShapesWorld()
    triplets = datasets.Dataset.from_list(list(world.triplet_rows("train", rows_needed)), features=TRIPLET_FEATURES)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = pretokenize(triplets, build_tiny_backbone(args.arch), PretokenizeConfig(task="fdm"), cache_dir=work)
        intervals: dict[str, list[float]] = {case: [] for case in CASES}
        losses: dict[str, float] = {}
        for _ in range(args.rounds):
            for case in CASES:
                case_intervals, losses[case] = run_case(case, args.arch, triplets, rows, args, work)
                intervals[case] += case_intervals
    # Same rows, same seed: tokenising inside the step must train exactly like the pre-tokenised weighted run.
    if losses["tokenise_in_step"] != losses["weighted"]:
        raise RuntimeError(f"tokenise_in_step and weighted runs differ: {losses}")
    step_s = {case: statistics.median(values) for case, values in intervals.items()}
    weighted_ratio = step_s["weighted"] / step_s["plain"]
    tokenise_ratio = step_s["tokenise_in_step"] / step_s["weighted"]
    payload = {
        "note": "CPU figures: compare ratios within this run only.",
        "machine": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "settings": {
            "arch": args.arch,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "tokens_per_row": sum(len(ids) for ids in rows["input_ids"]) / len(rows),
            "data": "shapes world FDM triplets, l2 recognition weights",
        },
        "step_s": {
            case: {"median": step_s[case], "min": min(values), "max": max(values), "samples": len(values)}
            for case, values in intervals.items()
        },
        "training_loss": losses,
        "weighted_vs_plain_step_time_ratio": weighted_ratio,
        "weighted_vs_plain_min_step_time_ratio": min(intervals["weighted"]) / min(intervals["plain"]),
        "weighted_vs_plain_goal": 1.05,
        "tokenise_in_step_vs_pretokenised_step_time_ratio": tokenise_ratio,
    }
    min_key = "weighted_vs_plain_min_step_time_ratio"
    print(f"{'case':<18} {'median ms/step':>15} {'min':>8} {'max':>8}")
    for case, values in intervals.items():
        print(f"{case:<18} {1e3 * step_s[case]:>15.1f} {1e3 * min(values):>8.1f} {1e3 * max(values):>8.1f}")
    print(f"weighted / plain: {weighted_ratio:.3f} (goal <= 1.05); fastest steps: {payload[min_key]:.3f}")
    print(f"tokenise in step / pre-tokenised: {tokenise_ratio:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

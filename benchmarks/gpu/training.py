"""FDM fine-tuning throughput at the real Chameleon-7B shape: LoRA, ~2.1k-token sequences, the weighted loss.

Builds the Chameleon-7B shape with RANDOM weights in bf16 on the GPU (``backbone.py``'s ``build_backbones``) and
trains it with wm-hub's own ``FDMTrainer`` (TRL's ``SFTTrainer`` with the recognition-weighted loss), LoRA on the
attention projections of the text layers as the recipes do, on FDM rows of random 512 px token grids: ``[bos] source
(1024 codes) action [sep] target (1024 codes) [eos]``, about 2.1k tokens, with target weights in [0, 1) as
recognition weighting gives. Measured after ``--warmup-steps``:

- ``tokens_per_s``: supervised and context tokens through forward + backward + optimizer per second;
- ``step_s``: median seconds per optimizer step;
- ``peak_memory_gib``: ``torch.cuda.max_memory_allocated`` over the run (with activation checkpointing, the
  recipes' default for 7B).

Results go to ``$OUT/training_gpu.json`` when ``OUT`` is set, else ``benchmarks/results/``. ``--tiny`` runs the same
code on the CPU with the tiny shape (CI smoke test, ~20 s; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import datasets  # noqa: E402
import torch  # noqa: E402
from backbone import ACTION, REAL_7B, TINY, build_backbones, machine_info, write_json  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from wm_hub.training.configs import WorldModelSFTConfig  # noqa: E402
from wm_hub.training.trainers import TEXT_ATTENTION_TARGETS, FDMTrainer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="Tiny shape on the CPU (smoke test).")
    parser.add_argument("--batch-size", type=int, default=2, help="Rows per device per step.")
    parser.add_argument("--warmup-steps", type=int, default=2, help="Steps before timing (allocation, kernels).")
    parser.add_argument("--steps", type=int, default=6, help="Timed optimizer steps.")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--no-checkpointing", action="store_true", help="Turn activation checkpointing off.")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: $OUT or benchmarks/results).")
    return parser.parse_args()


def default_out(tiny: bool) -> Path:
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO_ROOT / "benchmarks" / "results"
    return folder / ("training_gpu_tiny.json" if tiny else "training_gpu.json")


def fdm_rows(backbone, count: int) -> datasets.Dataset:
    """``count`` FDM rows of random source/target grids; target weights in [0, 1), everything else 1."""
    generator = torch.Generator().manual_seed(SEED)
    image_ids = backbone.image_token_ids
    rows = []
    for _ in range(count):
        source, target = image_ids[torch.randint(len(image_ids), (2, backbone.image_seq_len), generator=generator)]
        example = backbone.build_fdm_sequence(source, ACTION, target)
        weights = torch.ones(len(example.input_ids))
        weights[example.target_image_positions] = torch.rand(len(example.target_image_positions), generator=generator)
        rows.append({"input_ids": example.input_ids, "labels": example.labels, "token_weights": weights.tolist()})
    return datasets.Dataset.from_list(rows)


class StepTimes(TrainerCallback):
    """Wall time of every optimizer step (the device synchronised at its end)."""

    def __init__(self, device: torch.device):
        self.device, self.times, self._start = device, [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter() - self._start)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    out = args.out or default_out(args.tiny)
    shape = TINY if args.tiny else REAL_7B
    device = torch.device("cpu" if args.tiny else "cuda")
    backbone, _ = build_backbones(shape, device, torch.float32 if args.tiny else torch.bfloat16)
    backbone.model.train()
    steps = args.warmup_steps + args.steps
    rows = fdm_rows(backbone, args.batch_size * steps)
    sequence_len = len(rows[0]["input_ids"])
    checkpointing = not args.no_checkpointing
    with tempfile.TemporaryDirectory() as output_dir:
        config = WorldModelSFTConfig(
            output_dir=output_dir,
            per_device_train_batch_size=args.batch_size,
            max_steps=steps,
            learning_rate=1e-4,
            optim="adamw_torch",
            bf16=not args.tiny,
            use_cpu=args.tiny,
            activation_checkpointing=checkpointing,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=SEED,
        )
        lora = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, target_modules=TEXT_ATTENTION_TARGETS)
        timer = StepTimes(device)
        trainer = FDMTrainer(backbone=backbone, args=config, train_dataset=rows, peft_config=lora, callbacks=[timer])
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        trainer.train()
    timed = timer.times[args.warmup_steps :]
    step_s = statistics.median(timed)
    tokens_per_step = args.batch_size * sequence_len
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    payload: dict[str, Any] = {
        "machine": machine_info(device),
        "shape": {
            "name": shape.name,
            "lm_parameters": sum(p.numel() for p in backbone.model.parameters()),
            "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "image_seq_len": backbone.image_seq_len,
            "sequence_len": sequence_len,
            "lm_dtype": "float32" if args.tiny else "bfloat16",
        },
        "settings": {
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup_steps,
            "timed_steps": args.steps,
            "lora_rank": args.lora_rank,
            "activation_checkpointing": checkpointing,
            "loss": "recognition-weighted (FDMTrainer)",
        },
        "step_s": {"median": step_s, "all": timed},
        "tokens_per_s": tokens_per_step / step_s,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "losses": losses,
        "runtime_s": time.perf_counter() - started,
    }
    write_json(out, payload)
    memory = payload["peak_memory_gib"]
    print(
        f"{shape.name}: {sequence_len} tokens x {args.batch_size} rows, {step_s:.3f} s/step, "
        f"{payload['tokens_per_s']:.0f} tokens/s" + (f", peak {memory:.1f} GiB" if memory is not None else "")
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

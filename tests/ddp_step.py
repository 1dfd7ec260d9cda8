"""One SGD step of ``FDMTrainer`` on four fixed FDM rows of different lengths; the parameters after it.

tests/test_trainers.py imports it to run the step in-process (batch 4 x accumulation 1, batch 1 x accumulation 4)
and runs it under ``torchrun --nproc_per_node 2`` (two gloo ranks on CPU, DDP) for 2 processes x batch 2, so that
the three splits of the same optimizer step can be compared.
Usage: torchrun --nproc_per_node 2 ddp_step.py OUT_FILE   (rank 0 saves what ``one_step`` returns to OUT_FILE)
"""

from __future__ import annotations

import os
import sys

import datasets
import torch
from trl import SFTConfig

from wm_hub.models.base import Backbone
from wm_hub.models.tiny import build_tiny_backbone
from wm_hub.training.trainers import FDMTrainer

ACTIONS = ("go", "move the red square two cells left", "swap them", "recolour the blue circle to green, slowly")
LEARNING_RATE = 1.0


def fdm_rows(backbone: Backbone, seed: int = 0) -> datasets.Dataset:
    """Four FDM rows of random images; action lengths differ, so the rows do. Target weights in [0, 2), some 0."""
    generator = torch.Generator().manual_seed(seed)
    image_ids = backbone.image_token_ids
    rows = []
    for index, action in enumerate(ACTIONS):
        source, target = image_ids[torch.randint(len(image_ids), (2, backbone.image_seq_len), generator=generator)]
        example = backbone.build_fdm_sequence(source, action, target)
        weights = torch.ones(len(example.input_ids))
        target_weights = 2 * torch.rand(len(example.target_image_positions), generator=generator)
        target_weights[::7] = 0.0
        weights[example.target_image_positions] = target_weights
        rows.append({"id": f"row-{index}", "input_ids": example.input_ids, "labels": example.labels})
        rows[-1]["token_weights"] = weights.tolist()
    return datasets.Dataset.from_list(rows)


def sgd_args(output_dir: str, batch_size: int, accumulation: int, **overrides) -> SFTConfig:
    """fp32 CPU settings for one plain SGD step: no clipping, no schedule or decay, no checkpointing."""
    settings = dict(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        optim="sgd",
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    return SFTConfig(**{**settings, **overrides})


def one_step(output_dir: str, batch_size: int, accumulation: int) -> dict:
    """A fresh tiny Chameleon after one step over the four rows: trainable parameters, process count, logged loss."""
    backbone = build_tiny_backbone("chameleon")
    trainer = FDMTrainer(
        backbone=backbone, args=sgd_args(output_dir, batch_size, accumulation), train_dataset=fdm_rows(backbone)
    )
    trainer.train()
    return {
        "params": {name: p.detach().clone() for name, p in backbone.model.named_parameters() if p.requires_grad},
        "num_processes": trainer.accelerator.num_processes,
        "ddp": isinstance(trainer.model_wrapped, torch.nn.parallel.DistributedDataParallel),
        "loss": trainer.state.log_history[0]["loss"],
    }


if __name__ == "__main__":
    result = one_step(os.path.dirname(sys.argv[1]), batch_size=2, accumulation=1)
    if int(os.environ["RANK"]) == 0:
        torch.save(result, sys.argv[1])
    if torch.distributed.is_initialized():  # leave together: a rank exiting mid-teardown aborts the other (SIGABRT)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()

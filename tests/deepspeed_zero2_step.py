"""Three DeepSpeed ZeRO-2 optimizer steps on a tiny backbone's FDM loss (one CPU rank, gloo).

Run by tests/test_deepspeed.py in a subprocess so that the process group never leaks into other tests.
Usage: python deepspeed_zero2_step.py MODEL_DIR RESULT_JSON
"""

from __future__ import annotations

import json
import os
import sys

import deepspeed
import torch

from wm_hub import load_backbone


def main(model_dir: str, result_path: str) -> None:
    backbone = load_backbone(model_dir)
    backbone.model.train()
    deepspeed.init_distributed(dist_backend="gloo")
    parameters = [parameter for parameter in backbone.model.parameters() if parameter.requires_grad]
    config = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": 2},
        "zero_allow_untested_optimizer": True,
    }
    engine, _, _, _ = deepspeed.initialize(
        model=backbone.model, optimizer=torch.optim.AdamW(parameters, lr=1e-3), config=config
    )
    image_ids = backbone.image_token_ids[: backbone.image_seq_len]
    example = backbone.build_fdm_sequence(image_ids, "shift everything", image_ids.flip(0))
    input_ids, labels = torch.tensor([example.input_ids]), torch.tensor([example.labels])
    before = engine.module.get_output_embeddings().weight.detach().clone()
    losses = []
    for _ in range(3):
        loss = engine(input_ids=input_ids, labels=labels).loss
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    change = (engine.module.get_output_embeddings().weight.detach() - before).abs().sum(dim=1)
    result = {
        "losses": losses,
        "zero_stage": engine.zero_optimization_stage(),
        "image_rows_changed": bool(change[backbone.image_token_ids].gt(0).any()),
    }
    with open(result_path, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    main(sys.argv[1], sys.argv[2])

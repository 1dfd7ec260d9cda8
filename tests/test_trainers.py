"""IDM/FDM trainers: plain-SFT equality, accumulation and multi-process invariance, metrics, eval, LoRA, learning."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from ddp_step import LEARNING_RATE, fdm_rows, one_step, sgd_args
from peft import LoraConfig
from trl import SFTTrainer

from wm_hub.data.schema import TRIPLET_FEATURES
from wm_hub.data.shapes_world import ShapesWorld
from wm_hub.models.base import IGNORE_INDEX
from wm_hub.models.processing import WorldModelProcessor
from wm_hub.models.tiny import build_tiny_backbone
from wm_hub.training.pretokenize import PretokenizeConfig, pretokenize
from wm_hub.training.trainers import TEXT_ATTENTION_TARGETS, FDMTrainer, IDMTrainer

METRICS = {"loss_image", "loss_image_weighted", "loss_text", "token_accuracy"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def token_nll(model, rows: datasets.Dataset) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per row, from a plain forward without padding: (next-token NLL, next labels, next weights)."""
    result = []
    with torch.no_grad():
        for row in rows:
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1]
            labels = torch.tensor(row["labels"][1:])
            nll = torch.nn.functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
            result.append((nll, labels, torch.tensor(row["token_weights"][1:])))
    return result


def hand_loss(model, rows: datasets.Dataset) -> torch.Tensor:
    """sum(w * nll) over the supervised tokens of all rows / their count, with the plain logits."""
    per_row = token_nll(model, rows)
    total = sum((w * nll)[labels != IGNORE_INDEX].sum() for nll, labels, w in per_row)
    return total / sum((labels != IGNORE_INDEX).sum() for _, labels, _ in per_row)


def test_unit_weights_train_exactly_like_sft_trainer(tmp_path):
    fdm = build_tiny_backbone("chameleon")
    rows = fdm_rows(fdm)
    rows = rows.map(lambda row: {"token_weights": [1.0] * len(row["input_ids"])})
    FDMTrainer(backbone=fdm, args=sgd_args(str(tmp_path / "fdm"), 4, 1), train_dataset=rows).train()

    sft = build_tiny_backbone("chameleon")
    args = sgd_args(str(tmp_path / "sft"), 4, 1, dataset_kwargs={"skip_prepare_dataset": True})
    plain = SFTTrainer(
        model=sft.model,
        args=args,
        train_dataset=rows.select_columns(["input_ids", "labels"]),
        processing_class=sft.tokenizer,
    )
    plain.train()
    assert FDMTrainer.loss_is_scaled_for_ga
    for (name, ours), (_, theirs) in zip(fdm.model.named_parameters(), sft.model.named_parameters(), strict=True):
        assert torch.equal(ours, theirs), name


def test_weighted_loss_equals_a_hand_computation_from_the_logits(tmp_path):
    backbone = build_tiny_backbone("chameleon")
    rows = fdm_rows(backbone)
    trainer = FDMTrainer(backbone=backbone, args=sgd_args(str(tmp_path), 4, 1), train_dataset=rows)
    batch = trainer.data_collator(list(rows))
    assert batch["attention_mask"].eq(0).any() and batch["token_weights"].eq(0).any()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    expected = hand_loss(backbone.model, rows)
    torch.testing.assert_close(loss.detach(), expected)
    count = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
    scaled = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=3 * count)
    torch.testing.assert_close(scaled.detach(), expected / 3)


@pytest.mark.slow
def test_one_step_is_the_same_for_batch_accumulation_and_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    out = tmp_path / "ddp" / "result.pt"
    out.parent.mkdir()
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    launch += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    ddp = subprocess.Popen(
        [*launch, str(Path(__file__).with_name("ddp_step.py")), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        batch = one_step(str(tmp_path / "b4"), batch_size=4, accumulation=1)
        accumulated = one_step(str(tmp_path / "b1x4"), batch_size=1, accumulation=4)
        _, stderr = ddp.communicate(timeout=120)
    finally:
        ddp.kill()
    assert ddp.returncode == 0, stderr[-3000:]
    two_processes = torch.load(out)
    assert two_processes["num_processes"] == 2 and two_processes["ddp"]

    # Reference: one plain SGD step on sum(w * nll) / N over the four rows.
    backbone = build_tiny_backbone("chameleon")
    before = {name: p.detach().clone() for name, p in backbone.model.named_parameters() if p.requires_grad}
    rows = fdm_rows(backbone)
    per_row = []
    for row in rows:
        logits = backbone.model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1]
        labels = torch.tensor(row["labels"][1:])
        nll = torch.nn.functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
        per_row.append(((torch.tensor(row["token_weights"][1:]) * nll)[labels != IGNORE_INDEX].sum(), labels))
    loss = sum(total for total, _ in per_row) / sum((labels != IGNORE_INDEX).sum() for _, labels in per_row)
    loss.backward()
    expected = {
        name: p.detach() - LEARNING_RATE * p.grad for name, p in backbone.model.named_parameters() if name in before
    }

    assert batch["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert accumulated["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert two_processes["loss"] == pytest.approx(loss.item(), rel=1e-5)
    largest_update = max((expected[name] - before[name]).abs().max().item() for name in before)
    assert largest_update > 1e-2  # a wrong scale (x accumulation steps, x processes) would be far outside 1e-6
    for name in before:
        for setup in (batch, accumulated, two_processes):
            torch.testing.assert_close(setup["params"][name], expected[name], rtol=0, atol=1e-6, msg=name)


def test_metrics_are_logged_every_step_and_evaluate_averages_over_tokens(tmp_path):
    backbone = build_tiny_backbone("chameleon")
    rows = fdm_rows(backbone)
    args = sgd_args(str(tmp_path), 2, 1, max_steps=2, learning_rate=1e-3, per_device_eval_batch_size=3)
    trainer = FDMTrainer(backbone=backbone, args=args, train_dataset=rows, eval_dataset=rows)
    trainer.train()
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    assert all(METRICS <= set(entry) for entry in steps)
    assert all(0.0 <= entry["token_accuracy"] <= 1.0 for entry in steps)

    metrics = trainer.evaluate()  # batches of 3 and 1 rows: the means must be over tokens, not batches
    assert {f"eval_{name}" for name in METRICS | {"loss"}} <= set(metrics)
    per_row = token_nll(backbone.model, rows)
    image = [torch.isin(labels, backbone.image_token_ids) for _, labels, _ in per_row]
    nll = torch.cat([nll[mask] for (nll, _, _), mask in zip(per_row, image)])
    weighted = torch.cat([(w * nll)[mask] for (nll, _, w), mask in zip(per_row, image)])
    assert metrics["eval_loss_image"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert metrics["eval_loss_image_weighted"] == pytest.approx(weighted.mean().item(), rel=1e-5)
    assert trainer.state.log_history[-1]["eval_loss_text"] == metrics["eval_loss_text"]


def test_lora_trains_only_the_adapters_and_the_vq_stays_frozen(tmp_path):
    backbone = build_tiny_backbone("chameleon")
    before = {name: p.detach().clone() for name, p in backbone.model.named_parameters()}
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    args = sgd_args(str(tmp_path), 2, 1, max_steps=3, optim="adamw_torch", learning_rate=1e-2)
    trainer = FDMTrainer(backbone=backbone, args=args, train_dataset=fdm_rows(backbone), peft_config=lora)
    trainer.train()
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    adapters_changed = 0
    for name, parameter in trainer.model.named_parameters():
        base_name = name.removeprefix("base_model.model.").replace(".base_layer", "")
        if "lora_" in name:
            adapters_changed += "lora_B" in name and bool(parameter.abs().sum() > 0)
        else:
            assert torch.equal(parameter, before[base_name]), name
    assert adapters_changed == 2 * 4  # 2 layers x q/k/v/o
    assert not any(p.requires_grad for p in backbone.model.model.vqmodel.parameters())


def test_lora_reaching_into_the_vq_model_is_refused(tmp_path):
    backbone = build_tiny_backbone("emu3")  # Emu3's VQ attention blocks also have q_proj/k_proj/v_proj
    rows = fdm_rows(backbone)
    with pytest.raises(ValueError, match="vqmodel"):
        FDMTrainer(
            backbone=backbone,
            args=sgd_args(str(tmp_path), 2, 1),
            train_dataset=rows,
            peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"]),
        )
    trainer = FDMTrainer(
        backbone=build_tiny_backbone("emu3"),
        args=sgd_args(str(tmp_path), 2, 1),
        train_dataset=rows,
        peft_config=LoraConfig(r=4, target_modules=TEXT_ATTENTION_TARGETS),
    )
    trainable = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 4 * 2 and all("text_model.layers" in name for name in trainable)


def test_idm_trainer_trains_on_action_tokens_and_refuses_weighted_rows(tmp_path):
    backbone = build_tiny_backbone("chameleon")
    image_ids = backbone.image_token_ids
    rows = []
    for index, action in enumerate(("go left", "swap the red square and the blue circle")):
        example = backbone.build_idm_sequence(image_ids[index : index + 64], image_ids[64:128], action)
        rows.append({"input_ids": example.input_ids, "labels": example.labels})
    trainer = IDMTrainer(
        backbone=backbone, args=sgd_args(str(tmp_path), 2, 1), train_dataset=datasets.Dataset.from_list(rows)
    )
    trainer.train()
    logged = trainer.state.log_history[0]
    assert {"loss_text", "token_accuracy"} <= set(logged) and "loss_image" not in logged
    assert "inverse-dynamics" in trainer.model.model_tags

    with pytest.raises(ValueError, match="task='idm'"):
        IDMTrainer(backbone=backbone, args=sgd_args(str(tmp_path), 2, 1), train_dataset=fdm_rows(backbone)).train()


@pytest.mark.slow
def test_fdm_training_on_pretokenised_shapes_world_lowers_the_loss(tmp_path):
    backbone = build_tiny_backbone("chameleon")
    triplets = datasets.Dataset.from_list(list(ShapesWorld().triplet_rows("train", 8)), features=TRIPLET_FEATURES)
    rows = pretokenize(triplets, backbone, PretokenizeConfig(task="fdm", loss_weighting="l2"), cache_dir=tmp_path)
    args = sgd_args(
        str(tmp_path / "out"), 4, 1, max_steps=12, optim="adamw_torch", learning_rate=3e-3, logging_steps=4
    )
    trainer = FDMTrainer(backbone=backbone, args=args, train_dataset=rows, eval_dataset=rows)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < before["eval_loss"] - 0.5
    assert after["eval_loss_image_weighted"] < before["eval_loss_image_weighted"]


def test_compute_metrics_gets_the_logits(tmp_path):
    backbone = build_tiny_backbone("chameleon")
    rows = fdm_rows(backbone)
    vocab = backbone.model.config.vocab_size
    trainer = FDMTrainer(
        backbone=backbone,
        args=sgd_args(str(tmp_path), 2, 1, per_device_eval_batch_size=4),
        train_dataset=rows,
        eval_dataset=rows,
        compute_metrics=lambda prediction: {"vocab": prediction.predictions.shape[-1]},
    )
    metrics = trainer.evaluate()
    assert metrics["eval_vocab"] == vocab and "eval_loss_image" in metrics


def test_stopping_and_resuming_ends_with_the_parameters_of_an_uninterrupted_run(tmp_path):
    """Adam + cosine schedule, 6 steps over 4 rows (the data order of a second epoch too), checkpoint at step 3."""
    adam = dict(optim="adamw_torch", lr_scheduler_type="cosine", warmup_steps=1, weight_decay=0.01, max_steps=6)

    def run(output_dir, resume_from=None, **overrides):
        backbone = build_tiny_backbone("chameleon")
        args = sgd_args(str(output_dir), 1, 1, **{**adam, **overrides})
        FDMTrainer(backbone=backbone, args=args, train_dataset=fdm_rows(backbone)).train(
            resume_from_checkpoint=resume_from
        )
        return dict(backbone.model.named_parameters())

    uninterrupted = run(tmp_path / "whole")
    run(tmp_path / "stopped", save_strategy="steps", save_steps=3)  # checkpoint-3 is what a stop at step 3 leaves
    resumed = run(tmp_path / "resumed", resume_from=str(tmp_path / "stopped" / "checkpoint-3"))
    fresh_backbone = build_tiny_backbone("chameleon")
    saved = WorldModelProcessor.from_pretrained(
        tmp_path / "stopped" / "checkpoint-3"
    )  # each checkpoint has its format
    assert saved.settings() == fresh_backbone.processor.settings() and saved.image_grid == [8, 8]
    fresh = dict(fresh_backbone.model.named_parameters())
    for name, weight in uninterrupted.items():
        assert torch.allclose(resumed[name], weight, atol=1e-6, rtol=0), name
    assert any(not torch.equal(fresh[name], weight) for name, weight in uninterrupted.items())

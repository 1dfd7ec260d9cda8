"""GRPO for the FDM on TRL's GRPOTrainer: image rollouts, the IDM reward, the KL to the adapter-free model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import hub, hub_env  # noqa: F401
from peft import LoraConfig
from transformers import pipeline
from trl import GRPOConfig

import wm_hub  # noqa: F401  (registers the pipelines)
from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.models.tiny import build_tiny_backbone
from wm_hub.training.grpo import FDMGRPOTrainer, fdm_grpo_rows
from wm_hub.training.rewards import REWARDS, IDMActionLikelihood
from wm_hub.training.trainers import TEXT_ATTENTION_TARGETS


def grpo_args(output_dir: str, **overrides) -> GRPOConfig:
    settings = dict(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        per_device_train_batch_size=4,
        num_generations=2,
        max_steps=2,
        beta=0.04,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    return GRPOConfig(**{**settings, **overrides})


def lora() -> LoraConfig:
    return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TEXT_ATTENTION_TARGETS)


@pytest.fixture(scope="module")
def world_rows():
    def rows(backbone):
        world = ShapesWorld(WorldConfig(image_size=backbone.config.image_size))
        triplets = [world.triplet("train", index) for index in range(2)]
        sources = backbone.encode_images([triplet.source for triplet in triplets])
        return fdm_grpo_rows(backbone, list(sources), [triplet.action.text for triplet in triplets])

    return rows


def test_two_grpo_steps_reward_the_idm_pipeline_scores_of_the_sampled_images(tmp_path, world_rows):
    fdm, idm = build_tiny_backbone("chameleon"), build_tiny_backbone("chameleon")
    assert fdm.image_fingerprint() == idm.image_fingerprint()
    reward = IDMActionLikelihood(idm, min_value=-1e9)  # no clamping: the raw scores compare
    calls = []

    class Recorded:
        __name__ = reward.__name__

        def __call__(self, *args, **kwargs):
            rewards = reward(*args, **kwargs)
            calls.append((kwargs, rewards))
            return rewards

    before = {name: p.detach().clone() for name, p in fdm.model.named_parameters()}
    trainer = FDMGRPOTrainer(
        backbone=fdm, reward_funcs=[Recorded()], args=grpo_args(str(tmp_path)), train_dataset=world_rows(fdm),
        peft_config=lora(),
    )  # fmt: skip
    trainer.train()

    assert len(calls) == 2  # one generation batch per step: 2 prompts x 2 images
    verifier = pipeline("inverse-dynamics", model=idm, device="cpu")
    layout = fdm.generation_layout()
    for columns, rewards in calls:
        prompts = columns["prompts"]
        assert len(rewards) == 4 and prompts[0] == prompts[1] and prompts[2] == prompts[3]
        for ids, image in zip(columns["completion_ids"], columns["image_ids"]):
            assert len(ids) == len(layout) + 1 and ids[-1] == fdm.eos_token_id
            assert [ids[i] for i in range(len(layout)) if layout[i] < 0] == image  # the codes, in order
            assert torch.isin(torch.tensor(image), fdm.image_token_ids).all()
        for group in ((0, 1), (2, 3)):
            source = torch.tensor(columns["source_ids"][group[0]])
            images = [torch.tensor(columns["image_ids"][row]) for row in group]
            expected = verifier.score(source, images, columns["action"][group[0]], reduction="mean")
            assert [rewards[row] for row in group] == pytest.approx(expected, abs=1e-6)
    logged = [entry for entry in trainer.state.log_history if "kl" in entry]
    assert logged[0]["kl"] == pytest.approx(0.0, abs=1e-7)  # step 1: the policy is the adapter-free reference
    assert logged[0]["rewards/idm_log_likelihood/mean"] == pytest.approx(sum(calls[0][1]) / 4, abs=1e-5)
    changed = [name for name, p in trainer.model.named_parameters() if "lora_B" in name and p.abs().sum() > 0]
    assert changed  # the adapters trained
    for name, parameter in trainer.model.named_parameters():
        if "lora_" not in name:
            base = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(parameter, before[base]), name


def test_the_reward_is_clamped_and_registered():
    idm = build_tiny_backbone("chameleon")
    source = idm.image_token_ids[: idm.image_seq_len]
    image = idm.image_token_ids[-idm.image_seq_len :]
    columns = {"image_ids": [image.tolist()], "source_ids": [source.tolist()], "action": ["move the red square up"]}
    raw = IDMActionLikelihood(idm, min_value=-1e9)([None], [""], [[]], **columns)[0]
    assert raw < -1.0  # a random IDM is far from sure of any action
    assert IDMActionLikelihood(idm, min_value=-1.0)([None], [""], [[]], **columns) == [-1.0]
    assert REWARDS["idm_log_likelihood"] is IDMActionLikelihood
    with pytest.raises(ValueError, match="min_value"):
        IDMActionLikelihood(idm, min_value=0.0, max_value=0.0)


def test_settings_the_trainer_cannot_honour_are_refused(tmp_path, world_rows):
    fdm = build_tiny_backbone("chameleon")
    rows, reward = world_rows(fdm), IDMActionLikelihood(build_tiny_backbone("chameleon"))
    with pytest.raises(ValueError, match="needs a reference model"):
        FDMGRPOTrainer(backbone=fdm, reward_funcs=[reward], args=grpo_args(str(tmp_path)), train_dataset=rows)
    with pytest.raises(ValueError, match="log_completions"):
        FDMGRPOTrainer(
            backbone=fdm, reward_funcs=[reward], args=grpo_args(str(tmp_path), log_completions=True),
            train_dataset=rows, peft_config=lora(),
        )  # fmt: skip


def test_a_grpo_model_saved_like_an_sft_one_loads_in_the_forward_dynamics_pipeline(tmp_path, world_rows):
    from wm_hub.models.loading import load_backbone
    from wm_hub.training.configs import ModelArguments
    from wm_hub.training.run import save_world_model

    build_tiny_backbone("chameleon").save_pretrained(tmp_path / "sft")
    fdm, idm = load_backbone(str(tmp_path / "sft")), load_backbone(str(tmp_path / "sft"))
    args = grpo_args(str(tmp_path / "grpo"), max_steps=1)
    trainer = FDMGRPOTrainer(
        backbone=fdm, reward_funcs=[IDMActionLikelihood(idm)], args=args, train_dataset=world_rows(fdm),
        peft_config=lora(),
    )  # fmt: skip
    trainer.train()
    save_world_model(trainer, fdm, ModelArguments(model_name_or_path=str(tmp_path / "sft"), use_peft=True))
    merged = load_backbone(str(tmp_path / "grpo"))
    sft = load_backbone(str(tmp_path / "sft"))
    changed = {
        name
        for (name, ours), (_, theirs) in zip(
            merged.model.named_parameters(), sft.model.named_parameters(), strict=True
        )
        if not torch.equal(ours, theirs)
    }
    assert changed and all("self_attn" in name for name in changed)  # the LoRA update, merged
    predict = pipeline("forward-dynamics", model=str(tmp_path / "grpo"), device="cpu")
    example = ShapesWorld(WorldConfig(image_size=merged.config.image_size)).triplet("test", 0)
    assert predict(example.source, example.action.text, seed=0)["image"].size == (64, 64)


def test_idm_grpo_samples_actions_rewarded_by_the_fdm_likelihood_of_the_target(tmp_path):
    from wm_hub.inference.scoring import target_log_likelihoods
    from wm_hub.training.grpo import IDMGRPOTrainer, idm_grpo_rows
    from wm_hub.training.rewards import FDMTargetLikelihood

    idm, fdm = build_tiny_backbone("chameleon"), build_tiny_backbone("chameleon")
    world = ShapesWorld(WorldConfig(image_size=idm.config.image_size))
    triplets = [world.triplet("train", index) for index in range(2)]
    sources = list(idm.encode_images([triplet.source for triplet in triplets]))
    targets = list(idm.encode_images([triplet.target for triplet in triplets]))
    reward = FDMTargetLikelihood(fdm, min_value=-1e9)
    calls = []

    class Recorded:
        __name__ = reward.__name__

        def __call__(self, **kwargs):
            rewards = reward(**kwargs)
            calls.append((kwargs, rewards))
            return rewards

    args = grpo_args(str(tmp_path), max_completion_length=8)
    trainer = IDMGRPOTrainer(
        backbone=idm, reward_funcs=[Recorded()], args=args, train_dataset=idm_grpo_rows(idm, sources, targets),
        peft_config=lora(),
    )  # fmt: skip
    trainer.train()
    assert len(calls) == 2
    for columns, rewards in calls:
        ids = torch.tensor([token for row in columns["completion_ids"] for token in row])
        assert not torch.isin(ids, idm.image_token_ids).any()  # actions are text
        expected = target_log_likelihoods(
            fdm,
            [torch.tensor(row) for row in columns["source_ids"]],
            [text.strip() for text in columns["completions"]],
            [torch.tensor(row) for row in columns["target_ids"]],
            batch_size=None,
        )
        assert rewards == pytest.approx([score.mean for score in expected], abs=1e-6)
    logged = [entry for entry in trainer.state.log_history if "kl" in entry]
    assert logged[0]["kl"] == pytest.approx(0.0, abs=1e-7) and "rewards/fdm_log_likelihood/mean" in logged[0]


def test_the_weighted_fdm_reward_averages_the_target_codes_by_their_recognition_weights():
    from wm_hub.inference.scoring import target_log_likelihoods
    from wm_hub.training.grpo import GRPOScriptArguments, idm_grpo_rows
    from wm_hub.training.rewards import FDMTargetLikelihood, FDMWeightedTargetLikelihood

    fdm = build_tiny_backbone("chameleon")
    world = ShapesWorld(WorldConfig(image_size=fdm.config.image_size))
    triplet = world.triplet("train", 0)
    source, target = fdm.encode_images([triplet.source, triplet.target])
    codes = len(target)
    one_hot = torch.zeros(codes)
    one_hot[3] = 2.0  # only code 3 changes
    rows = idm_grpo_rows(fdm, [source, source], [target, target], change_distances=[one_hot, torch.ones(codes)])
    columns = {name: rows[name] for name in ("source_ids", "target_ids", "change_distances")}
    actions = [triplet.action.text, "remove the red square"]
    call = dict(prompts=rows["prompt"], completions=[f" {a}" for a in actions], completion_ids=[[1], [1]], **columns)

    pure = FDMWeightedTargetLikelihood(fdm, min_value=-1e9, floor=0.0)(**call)
    scores = target_log_likelihoods(fdm, [source, source], actions, [target, target], batch_size=None)
    assert all(len(score.token_log_probs) == codes for score in scores)
    assert sum(scores[0].token_log_probs) == pytest.approx(scores[0].total, abs=1e-4)
    assert pure[0] == pytest.approx(scores[0].token_log_probs[3], abs=1e-5)  # all the weight on the changed code
    assert pure[1] == pytest.approx(scores[1].mean, abs=1e-5)  # equal distances: the plain mean
    plain = FDMTargetLikelihood(fdm, min_value=-1e9)(**call)
    assert FDMWeightedTargetLikelihood(fdm, min_value=-1e9, floor=1.0)(**call) == pytest.approx(plain, abs=1e-5)
    floored = FDMWeightedTargetLikelihood(fdm, min_value=-1e9, floor=0.5)(**call)[0]
    assert floored == pytest.approx(0.5 * scores[0].mean + 0.5 * scores[0].token_log_probs[3], abs=1e-5)

    with pytest.raises(ValueError, match="change distances for"):
        FDMWeightedTargetLikelihood(fdm)(**{**call, "change_distances": [[1.0, 2.0], [1.0, 2.0]]})
    with pytest.raises(ValueError, match="needs a change_distances column"):
        FDMWeightedTargetLikelihood(fdm)(**{name: value for name, value in call.items() if name != "change_distances"})
    assert "fdm_weighted_log_likelihood" in REWARDS
    with pytest.raises(ValueError, match="unknown reward"):
        GRPOScriptArguments(reward_model="idm", reward="clip_score")


@pytest.fixture(scope="module")
def tiny_grpo_run(tmp_path_factory, tiny_model_dirs):
    """``python recipes/grpo.py --config recipes/tiny/grpo.yaml`` (2 steps), the command a user runs."""
    tmp_path = tmp_path_factory.mktemp("grpo-recipe")
    repo = Path(__file__).resolve().parents[1]
    model = str(tiny_model_dirs("chameleon"))
    command = [sys.executable, str(repo / "recipes/grpo.py"), "--config", str(repo / "recipes/tiny/grpo.yaml")]
    command += ["--model_name_or_path", model, "--reward_model", model, "--output_dir", str(tmp_path / "grpo")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / "grpo"


def test_the_tiny_grpo_recipe_trains_and_saves_a_model_the_pipeline_loads(tiny_grpo_run):
    summary = json.loads((tiny_grpo_run / "training_run.json").read_text())
    assert (summary["task"], summary["method"], summary["reward"], summary["steps"]) == (
        "fdm",
        "grpo",
        "idm_log_likelihood",
        2,
    )
    assert len(summary["reward_per_step"]) == 2 and all(-10.0 <= r <= 0.0 for r in summary["reward_per_step"])
    # the SFT runs' fields too (the model card and `wm-hub push` read them)
    assert summary["lora"]["r"] == 8 and summary["loss"] is None and summary["metrics"]["global_step"] == 2
    assert summary["mixture"]["train_rows"] == 8 and summary["arch"] == "chameleon"
    card = (tiny_grpo_run / "README.md").read_text()
    assert "- grpo" in card and "idm_log_likelihood" in card and "- sft" not in card
    predict = pipeline("forward-dynamics", model=str(tiny_grpo_run), device="cpu")
    example = ShapesWorld(WorldConfig(image_size=64)).triplet("test", 0)
    assert predict(example.source, example.action.text, seed=0)["image"].size == (64, 64)


def test_a_grpo_run_publishes_with_wm_hub_push_like_an_sft_run(tiny_grpo_run, hub, hub_env):  # noqa: F811
    # the policy's base is a local folder: as for an SFT run, --merge publishes weights that load without it
    command = [sys.executable, "-m", "wm_hub.cli", "push", "model", str(tiny_grpo_run), "--repo-id", "org/fdm-grpo"]
    command.append("--merge")
    done = subprocess.run(command, env=hub_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    files = hub.files("org/fdm-grpo")
    assert {"config.json", "model.safetensors", "README.md", "wm_hub.json", "training_run.json"} <= set(files)
    assert "adapter/adapter_config.json" in files  # the merged layout keeps the LoRA adapter beside the weights
    assert json.loads(files["wm_hub.json"])["task"] == "fdm"
    assert json.loads(files["training_run.json"])["method"] == "grpo"
    card = files["README.md"].decode()
    assert "- grpo" in card and "org/fdm-grpo" in card
    local = (tiny_grpo_run / "model.safetensors").read_bytes()
    assert files["model.safetensors"] == local  # the GRPO weights, not the SFT model's

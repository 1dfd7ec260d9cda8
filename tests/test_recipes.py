"""YAML recipes: they parse into the dataclasses, the paper recipes build their data mixture from real-layout data,
and the tiny recipes train on two real ranks (DDP and DeepSpeed ZeRO-2), save a model that load_backbone loads, and
resume from a checkpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from shared_data import require
from trl import TrlParser

from wm_hub import load_backbone
from wm_hub.config_parser import ConfigParser, parse_config
from wm_hub.training.configs import DataArguments, ModelArguments, WorldModelSFTConfig
from wm_hub.training.run import ADAPTER_SUBFOLDER, RUN_SUMMARY, main

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
ACCELERATE_CONFIGS = RECIPES / "accelerate_configs"
SHARED_DATA = REPO.parent / "shared" / "data"
TRAIN_ANNOTATIONS = SHARED_DATA / "aurora-train-annotations"
BENCH_MINI = SHARED_DATA / "aurora-bench-mini"
# Training recipes; <model>/annotate.yaml configure recipes/annotate.py and are tested in tests/test_annotate.py,
# <model>/grpo*.yaml configure recipes/grpo.py (tested below and in tests/test_grpo.py), sandbox/pretrain*.yaml
# configure `wm-hub sandbox pretrain` (tests/test_sandbox.py).
RECIPE_FILES = sorted(
    path
    for path in RECIPES.glob("*/*.yaml")
    if path.parent.name != "accelerate_configs"
    and path.stem != "annotate"
    and not path.stem.startswith("grpo")
    and not path.stem.startswith("pretrain")
)
# `wm-hub demo`'s recipes (sandbox/demo-*.yaml) fine-tune the sandbox base fully; they have their own test below.
DEMO_RECIPES = [path for path in RECIPE_FILES if path.stem.startswith("demo-")]
PAPER_RECIPES = [path for path in RECIPE_FILES if path not in DEMO_RECIPES]
AURORA_TRAINING = ["aurora/ag", "aurora/magicbrush", "aurora/something", "aurora/kubric"]
SYNTHETIC = ["synthetic/moments_in_time", "synthetic/ucf101", "synthetic/kinetics700"]
# The variants of paper Table 2/4: task, learning rate, warm-up, epochs, global batch, loss weighting, sources
PAPER_SETTINGS = {
    "idm": ("idm", 2e-4, 500, 10, 64, "none", [*AURORA_TRAINING, "epic_kitchens"]),
    "fdm-ft": ("fdm", 5e-4, 400, 40, 96, "none", AURORA_TRAINING),
    "fdm": ("fdm", 5e-4, 400, 40, 96, "l2", AURORA_TRAINING + SYNTHETIC),
    "fdm-no-synth": ("fdm", 5e-4, 400, 40, 96, "l2", AURORA_TRAINING),
    "fdm-no-lw": ("fdm", 5e-4, 400, 40, 96, "none", AURORA_TRAINING + SYNTHETIC),
}


def parse(*args: str) -> tuple[DataArguments, WorldModelSFTConfig, ModelArguments]:
    return TrlParser((DataArguments, WorldModelSFTConfig, ModelArguments)).parse_args_and_config(list(args))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_recipe_parses_into_the_dataclasses(recipe):
    data_args, training_args, model_args = parse("--config", str(recipe))
    assert data_args.task == ("idm" if recipe.stem == "idm" else "fdm")
    assert data_args.sources and all(source.label for source in data_args.sources)
    assert training_args.output_dir.endswith(f"{recipe.parent.name}-{recipe.stem}")
    assert not training_args.remove_unused_columns and training_args.dataset_kwargs["skip_prepare_dataset"]
    assert model_args.use_peft and (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (
        16,
        32,
        0.05,
    )
    if recipe.parent.name == "tiny":
        assert training_args.max_steps > 0 and not training_args.bf16 and model_args.dtype == "float32"
        return
    task, learning_rate, warmup, epochs, batch, weighting, labels = PAPER_SETTINGS[recipe.stem]
    assert (training_args.learning_rate, training_args.warmup_steps) == (learning_rate, warmup)
    assert training_args.num_train_epochs == epochs and training_args.lr_scheduler_type.value == "cosine"
    assert training_args.bf16 and model_args.dtype == "bfloat16"
    per_step = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    assert per_step * 4 == batch  # the paper's global batch on its 4 GPUs
    assert training_args.loss_weighting == weighting
    assert [source.label for source in data_args.sources] == labels
    kubric = next(source for source in data_args.sources if source.label == "aurora/kubric")
    assert kubric.max_samples == 10000
    assert [source.label for source in data_args.eval_sources] == ["aurora/bench"]


@pytest.mark.parametrize(
    "recipe", sorted(RECIPES.glob("*/grpo*.yaml")), ids=lambda path: f"{path.parent.name}/{path.stem}"
)
def test_the_grpo_recipes_parse_into_the_grpo_settings(recipe):
    from trl import GRPOConfig

    from wm_hub.config_parser import ConfigParser
    from wm_hub.training.grpo import GRPOScriptArguments, task_reward

    parser = ConfigParser((DataArguments, GRPOConfig, ModelArguments, GRPOScriptArguments))
    data_args, grpo_args, model_args, script_args = parser.parse_args_and_config(
        ["--config", str(recipe), "--output_dir", "unused", "--bf16", "false"]
    )  # bf16 off: this machine has no GPU to check it against
    assert data_args.task == ("idm" if recipe.stem == "grpo-idm" else "fdm")
    assert task_reward(data_args.task, script_args.reward)  # a reward that scores the task
    assert model_args.use_peft and script_args.reward_model
    if data_args.task == "idm":
        assert grpo_args.max_completion_length >= 24
    assert grpo_args.num_generations >= 2 and grpo_args.beta > 0  # a KL to the SFT model, LoRA as its reference
    assert grpo_args.per_device_train_batch_size % grpo_args.num_generations == 0
    assert (script_args.reward_min, script_args.reward_max) == (-10.0, 0.0)


def test_a_grpo_recipe_whose_reward_does_not_fit_its_task_is_one_error_line(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, str(RECIPES / "grpo.py"), "--config", str(RECIPES / "tiny" / "grpo.yaml")]
    command += ["--reward", "fdm_weighted_log_likelihood", "--output_dir", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2
    assert "error: reward 'fdm_weighted_log_likelihood' does not score a fdm policy" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_paper_variants_exist_for_every_7b_model_and_emu3_has_idm_and_fdm():
    for model in ("anole-7b", "liquid-7b"):  # the training recipes, and the annotation recipe (recipes/annotate.py)
        assert {path.stem for path in (RECIPES / model).glob("*.yaml")} == {
            *PAPER_SETTINGS, "annotate", "grpo", "grpo-idm"
        }  # fmt: skip
    assert {"idm", "fdm", "annotate", "grpo", "grpo-idm"} <= {path.stem for path in (RECIPES / "emu3").glob("*.yaml")}
    tiny = {"idm", "fdm", "annotate", "grpo"}
    assert {path.stem for path in (RECIPES / "tiny").glob("*.yaml")} == tiny


@pytest.mark.parametrize("recipe", DEMO_RECIPES, ids=lambda path: path.stem)
def test_demo_recipes_fine_tune_the_sandbox_base_fully_on_the_sandbox_world(recipe):
    data_args, training_args, model_args = parse("--config", str(recipe))
    task = recipe.stem.removeprefix("demo-")
    assert data_args.task == task and training_args.output_dir == f"demo_out/{task}"
    assert model_args.model_name_or_path == "sandbox/base"
    assert not model_args.use_peft and model_args.dtype == "float32" and not training_args.bf16
    labelled = [source for source in data_args.sources if source.builder == "shapes_world"]
    assert labelled and all(
        (source.builder_kwargs["image_size"], source.builder_kwargs["grid"]) == (32, 4) for source in labelled
    )
    if task == "fdm":  # the paper's C-FDM: labelled + IDM-labelled video pairs (top-K), recognition-weighted
        assert training_args.loss_weighting == "l2"
        synthetic = [source for source in data_args.sources if source.builder != "shapes_world"]
        assert [source.builder for source in synthetic] == ["synthetic_triplets"]
        assert synthetic[0].builder_kwargs == {"annotation_files": ["sampled.jsonl"]}
    else:
        assert training_args.loss_weighting == "none" and len(labelled) == len(data_args.sources)
    assert training_args.max_steps > 0 and training_args.save_strategy.value == "no"


def test_the_demo_fdm_trains_on_the_idm_labelled_triplets():
    # same builders and kwargs: the FDM stage reuses the IDM stage's encoding of them instead of encoding them again
    idm, fdm = (parse("--config", str(RECIPES / "sandbox" / f"demo-{task}.yaml"))[0] for task in ("idm", "fdm"))
    assert idm.sources == [source for source in fdm.sources if source.builder == "shapes_world"]


def test_command_line_flags_override_the_yaml():
    recipe = str(RECIPES / "anole-7b" / "fdm.yaml")
    data_args, training_args, model_args = parse(
        "--config", recipe, "--learning_rate", "1e-4", "--data_root", "/data", "--lora_r", "8",
        "--model_name_or_path", "/models/anole", "--loss_weighting", "none", "--fdm_instruction", "Next frame:",
    )  # fmt: skip
    assert training_args.learning_rate == 1e-4 and training_args.loss_weighting == "none"
    assert data_args.data_root == "/data" and data_args.fdm_instruction == "Next frame:"
    assert model_args.lora_r == 8 and model_args.model_name_or_path == "/models/anole"
    assert training_args.warmup_steps == 400  # what the flags do not name stays as the YAML says


def test_the_script_refuses_a_recipe_of_the_other_task():
    data_args, training_args, model_args = parse("--config", str(RECIPES / "tiny" / "idm.yaml"), "--dry_run")
    with pytest.raises(ValueError, match=r"recipe is for the IDM \(task: idm\), not the FDM: run recipes/idm.py"):
        main("fdm", data_args, training_args, model_args)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"bad\.yaml: no such recipe file"),
        ("sources: [unclosed\n", r"recipe .*bad\.yaml: not valid YAML: .*line"),
        ("lerning_rate: 1.0e-4\nmystery: 3\n", r"unknown key\(s\): lerning_rate \(did you mean learning_rate"),
        ("loss_weighting: l7\n", r"loss_weighting must be one of \['none', 'l2'\], got 'l7'"),
        ("loss_weight_floor: 1.5\n", r"loss_weight_floor must be in \[0, 1\]"),
        ("task: fmd\n", r"task must be 'idm' or 'fdm', got 'fmd'"),
        ("sources: shapes_world\n", r"sources must be a YAML list of mappings .*got one value"),
    ],
)
def test_a_wrong_recipe_is_one_line_naming_the_file_and_key(tmp_path, capsys, text, message):
    recipe = tmp_path / "bad.yaml"
    if text is not None:
        recipe.write_text("model_name_or_path: x\noutput_dir: " + str(tmp_path / "o") + "\n" + text)
    with pytest.raises(SystemExit) as exit_info:
        parse_config(ConfigParser((DataArguments, WorldModelSFTConfig, ModelArguments)), ["--config", str(recipe)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert re.search(message, err[0]), err[0]


def test_the_recipe_scripts_report_a_missing_recipe_without_a_traceback(tmp_path):
    command = [sys.executable, str(RECIPES / "fdm.py"), "--config", str(tmp_path / "none.yaml")]
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'none.yaml'}: no such recipe file"
    assert "Traceback" not in completed.stderr


def test_push_to_hub_needs_a_publisher_and_pushes_once_at_the_end(tmp_path):
    with pytest.raises(ValueError, match="hub_strategy='every_save' would push LoRA checkpoints"):
        WorldModelSFTConfig(output_dir=str(tmp_path), push_to_hub=True, hub_strategy="every_save")
    args = WorldModelSFTConfig(output_dir=str(tmp_path), push_to_hub=True, hub_model_id="me/x", report_to="none")
    with pytest.raises(ValueError, match="nothing publishes the model: run recipes/idm.py or recipes/fdm.py"):
        main("fdm", DataArguments(), args, ModelArguments(model_name_or_path="none"))


def _png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (shade % 256, 90, 30)).save(path)


def _aurora_checkout(root: Path) -> None:
    """An AURORA checkout: real ag/magicbrush/bench annotation rows, generated something/kubric rows, small images."""
    tables = {
        f"data/{name}/train.json": json.loads((TRAIN_ANNOTATIONS / name / "train.json").read_text())[:12]
        for name in ("ag", "magicbrush")
    }
    for name, count in (("something", 5), ("kubric", 30)):
        images = f"data/{name}/images"
        tables[f"data/{name}/train.json"] = [
            {"instruction": f"{name} {i}", "input": f"{images}/{i}_0.png", "output": f"{images}/{i}_1.png"}
            for i in range(count)
        ]
    tables["test.json"] = json.loads((BENCH_MINI / "test.json").read_text())
    for table, rows in tables.items():
        (root / table).parent.mkdir(parents=True, exist_ok=True)
        (root / table).write_text(json.dumps(rows))
        for index, row in enumerate(rows):
            for field in ("input", "output"):
                if row.get(field):
                    _png(root / row[field], index)


def _synthetic_folder(folder: Path, count: int, sampled: int | None = None) -> None:
    """IDM annotations as bootstrap annotation writes them (annotations.jsonl + frames) and, with ``sampled``, the
    top-K file `wm-hub sample` writes beside them (its rows reuse the frames: only the count matters here)."""
    lines = []
    for i in range(count):
        _png(folder / "frames" / f"{i}-a.png", i)
        _png(folder / "frames" / f"{i}-b.png", i + 50)
        row = {"id": f"{folder.name}/{i}", "source": f"frames/{i}-a.png", "target": f"frames/{i}-b.png"}
        lines.append(json.dumps({**row, "action": f"open the door {i}", "score": -1.0 - i, "action_class": "open"}))
    (folder / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    if sampled is not None:
        rows = [{**json.loads(lines[i % count]), "id": f"{folder.name}/top-{i}"} for i in range(sampled)]
        (folder / "sampled.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_anole_fdm_recipe_builds_its_mixture_once_paths_point_at_the_data(tmp_path, capsys):
    require(TRAIN_ANNOTATIONS / "ag" / "train.json", BENCH_MINI / "test.json")
    data_root = tmp_path / "data"
    _aurora_checkout(data_root / "AURORA")
    for name, count in (("moments_in_time", 4), ("ucf101", 3), ("kinetics700", 2)):
        _synthetic_folder(data_root / "synthetic" / name, count, sampled=7000)  # the paper's 7K top-K per source
    recipe = str(RECIPES / "anole-7b" / "fdm.yaml")
    args = ["--config", recipe, "--data_root", str(data_root), "--cache_dir", str(tmp_path / "cache"), "--dry_run"]

    summary = main("fdm", *parse(*args))
    bench_rows = json.loads((BENCH_MINI / "test.json").read_text())
    paper_subsets = ("magicbrush", "ag", "something", "whatsup", "kubric")
    with_target = [row for row in bench_rows if row["task"] in paper_subsets and row.get("output")]
    assert summary["sources"] == [
        {"label": "aurora/ag", "available": 12, "train": 12, "eval": 0},
        {"label": "aurora/magicbrush", "available": 12, "train": 12, "eval": 0},
        {"label": "aurora/something", "available": 5, "train": 5, "eval": 0},
        {"label": "aurora/kubric", "available": 30, "train": 30, "eval": 0},  # fewer than max_samples: all kept
        {"label": "synthetic/moments_in_time", "available": 7000, "train": 7000, "eval": 0},
        {"label": "synthetic/ucf101", "available": 7000, "train": 7000, "eval": 0},
        {"label": "synthetic/kinetics700", "available": 7000, "train": 7000, "eval": 0},
    ]  # the sampled 7K, not the annotations beside them
    assert summary["train_rows"] == 59 + 3 * 7000
    assert summary["eval_sources"][0]["eval"] == summary["eval_rows"] == len(with_target)
    assert json.loads(capsys.readouterr().out) == summary  # the dry run prints what it returns
    assert main("fdm", *parse(*args)) == summary  # deterministic

    _synthetic_folder(data_root / "synthetic" / "ucf101", 3, sampled=6999)  # not the recipe's 7K: caught first
    with pytest.raises(ValueError, match=r"source synthetic/ucf101: 6999 rows, the recipe expects 7000"):
        main("fdm", *parse(*args))


def _launch(config: str, num_processes: int, script: str, recipe: str, *flags: str, cwd: Path) -> None:
    """``accelerate launch`` a recipe in a subprocess, in ``cwd``."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIGS / config),
        "--num_processes", str(num_processes), "--main_process_port", str(_free_port()),
        str(RECIPES / script), "--config", str(RECIPES / recipe), *flags,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]


def _assert_loads_as_trained(output_dir: Path, task: str) -> None:
    """The output folder loads with load_backbone, differs from the base model, and its adapter is not at the root."""
    backbone = load_backbone(str(output_dir))
    assert not (output_dir / "adapter_config.json").exists()  # transformers would apply it over the merged weights
    assert (output_dir / ADAPTER_SUBFOLDER / "adapter_config.json").is_file()
    summary = json.loads((output_dir / RUN_SUMMARY).read_text())
    base = load_backbone(summary["base_model"])
    ids = torch.tensor([backbone.image_token_ids[: 2 * backbone.image_seq_len].tolist()])
    with torch.no_grad():
        assert not torch.allclose(backbone.model(input_ids=ids).logits, base.model(input_ids=ids).logits)
    assert summary["task"] == task and "README.md" in os.listdir(output_dir)


@pytest.fixture(scope="module")
def tiny_chameleon(tiny_model_dirs):
    return str(tiny_model_dirs("chameleon"))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, tiny_chameleon):
    """The tiny FDM recipe, one epoch on two CPU ranks (recipes/accelerate_configs/cpu2.yaml)."""
    root = tmp_path_factory.mktemp("cpu2")
    flags = ["--model_name_or_path", tiny_chameleon, "--cache_dir", str(root / "cache"), "--output_dir", "out"]
    flags += ["--max_steps", "-1", "--num_train_epochs", "1"]
    _launch("cpu2.yaml", 2, "fdm.py", "tiny/fdm.yaml", *flags, cwd=root)
    return root


@pytest.mark.slow
def test_cpu2_runs_two_ranks_and_saves_a_model_that_load_backbone_loads(ddp_run):
    output_dir = ddp_run / "out"
    summary = json.loads((output_dir / RUN_SUMMARY).read_text())
    assert summary["training"]["world_size"] == 2
    # 64 rows, 4 per device: one epoch is 8 steps on two ranks (16 on one)
    assert summary["metrics"]["global_step"] == 8 and summary["mixture"]["train_rows"] == 64
    _assert_loads_as_trained(output_dir, "fdm")
    card = (output_dir / "README.md").read_text()
    assert "| world_size | 2 |" in card and "| shapes_world/triplets | 64 | 64 | 0 |" in card
    assert "recognition weight" in card and summary["loss"]["loss_weighting"] == "l2"


@pytest.mark.slow
def test_resuming_continues_from_the_last_checkpoint_and_keeps_secrets_out(ddp_run, tiny_chameleon, monkeypatch):
    resumed = ddp_run / "resumed"
    shutil.copytree(ddp_run / "out", resumed)
    monkeypatch.setenv("HF_TOKEN", "hf_env_secret_value")
    args = parse(
        "--config", str(RECIPES / "tiny" / "fdm.yaml"), "--model_name_or_path", tiny_chameleon,
        "--cache_dir", str(ddp_run / "cache"), "--output_dir", str(resumed), "--max_steps", "10",
        "--resume_from_checkpoint", "true", "--hub_token", "hf_arg_secret_value",
    )  # fmt: skip
    summary = main("fdm", *args)

    assert summary["metrics"]["global_step"] == 10
    before = json.loads((ddp_run / "out" / "checkpoint-8" / "trainer_state.json").read_text())["log_history"]
    after = json.loads((resumed / "trainer_state.json").read_text())["log_history"]
    losses = [entry for entry in after if "loss" in entry]
    assert [entry["step"] for entry in losses] == list(range(1, 11))  # steps 1-8 from the checkpoint, then 9, 10
    assert losses[:8] == [entry for entry in before if "loss" in entry]
    _assert_loads_as_trained(resumed, "fdm")
    for name in ("README.md", RUN_SUMMARY):
        text = (resumed / name).read_text()
        assert "secret_value" not in text


@pytest.mark.slow
def test_full_fine_tuning_saves_the_trained_weights(ddp_run, tiny_chameleon, tmp_path):
    args = parse(
        "--config", str(RECIPES / "tiny" / "fdm.yaml"), "--model_name_or_path", tiny_chameleon, "--use_peft", "false",
        "--cache_dir", str(ddp_run / "cache"), "--output_dir", str(tmp_path / "out"), "--max_steps", "2",
        "--save_strategy", "no", "--eval_strategy", "no", "--fdm_instruction", "Next:",
    )  # fmt: skip
    summary = main("fdm", *args)
    assert summary["lora"] is None and summary["prompt"]["fdm_instruction"] == "Next:"
    backbone = load_backbone(str(tmp_path / "out"))
    assert backbone.processor.prompt.fdm_instruction == "Next:"  # the recipe's format travels with the weights
    assert not (tmp_path / "out" / ADAPTER_SUBFOLDER).exists()
    base = load_backbone(tiny_chameleon)
    changed = [
        name
        for name, weight in backbone.model.state_dict().items()
        if not torch.equal(weight, base.model.state_dict()[name])
    ]
    assert changed and not any("vqmodel" in name for name in changed)


@pytest.mark.slow
def test_zero2_trains_the_idm_on_two_ranks(tmp_path, tiny_chameleon):
    flags = ["--model_name_or_path", tiny_chameleon, "--cache_dir", str(tmp_path / "cache"), "--output_dir", "out"]
    flags += ["--max_steps", "3", "--save_steps", "3", "--eval_strategy", "no"]
    _launch("zero2.yaml", 2, "idm.py", "tiny/idm.yaml", *flags, cwd=tmp_path)
    output_dir = tmp_path / "out"
    summary = json.loads((output_dir / RUN_SUMMARY).read_text())
    assert summary["training"]["world_size"] == 2 and summary["metrics"]["global_step"] == 3
    assert list((output_dir / "checkpoint-3").glob("global_step3/*optim_states.pt"))  # DeepSpeed's own checkpoint
    _assert_loads_as_trained(output_dir, "idm")
    assert (
        summary["loss"]["loss_weighting"] == "none"
        and "Completion loss on the action tokens" in (output_dir / "README.md").read_text()
    )


@pytest.mark.slow
def test_zero3_loads_the_backbone_whole_and_merges_on_the_main_process(tmp_path, tiny_model_dirs):
    """Emu3's VQ lives inside the LM: pre-tokenising needs it whole although ZeRO-3 shards the model for training."""
    flags = ["--model_name_or_path", str(tiny_model_dirs("emu3")), "--cache_dir", str(tmp_path / "cache")]
    flags += ["--output_dir", "out", "--max_steps", "2", "--save_strategy", "no", "--eval_strategy", "no"]
    _launch("zero3.yaml", 2, "fdm.py", "tiny/fdm.yaml", *flags, cwd=tmp_path)
    summary = json.loads((tmp_path / "out" / RUN_SUMMARY).read_text())
    assert summary["training"]["world_size"] == 2 and summary["arch"] == "emu3"
    _assert_loads_as_trained(tmp_path / "out", "fdm")


def test_model_revision_reaches_load_backbone_for_hub_ids_only(tmp_path):
    recipe = str(RECIPES / "anole-7b" / "fdm.yaml")
    _, _, hub = parse("--config", recipe, "--model_name_or_path", "org/anole-fdm", "--model_revision", "round-2")
    assert hub.backbone_kwargs()["revision"] == "round-2"
    _, _, default = parse("--config", recipe, "--model_name_or_path", "org/anole-fdm")
    assert "revision" not in default.backbone_kwargs()
    _, _, local = parse("--config", recipe, "--model_name_or_path", str(tmp_path), "--model_revision", "round-2")
    with pytest.raises(ValueError, match="applies to Hub ids"):
        local.backbone_kwargs()


def test_wm_hub_train_checks_the_recipe_before_launching(tmp_path, capsys):
    from wm_hub.cli import main as cli

    tiny_idm = str(RECIPES / "tiny" / "idm.yaml")
    with pytest.raises(SystemExit, match=r"recipe is for the IDM \(task: idm\), not the FDM: run wm-hub train idm"):
        cli(["train", "fdm", "--config", tiny_idm])
    with pytest.raises(SystemExit) as exit_info:
        cli(["train", "idm", "--config", tiny_idm, "--lerning_rate", "1"])
    assert exit_info.value.code == 2
    assert "unknown option(s): --lerning_rate (did you mean --learning-rate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["train", "idm", "--config", tiny_idm, "--num_processes", "0"])
    assert capsys.readouterr().err == "error: recipe " + tiny_idm + ": num_processes must be >= 1, got 0\n"


def test_wm_hub_train_launches_the_recipe_with_accelerate(tmp_path):
    from wm_hub.cli.train import LaunchArguments, launch_command

    argv = ["--config", "r.yaml", "--learning_rate", "1e-4"]
    command = launch_command("fdm", argv, LaunchArguments(num_processes=2, accelerate_config_file="zero2.yaml"))
    assert command[1:] == [
        "-m", "accelerate.commands.launch", "--config_file", "zero2.yaml", "--num_processes", "2",
        "-m", "wm_hub.cli.train", "fdm", *argv,
    ]  # fmt: skip


@pytest.mark.slow
def test_wm_hub_train_trains_the_tiny_idm(tmp_path, tiny_model_dirs):
    out = tmp_path / "idm"
    command = [
        sys.executable, "-m", "wm_hub.cli", "train", "idm", "--config", str(RECIPES / "tiny" / "idm.yaml"),
        "--model_name_or_path", str(tiny_model_dirs("chameleon")), "--output_dir", str(out), "--max_steps", "2",
        "--eval_strategy", "no", "--save_strategy", "no", "--cache_dir", str(tmp_path / "cache"),
        "--num_processes", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    summary = json.loads((out / RUN_SUMMARY).read_text())
    assert summary["task"] == "idm" and summary["metrics"]["global_step"] == 2
    assert load_backbone(str(out)).trained_task == "idm"


def test_a_dry_run_reports_once_not_on_every_process(monkeypatch, capsys):
    data_args, training_args, model_args = parse("--config", str(RECIPES / "tiny" / "idm.yaml"), "--dry_run")
    assert main("idm", data_args, training_args, model_args)["train_rows"] == 64
    assert json.loads(capsys.readouterr().out)["train_rows"] == 64
    monkeypatch.setattr(WorldModelSFTConfig, "process_index", property(lambda self: 1))  # a replica of a launch
    assert main("idm", data_args, training_args, model_args)["train_rows"] == 64
    assert capsys.readouterr().out == ""


def test_wm_hub_train_refuses_a_run_that_does_nothing_or_writes_over_its_inputs(tmp_path, capsys):
    from wm_hub.cli import main as cli

    tiny_idm = str(RECIPES / "tiny" / "idm.yaml")
    model = tmp_path / "model"
    model.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    cases = [
        (["--max_steps", "0"], "max_steps must be -1 (train num_train_epochs) or >= 1, got 0"),
        (["--learning_rate", "0"], "learning_rate must be > 0, got 0.0"),
        (["--model_name_or_path", str(model), "--output_dir", str(model)], "is the model_name_or_path this run reads"),
        (["--data_root", str(tmp_path), "--output_dir", str(data / "run")], "is inside the data folder"),
    ]
    for flags, message in cases:
        argv = ["train", "idm", "--config", tiny_idm, *flags]
        if "--data_root" in flags:  # the recipe's source read from a local folder
            recipe = tmp_path / "local.yaml"
            text = Path(tiny_idm).read_text().replace("    name: shapes_world/test", "    data_dir: data")
            recipe.write_text(text)
            argv[3] = str(recipe)
        with pytest.raises(SystemExit) as exit_info:
            cli(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not any(model.iterdir()) and not any(data.iterdir())

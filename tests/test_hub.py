"""Publishing to and loading from the Hub, end to end against the local test hub (tests/hub_server.py).

Every push and every load runs in a fresh process whose environment points the real client libraries at the test
hub (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_DISABLE_XET=1``, an isolated ``HF_HOME``) before they are imported.
References (generated images, IDM actions, dataset rows) are computed here from the local folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from hub_server import hub, hub_env, run_client  # noqa: F401

SEED = 7
ACTION = "move the red square left by 2 cells"
RESULTS = {"aurora-bench": {"magicbrush": {"judge": 1.25, "es": 2.5}, "kubric": {"judge": 0.75}}, "note": "tiny"}
FDM_PROMPT = {"fdm_instruction": "Show the next frame after this action.", "idm_instruction": "Which action?"}
FDM2_PROMPT = {"fdm_instruction": "Round two: the next frame.", "idm_instruction": "Which action?"}
IDM_PROMPT = {"fdm_instruction": "Next frame.", "idm_instruction": "Name the action between the two frames."}


def _run_summary(task: str, base: str, prompt: dict) -> dict:
    """A ``training_run.json`` with the fields ``wm_hub.training.run.run_summary`` writes."""
    return {
        "task": task,
        "base_model": base,
        "arch": "chameleon",
        "image_size": 64,
        "prompt": prompt,
        "mixture": {
            "train_rows": 12,
            "eval_rows": 2,
            "seed": 0,
            "sources": [{"label": "shapes_world/triplets", "available": 14, "train": 12, "eval": 2}],
            "eval_sources": [],
        },
        "loss": {"loss_weighting": "l2", "weight_normalization": "mean"},
        "training": {"learning_rate": 0.0002, "per_device_train_batch_size": 2, "seed": 0, "precision": "fp32"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "q_proj|v_proj"},
        "metrics": {"train_loss": 5.1234, "global_step": 3},
        "versions": {"wm-hub": "0.1.0.dev0", "torch": torch.__version__},
    }


def _lora_run(base_dir: Path, out: Path, task: str, prompt: dict, seed: int) -> Path:
    """A LoRA training output as ``recipes/{idm,fdm}.py`` saves it: merged backbone, ``adapter/``, run summary.

    The adapter is random (``init_lora_weights=False``), so the merged model differs from its base.
    """
    from peft import LoraConfig, get_peft_model

    from wm_hub import load_backbone
    from wm_hub.models.base import PromptFormat
    from wm_hub.training.trainers import TEXT_ATTENTION_TARGETS

    torch.manual_seed(seed)
    backbone = load_backbone(str(base_dir), prompt=PromptFormat(**prompt))
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=TEXT_ATTENTION_TARGETS, init_lora_weights=False)
    trained = get_peft_model(backbone.model, lora)
    trained.save_pretrained(out / "adapter")
    backbone.model = trained.merge_and_unload()
    backbone.save_pretrained(out)
    (out / "training_run.json").write_text(json.dumps(_run_summary(task, str(base_dir), prompt)))
    (out / "training_args.bin").write_bytes(b"pickled arguments that may hold hub_token")  # never published
    (out / "checkpoint-3").mkdir()
    (out / "checkpoint-3" / "optimizer.pt").write_bytes(b"optimizer state")  # never published
    return out


def _fdm_ids(folder: Path, source) -> list[int]:
    from wm_hub import load_backbone
    from wm_hub.inference.generation import generate_images

    backbone = load_backbone(str(folder))
    prompt = backbone.build_fdm_sequence(source, ACTION).input_ids
    return generate_images(backbone, [prompt], num_candidates=2, seed=SEED, decode=False).image_ids.tolist()


def _fdm_pipeline(folder: Path, source) -> dict:
    """What ``pipeline("forward-dynamics")`` gives for a local folder (LOAD_SCRIPT does the same from the Hub)."""
    from transformers import pipeline

    result = pipeline("forward-dynamics", model=str(folder))(source, ACTION, seed=SEED, return_image_ids=True)
    return {"ids": result["image_ids"].tolist(), "pixels": hashlib.sha256(result["image"].tobytes()).hexdigest()}


def _idm_action(folder: Path, source, target) -> str:
    from transformers import pipeline

    return pipeline("inverse-dynamics", model=str(folder))(source, target, max_new_tokens=6)["action"]


def _rows(folder: Path, split: str) -> list[dict]:
    """Rows of a Hub-layout folder's split, images as sha256 of their bytes."""
    rows = []
    for path in sorted((folder / "data").glob(f"{split}-*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return [_digest_row(row) for row in rows]


def _digest_row(row: dict) -> dict:
    row = dict(row)
    for name in ("source", "target"):
        row[name] = hashlib.sha256(row[name]["bytes"]).hexdigest()
    if row.get("score") is not None:
        row["score"] = round(row["score"], 4)
    return row


@pytest.fixture(scope="module")
def local(tmp_path_factory, tiny_model_dirs):
    """The folders to publish and what they give locally."""
    from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
    from wm_hub.hub.dataset_folder import build_hub_dataset

    root = tmp_path_factory.mktemp("to-publish")
    base = tiny_model_dirs("chameleon")
    fdm = _lora_run(base, root / "fdm", "fdm", FDM_PROMPT, seed=1)
    fdm2 = _lora_run(base, root / "fdm-round-2", "fdm", FDM2_PROMPT, seed=2)
    idm = _lora_run(base, root / "idm", "idm", IDM_PROMPT, seed=3)
    (root / "results.json").write_text(json.dumps(RESULTS))

    shapes = build_hub_dataset("shapes_world", root / "shapes", config_name="triplets", num_train=6, num_test=2).out
    annotated = root / "annotated"  # an IDM annotation folder (wm-hub annotate's output layout)
    (annotated / "frames").mkdir(parents=True)
    world = ShapesWorld(WorldConfig(seed=5))
    lines = []
    for index in range(5):
        triplet = world.triplet("train", index)
        for name, image in (("source", triplet.source), ("target", triplet.target)):
            image.save(annotated / "frames" / f"{index}-{name}.png")
        row = {"id": f"ucf-{index}", "source": f"frames/{index}-source.png", "target": f"frames/{index}-target.png"}
        row.update(action=triplet.action.text, score=-0.5 * index, action_class=triplet.action.kind)
        row.update(video=f"v{index // 2}", frames=[index, index + 3], origin="ucf101/ApplyEyeMakeup")
        lines.append(json.dumps(row))
    (annotated / "annotations-00000-of-00001.jsonl").write_text("\n".join(lines) + "\n")
    settings = {"idm": "org/idm", "do_sample": False, "shard_size": 64, "data": "keyframes/"}
    (annotated / "annotation_config.json").write_text(json.dumps({"settings": settings, "score_field": "score"}))
    (annotated / "provenance.json").write_text(
        json.dumps({"keyframes": {"num_keyframes": 6, "min_interval": 20}, "sampling": {"k": 5}})
    )

    triplet = world.triplet("test", 0)
    source, target = triplet.source, triplet.target
    return {
        "root": root,
        "base": base,
        "fdm": fdm,
        "fdm2": fdm2,
        "idm": idm,
        "shapes": shapes,
        "annotated": annotated,
        "source": source,
        "target": target,
        "fdm_ids": _fdm_ids(fdm, source),
        "fdm2_ids": _fdm_ids(fdm2, source),
        "base_ids": _fdm_ids(base, source),
        "pipeline_fdm": _fdm_pipeline(fdm, source),
        "pipeline_fdm2": _fdm_pipeline(fdm2, source),
        "idm_action": _idm_action(idm, source, target),
        "shapes_rows": {split: _rows(shapes, split) for split in ("train", "test")},
    }


PUSH_SCRIPT = r"""
import contextlib, io, json, sys
from wm_hub.cli import main

root, out = sys.argv[1], sys.argv[2]
results = {}

def push(name, *args):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["push", *args])
    results[name] = {"code": code, **json.loads(stdout.getvalue())}

push("base", "model", f"{root}/base", "--repo-id", "org/tiny-chameleon")
push("fdm", "model", f"{root}/fdm", "--repo-id", "org/fdm", "--base-model", "org/tiny-chameleon",
     "--results", f"{root}/results.json", "--dataset", "org/data")
push("fdm_merged", "model", f"{root}/fdm", "--repo-id", "org/fdm-merged", "--merge", "--base-model",
     "org/tiny-chameleon", "--private")
push("fdm_round_2", "model", f"{root}/fdm-round-2", "--repo-id", "org/fdm-merged", "--merge", "--revision", "round-2")
push("idm", "model", f"{root}/idm", "--repo-id", "org/idm", "--base-model", "org/tiny-chameleon")
push("shapes", "dataset", f"{root}/shapes", "--repo-id", "org/data", "--config-name", "shapes_world")
push("ucf", "dataset", f"{root}/annotated", "--repo-id", "org/data",
     "--provenance", f"{root}/annotated/provenance.json")
push("fdm_again", "model", f"{root}/fdm", "--repo-id", "org/fdm", "--base-model", "org/tiny-chameleon",
     "--results", f"{root}/results.json", "--dataset", "org/data")
push("shapes_again", "dataset", f"{root}/shapes", "--repo-id", "org/data", "--config-name", "shapes_world")
json.dump(results, open(out, "w"))
"""


@pytest.fixture(scope="module")
def pushed(hub, hub_env, local):  # noqa: F811
    """Every push of this module, made by one fresh ``wm-hub push`` process."""
    root = local["root"]
    shutil.copytree(local["base"], root / "base")
    (root / "base" / "wm_hub.json").write_text('{"stale": true}')  # staged as a link: must be replaced, not written
    before = _digests(root)
    results = run_client(hub_env, PUSH_SCRIPT, str(root))
    assert _digests(root) == before, "a push changed the folders it published"
    return results


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def test_a_push_is_one_commit_with_everything_needed_and_nothing_else(hub, pushed):  # noqa: F811
    for name in ("base", "fdm", "fdm_merged", "idm", "shapes", "ucf", "fdm_round_2"):
        assert pushed[name]["code"] == 0 and pushed[name]["created_commit"], name
    adapter = hub.files("org/fdm")
    assert set(adapter) == {
        ".gitattributes",
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "training_run.json",
        "wm_hub.json",
    }
    config = json.loads(adapter["adapter_config.json"])
    assert config["base_model_name_or_path"] == "org/tiny-chameleon"
    assert config["revision"] == hub.head("org/tiny-chameleon")  # pinned to the base it was trained on
    manifest = json.loads(adapter["wm_hub.json"])
    assert manifest["layout"] == "adapter" and manifest["task"] == "fdm"
    assert _prompt(adapter) == FDM_PROMPT and manifest["backbone"]["arch"] == "chameleon"

    merged = hub.files("org/fdm-merged")
    assert {"config.json", "model.safetensors", "vqgan/config.json", "vqgan/diffusion_pytorch_model.safetensors"} <= (
        set(merged)
    )
    assert {"adapter/adapter_config.json", "processor_config.json", "wm_hub.json"} <= set(merged)
    assert not [name for name in merged if "checkpoint" in name or name.endswith(".bin")]
    assert _prompt(merged) == FDM_PROMPT
    assert json.loads(hub.files("org/tiny-chameleon")["wm_hub.json"])["layout"] == "merged"
    assert hub.state.repos[("model", "org/fdm-merged")].private

    for repo_id, repo_type, commits in (("org/fdm", "model", 2), ("org/data", "dataset", 3)):
        history = hub.history(repo_id, repo_type)
        assert len(history) == commits  # the initial commit, then one per push that changed something
    titles = [commit.title for commit in hub.history("org/data", "dataset")]
    assert titles == ["wm-hub push: config ucf101", "wm-hub push: config shapes_world", "initial commit"]


def _prompt(files: dict[str, bytes]) -> dict[str, str]:
    """The instruction strings a published model's processor (``processor_config.json``) carries."""
    saved = json.loads(files["processor_config.json"])
    return {name: saved[name] for name in ("fdm_instruction", "idm_instruction")}


def test_pushing_identical_content_again_makes_no_commit(hub, pushed):  # noqa: F811
    for name, first in (("fdm_again", "fdm"), ("shapes_again", "ucf")):
        assert pushed[name]["code"] == 0
        assert pushed[name]["created_commit"] is False and pushed[name]["url"] is None
        assert pushed[name]["commit"] == pushed[first]["commit"]
    assert hub.head("org/fdm") == pushed["fdm"]["commit"]


def test_a_recipe_with_push_to_hub_publishes_through_the_push_path(hub, hub_env, tiny_model_dirs, tmp_path):  # noqa: F811
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    command = [sys.executable, str(recipes / "fdm.py"), "--config", str(recipes / "tiny" / "fdm.yaml")]
    command += ["--model_name_or_path", str(tiny_model_dirs("chameleon")), "--output_dir", str(tmp_path / "run")]
    command += ["--cache_dir", str(tmp_path / "cache"), "--max_steps", "2", "--save_steps", "1"]
    command += ["--eval_strategy", "no", "--push_to_hub", "true", "--hub_model_id", "org/trained-fdm"]
    env = {**hub_env, "WANDB_DISABLED": "true"}
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-4000:]
    assert (tmp_path / "run" / "checkpoint-2").is_dir()  # saved locally, never published
    files = hub.files("org/trained-fdm")
    assert {"config.json", "model.safetensors", "README.md", "wm_hub.json", "training_run.json"} <= set(files)
    assert "adapter/adapter_config.json" in files  # a LoRA run: the merged layout keeps the adapter beside it
    assert not [name for name in files if "checkpoint" in name or name.endswith(".bin") or name.startswith("_")]
    assert json.loads(files["wm_hub.json"])["task"] == "fdm"
    assert "org/trained-fdm" in files["README.md"].decode()
    assert [commit.title for commit in hub.history("org/trained-fdm")][0] == "End of training"
    assert hub.token not in process.stdout + process.stderr


def test_revisions_are_branches_and_the_token_is_never_written(hub, pushed):  # noqa: F811
    assert pushed["fdm_round_2"]["revision"] == "round-2"
    assert _prompt(hub.files("org/fdm-merged", revision="round-2")) == FDM2_PROMPT
    assert _prompt(hub.files("org/fdm-merged")) == FDM_PROMPT
    for key in hub.state.repos:
        for content in hub.files(key[1], key[0]).values():
            assert hub.token.encode() not in content


def test_cards_carry_the_metadata(hub, pushed):  # noqa: F811
    from huggingface_hub import DatasetCard, ModelCard

    card = ModelCard(hub.files("org/fdm")["README.md"].decode())
    data = card.data.to_dict()
    assert data["base_model"] == "org/tiny-chameleon" and data["datasets"] == ["org/data"]
    assert data["license"] == "cc-by-nc-4.0" and data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "image-to-image"
    assert {"wm-hub", "world-model", "forward-dynamics", "lora"} <= set(data["tags"])
    for text in ("| aurora-bench/magicbrush | es | 2.5 |", "| aurora-bench/kubric | judge | 0.75 |", "Limitations"):
        assert text in card.text, text
    assert "note" not in card.text  # not a number: not a result
    assert "| shapes_world/triplets | 14 | 12 | 2 |" in card.text and "| learning_rate | 0.0002 |" in card.text
    assert "holds the LoRA adapter alone" in card.text and "Qiu" in card.text
    assert 'pipeline("forward-dynamics", model="org/fdm")' in card.text
    assert "holds the LoRA adapter alone" not in ModelCard(hub.files("org/fdm-merged")["README.md"].decode()).text

    files = hub.files("org/data", "dataset")
    card = DatasetCard(files["README.md"].decode())
    data = card.data.to_dict()
    assert [config["config_name"] for config in data["configs"]] == ["shapes_world", "ucf101"]
    sizes = {
        info["config_name"]: {s["name"]: s["num_examples"] for s in info["splits"]} for info in data["dataset_info"]
    }
    assert sizes == {"shapes_world": {"train": 6, "test": 2}, "ucf101": {"train": 5}}
    assert data["license"] == "other" and "world-model" in data["tags"]  # apache-2.0 + unknown (UCF-101)
    provenance = json.loads(files["ucf101/provenance.json"])
    assert provenance["idm"] == "org/idm" and provenance["keyframes"]["min_interval"] == 20
    assert provenance["sampling"] == {"k": 5} and provenance["source"]["name"] == "UCF-101"
    assert provenance["scores"]["count"] == 5 and provenance["scores"]["max"] == 0.0
    assert provenance["scores"]["min"] == -2.0 and provenance["rows"] == {"train": 5}
    for text in ("`org/idm`", "min_interval=20", "k=5", "UCF-101", "min -2.0", "Apache-2.0"):
        assert text in card.text, text


LOAD_SCRIPT = r"""
import hashlib, json, sys
import datasets
from huggingface_hub import DatasetCard, ModelCard
from transformers import pipeline
from wm_hub import load_backbone
from wm_hub.inference.generation import generate_images
from PIL import Image

root, shapes_commit, out = sys.argv[1], sys.argv[2], sys.argv[3]
source, target = Image.open(f"{root}/source.png"), Image.open(f"{root}/target.png")
ACTION, SEED = %(action)r, %(seed)d
results = {}

def fdm_ids(repo_id, revision=None):
    backbone = load_backbone(repo_id, revision=revision)
    prompt = backbone.build_fdm_sequence(source, ACTION).input_ids
    ids = generate_images(backbone, [prompt], num_candidates=2, seed=SEED, decode=False).image_ids.tolist()
    return {"ids": ids, "prompt": backbone.processor.fdm_instruction}

def rows(dataset):
    digest = lambda image: hashlib.sha256(image["bytes"]).hexdigest()
    return [{**row, "source": digest(row["source"]), "target": digest(row["target"]),
             "score": None if row["score"] is None else round(row["score"], 4)} for row in dataset]

def fdm_pipeline(repo_id, revision=None):
    result = pipeline("forward-dynamics", model=repo_id, revision=revision)(source, ACTION, seed=SEED,
                                                                          return_image_ids=True)
    return {"ids": result["image_ids"].tolist(), "pixels": hashlib.sha256(result["image"].tobytes()).hexdigest()}

results["pipeline_fdm"] = fdm_pipeline("org/fdm")  # adapter: base model from the Hub, adapter merged
results["fdm_round_2"] = fdm_ids("org/fdm-merged", revision="round-2")
shapes = datasets.load_dataset("org/data", "shapes_world")
shapes = shapes.cast_column("source", datasets.Image(decode=False)).cast_column("target", datasets.Image(decode=False))
results["shapes"] = {split: rows(shapes[split]) for split in shapes}
if %(online)r:
    results["pipeline_fdm_merged"] = fdm_pipeline("org/fdm-merged")
    results["pipeline_round_2"] = fdm_pipeline("org/fdm-merged", revision="round-2")
    results["pipeline_idm"] = pipeline("inverse-dynamics", model="org/idm")(source, target, max_new_tokens=6)
    from wm_hub.data.mixture import SourceConfig, build_mixture
    mixture = build_mixture([SourceConfig(path="org/data", config="shapes_world", revision=shapes_commit)])
    results["mixture"] = sorted(mixture.train["id"])
    try:  # the ucf101 config came one commit later
        build_mixture([SourceConfig(path="org/data", config="ucf101", revision=shapes_commit)])
    except ValueError as error:
        results["mixture_error"] = str(error)
    results["fdm"] = fdm_ids("org/fdm")
    results["model_card"] = ModelCard.load("org/fdm").data.to_dict()
    results["dataset_card"] = DatasetCard.load("org/data", repo_type="dataset").data.to_dict()
    results["ucf"] = len(datasets.load_dataset("org/data", "ucf101", split="train"))
    stream = datasets.load_dataset("org/data", "shapes_world", split="train", streaming=True)
    results["stream"] = rows(stream.cast_column("source", datasets.Image(decode=False))
                             .cast_column("target", datasets.Image(decode=False)))
json.dump(results, open(out, "w"))
"""


@pytest.fixture(scope="module")
def loaded(hub_env, local, pushed):  # noqa: F811
    local["source"].save(local["root"] / "source.png")
    local["target"].save(local["root"] / "target.png")
    script = LOAD_SCRIPT % {"action": ACTION, "seed": SEED, "online": True}
    return run_client(hub_env, script, str(local["root"]), pushed["shapes"]["commit"])


def test_published_models_work_in_pipelines_as_the_local_folders_do(local, loaded):
    for name in ("pipeline_fdm", "pipeline_fdm_merged"):  # adapter and merged: the same image for the same seed
        assert loaded[name] == local["pipeline_fdm"], name
    assert loaded["pipeline_round_2"] == local["pipeline_fdm2"] != local["pipeline_fdm"]  # revision="round-2"
    assert loaded["pipeline_idm"]["action"] == local["idm_action"] and loaded["pipeline_idm"]["score"] < 0


def test_published_models_generate_what_the_local_folders_generate(local, loaded):
    assert loaded["fdm"]["ids"] == local["fdm_ids"]  # adapter: base from the Hub + merged adapter
    assert loaded["fdm"]["prompt"] == FDM_PROMPT["fdm_instruction"]  # the wm-hub settings travel with the adapter
    assert local["fdm_ids"] != local["base_ids"]  # the adapter changes the model
    assert loaded["fdm_round_2"]["ids"] == local["fdm2_ids"] != local["fdm_ids"]  # revision="round-2"
    assert loaded["fdm_round_2"]["prompt"] == FDM2_PROMPT["fdm_instruction"]
    assert loaded["model_card"]["base_model"] == "org/tiny-chameleon"
    assert [config["config_name"] for config in loaded["dataset_card"]["configs"]] == ["shapes_world", "ucf101"]


def test_published_datasets_load_with_the_same_rows_and_image_bytes(local, loaded):
    assert loaded["shapes"] == local["shapes_rows"]
    assert loaded["stream"] == local["shapes_rows"]["train"]
    assert loaded["ucf"] == 5
    assert loaded["mixture"] == sorted(row["id"] for row in local["shapes_rows"]["train"])  # a pinned revision
    assert "ucf101" in loaded["mixture_error"]


def test_offline_loads_come_from_the_cache_without_a_request(hub, hub_env, local, pushed, loaded):  # noqa: F811
    before = len(hub.state.requests)
    script = LOAD_SCRIPT % {"action": ACTION, "seed": SEED, "online": False}
    offline = run_client({**hub_env, "HF_HUB_OFFLINE": "1"}, script, str(local["root"]), "main")
    assert len(hub.state.requests) == before
    assert offline["pipeline_fdm"] == local["pipeline_fdm"]
    assert offline["fdm_round_2"]["ids"] == local["fdm2_ids"]
    assert offline["shapes"] == local["shapes_rows"]


INTERRUPTED_SCRIPT = r"""
import json, sys
from huggingface_hub import HfApi
from wm_hub.cli import main

root, out = sys.argv[1], sys.argv[2]
api = HfApi()
results = {"before": api.model_info("org/fdm").sha}
try:
    main(["push", "model", f"{root}/fdm-round-2", "--repo-id", "org/fdm", "--base-model", "org/tiny-chameleon"])
except SystemExit as error:
    results["error"] = str(error)
results["after_error"] = api.model_info("org/fdm").sha
results["code"] = main(["push", "model", f"{root}/fdm-round-2", "--repo-id", "org/fdm",
                        "--base-model", "org/tiny-chameleon"])
results["after_rerun"] = api.model_info("org/fdm").sha
json.dump(results, open(out, "w"))
"""


def test_an_interrupted_push_leaves_the_previous_commit_and_a_rerun_completes_it(hub, hub_env, local, loaded):  # noqa: F811
    before = hub.files("org/fdm")
    hub.fail_next("commit", status=500)
    result = run_client(hub_env, INTERRUPTED_SCRIPT, str(local["root"]))
    assert "the Hub answered 500" in result["error"] and "rerun" in result["error"]
    assert result["after_error"] == result["before"]
    assert result["code"] == 0 and result["after_rerun"] != result["before"]
    history = hub.history("org/fdm")
    assert [commit.id for commit in history[1:]] == [result["before"], *[c.id for c in history[2:]]]
    after = hub.files("org/fdm")
    assert after["adapter_model.safetensors"] != before["adapter_model.safetensors"]
    assert _prompt(after) == FDM2_PROMPT


def test_bad_pushes_stop_before_any_upload_with_one_clear_error(hub, local, tmp_path, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    from wm_hub.cli import main

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # bad input is found before the Hub is needed
    before = len(hub.state.requests)
    cases = [
        (["model", str(tmp_path / "missing"), "--repo-id", "org/x"], "no such folder"),
        (["model", str(local["shapes"] / "README.md"), "--repo-id", "org/x"], "README.md: a file, not a folder"),
        (["model", str(local["shapes"]), "--repo-id", "org/x"], "not a model folder (no config.json"),
        (["model", str(local["fdm"]), "--repo-id", "org/x"], "names the local base model"),
        (["dataset", str(local["fdm"]), "--repo-id", "org/x"], "expected a folder written by `wm-hub data build`"),
        (["dataset", str(local["shapes"]), "--repo-id", "org/x", "--config-name", "data"], "config name 'data'"),
        (["dataset", str(local["shapes"]), "--repo-id", "org/x"], "HF_HUB_OFFLINE is set: a push needs the Hub"),
    ]
    for index, (args, message) in enumerate(cases):
        if index == len(cases) - 1:
            monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as tests/conftest.py sets it
        with pytest.raises(SystemExit, match=re.escape(message)):
            main(["push", *args])
    assert len(hub.state.requests) == before


def test_an_unreachable_hub_is_one_line_naming_the_endpoint(tiny_model_dirs):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_TOKEN": "hf_test", "HF_HUB_OFFLINE": "0"}
    command = [sys.executable, "-m", "wm_hub.cli", "push", "model", str(tiny_model_dirs("chameleon")), "--repo-id",
               "org/unreachable"]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        f"error: cannot reach the Hub at {endpoint} (ConnectError: [Errno 111] Connection refused); nothing was "
        "committed, rerun to retry"
    ]
    assert "hf_test" not in completed.stderr


def test_the_test_hub_answers_like_the_hub(hub, pushed):  # noqa: F811
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    def call(path: str, **headers: str):
        try:
            with urlopen(Request(hub.url + path, headers=headers)) as response:
                return response.status, dict(response.headers), response.read()
        except HTTPError as error:
            return error.code, dict(error.headers), error.read()

    status, headers, body = call("/org/fdm/resolve/main/wm_hub.json", Range="bytes=2-9")
    assert status == 206 and headers["Content-Range"].startswith("bytes 2-9/") and len(body) == 8
    assert headers["X-Repo-Commit"] == hub.head("org/fdm") and headers["ETag"].strip('"')
    assert call("/org/fdm/resolve/main/nope.json")[1]["X-Error-Code"] == "EntryNotFound"
    assert call("/org/fdm/resolve/round-9/wm_hub.json")[1]["X-Error-Code"] == "RevisionNotFound"
    assert call("/org/nope/resolve/main/config.json")[1]["X-Error-Code"] == "RepoNotFound"
    private = "/api/models/org/fdm-merged"
    assert call(private)[0] == 404 and call(private, Authorization=f"Bearer {hub.token}")[0] == 200
    status, _, body = call("/api/datasets/org/data/tree/main/ucf101")
    assert status == 200 and {item["path"] for item in json.loads(body)} == {
        "ucf101/build_report.json",
        "ucf101/provenance.json",
        "ucf101/train-00000-of-00001.parquet",
    }


def test_loading_an_unknown_id_or_an_uncached_revision_offline_names_the_problem():
    from wm_hub import load_backbone

    with pytest.raises(FileNotFoundError, match=re.escape("org/absent@round-2 is not in the Hugging Face cache")):
        load_backbone("org/absent", revision="round-2")  # tests/conftest.py sets HF_HUB_OFFLINE=1
    with pytest.raises(FileNotFoundError, match="is neither a local folder nor a model on the Hub"):
        load_backbone("no/such/folder or id")

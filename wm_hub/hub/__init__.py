"""Publishing world models and synthetic trajectories to the Hugging Face Hub, and loading them back.

Pushes go through ``huggingface_hub.HfApi`` (``create_repo``, ``create_branch``, ``list_repo_tree``,
``create_commit``) and follow three rules:

- **one commit per push**: everything a push publishes (weights, card, metadata) is staged in a temporary folder and
  sent in a single ``create_commit``, whose ``parent_commit`` is the head the push started from, so the
  remote moves from one complete state to the next; an interrupted push leaves it where it was and a rerun completes
  it;
- **idempotent**: ``create_commit`` drops every staged file whose content the remote already holds (the hashes
  the Hub reports at pre-upload), and identical content makes no commit at all;
- **no secrets**: the token comes from ``HF_TOKEN`` or the login cache and is never printed or written; what is
  published is a curated list of files (no pickled training arguments, no checkpoints).

Model repositories (:func:`push_model`) come in two layouts:

- ``merged``: the whole backbone as :meth:`~wm_hub.models.base.Backbone.save_pretrained` writes it (``config.json``
  with the ``wm_hub`` settings, weights, tokenizer, image processor, ``vqgan/``), plus ``adapter/`` when the run
  used LoRA. It loads without the base model.
- ``adapter``: the LoRA adapter only (``adapter_config.json`` naming the base model on the Hub, pinned to a
  commit, and ``adapter_model.safetensors``), the tokenizer, and ``wm_hub.json`` with the wm-hub settings;
  :func:`wm_hub.load_backbone` loads the base model (its image tokenizer included) and merges the adapter.

Both hold ``wm_hub.json`` (task, layout, backbone settings, base model), ``training_run.json`` when the folder has
one and ``README.md``, the model card (:mod:`wm_hub.training.model_card`).

Dataset repositories (:func:`push_dataset`) hold one config per origin (``mit``, ``kinetics``, ``ucf``,
``shapes_world``...): ``<config>/<split>-0000i-of-0000n.parquet`` (triplets with embedded ``Image`` columns, as
``wm-hub data build`` writes them), ``<config>/provenance.json`` and ``<config>/build_report.json``, and a
``README.md`` whose YAML declares every config (``configs``, ``dataset_info``), so
``datasets.load_dataset(repo_id, config)`` reads it without wm-hub code, streaming included. A push replaces one
config and keeps the others.

Loading is the models layer's (:func:`wm_hub.models.model_folder.resolve_model_folder`): a Hub id is downloaded once
with ``snapshot_download`` at the requested revision, so the language model, tokenizer and image tokenizer come from
the same commit; ``HF_HUB_OFFLINE=1`` reads the cached snapshot.
"""

from wm_hub.hub.commit import PushResult, commit_folder, push_failure
from wm_hub.hub.dataset_push import SOURCES, DatasetPushConfig, push_dataset
from wm_hub.hub.model_push import ModelPushConfig, push_model

__all__ = [
    "SOURCES",
    "DatasetPushConfig",
    "ModelPushConfig",
    "PushResult",
    "commit_folder",
    "push_dataset",
    "push_failure",
    "push_model",
]

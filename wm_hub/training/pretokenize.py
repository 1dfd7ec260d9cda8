"""Pre-tokenisation: triplets -> ``input_ids``, ``labels``, ``token_weights`` once, with the frozen VQ encoder.

Training never runs the VQ encoder. Two cached ``Dataset.map`` passes do the work:

1. :func:`encode_triplets` runs the encoder once per (dataset, backbone): images become their token ids and the
   per-token change distances of the recognition weights. It knows nothing of the task or the weighting, so an IDM
   and an FDM trained on the same source, or a sweep of weightings, encode the images once.
2. :func:`pretokenize` turns encoded rows into one task's sequences and weights (no encoder, a few seconds).

Each pass is cached under a fingerprint of its inputs, so a second call with the same inputs loads the cached
Arrow file instead of recomputing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import torch
from datasets.fingerprint import Hasher

from wm_hub.models.base import Backbone
from wm_hub.training.recognition import LossWeighting, WeightNormalization, change_distances, weights_from_distances

# Bump when the produced columns change meaning, so old caches are not reused.
PRETOKENIZE_FORMAT_VERSION = 2

# What encode_triplets puts in place of the two images.
ENCODED_FEATURES = datasets.Features(
    {
        "source_ids": datasets.List(datasets.Value("int32")),
        "target_ids": datasets.List(datasets.Value("int32")),
        "change_distances": datasets.List(datasets.Value("float32")),
    }
)

PRETOKENIZED_FEATURES = datasets.Features(
    {
        "input_ids": datasets.List(datasets.Value("int32")),
        "labels": datasets.List(datasets.Value("int32")),
        "token_weights": datasets.List(datasets.Value("float32")),
    }
)


@dataclass
class PretokenizeConfig:
    """How triplets become training sequences.

    Args:
        task: ``fdm`` (source + action -> target) or ``idm`` (source + target -> action).
        loss_weighting: ``l2`` puts recognition weights on the FDM target's image tokens; ``none`` weights every
            supervised token 1. IDM sequences always use ``none``.
        weight_normalization: ``mean`` (weights average 1 over each target image), ``none`` (raw distances) or
            ``batch`` (raw distances here; the FDM trainer normalises each batch and applies the floor).
        weight_floor: ``l2`` only: weights ``floor + (1 - floor) * w`` (0: the paper's weights; see
            :func:`~wm_hub.training.recognition.recognition_weights`).
        batch_size: Triplets per encoding batch (one VQ encoder call encodes the batch's sources and targets).
    """

    task: Literal["fdm", "idm"] = "fdm"
    loss_weighting: LossWeighting = "l2"
    weight_normalization: WeightNormalization = "mean"
    weight_floor: float = 0.0
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.task not in ("fdm", "idm"):
            raise ValueError(f"task must be 'fdm' or 'idm', got {self.task!r}")
        if self.loss_weighting not in ("none", "l2"):
            raise ValueError(f"loss_weighting must be 'none' or 'l2', got {self.loss_weighting!r}")
        if self.task == "idm" and self.loss_weighting != "none":
            raise ValueError("loss_weighting='l2' weights FDM target image tokens; use loss_weighting='none' for idm")


def backbone_fingerprint(backbone: Backbone) -> str:
    """``Backbone.image_fingerprint`` plus the prompts, which decide the sequences (read anew: they can change)."""
    return Hasher.hash([backbone.image_fingerprint(), backbone.processor.settings()])


def _encode_batch(batch: dict[str, list[Any]], backbone: Backbone) -> dict[str, list]:
    sources, targets = batch["source"], batch["target"]
    count = len(sources)
    ids, features = backbone.encode_images_with_features(list(sources) + list(targets))
    return {
        "source_ids": ids[:count].tolist(),
        "target_ids": ids[count:].tolist(),
        "change_distances": change_distances(features[:count], features[count:]).tolist(),
    }


def _map_cache_file(
    dataset: datasets.Dataset, cache_dir: str | Path | None, stem: str, fingerprint: str
) -> str | None:
    """Where an in-memory dataset's ``map`` result is cached (file-backed ones cache next to their Arrow files)."""
    if dataset.cache_files or cache_dir is None:
        return None
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return str(Path(cache_dir) / f"{stem}-{fingerprint}.arrow")


def encode_triplets(
    dataset: datasets.Dataset,
    backbone: Backbone,
    cache_dir: str | Path | None = None,
    batch_size: int = 16,
    desc: str | None = None,
) -> datasets.Dataset:
    """Replace a triplet dataset's ``source`` and ``target`` images by what training needs of them.

    ``source_ids`` and ``target_ids`` are the images' LM token ids (``Backbone.encode_images``),
    ``change_distances`` the per-token squared L2 distance between their pre-quantisation features (paper Eq. 2,
    before normalisation); the other columns are kept. The result depends on the dataset and the backbone only, and
    is cached under their fingerprints.

    Args:
        dataset: Triplets with ``source`` and ``target`` images.
        backbone: The backbone whose VQ encoder is used.
        cache_dir: Where to cache the result of an in-memory dataset.
        batch_size: Triplets per encoder call.
        desc: Progress-bar label.
    """
    missing = {"source", "target"} - set(dataset.column_names)
    if missing:
        raise ValueError(f"encode_triplets needs image columns source, target; missing {sorted(missing)}")
    fingerprint = Hasher.hash([dataset._fingerprint, backbone.image_fingerprint(), PRETOKENIZE_FORMAT_VERSION])
    kept = [name for name in dataset.column_names if name not in ("source", "target")]
    features = datasets.Features({**{name: dataset.features[name] for name in kept}, **ENCODED_FEATURES})
    return dataset.map(
        _encode_batch,
        batched=True,
        batch_size=batch_size,
        fn_kwargs={"backbone": backbone},
        remove_columns=["source", "target"],
        features=features,
        new_fingerprint=fingerprint,
        cache_file_name=_map_cache_file(dataset, cache_dir, "encoded", fingerprint),
        desc=desc or "Encoding images (VQ)",
    )


def _sequence_batch(batch: dict[str, list[Any]], backbone: Backbone, config: PretokenizeConfig) -> dict[str, list]:
    output: dict[str, list] = {"input_ids": [], "labels": [], "token_weights": []}
    rationales = batch.get("rationale") or [None] * len(batch["action"])
    ids = batch.get("id") or [None] * len(batch["action"])
    for source_ids, target_ids, action, distances, rationale, row_id in zip(
        batch["source_ids"], batch["target_ids"], batch["action"], batch["change_distances"], rationales, ids
    ):
        if config.task == "idm" and backbone.writes_rationale and rationale is None:
            raise ValueError(
                f"row {row_id!r} has no rationale, and the IDM is trained to write one before the action "
                "(idm_rationale: true): use sources with a `rationale` column (shapes_world writes the changed "
                "cells), or set idm_rationale: false"
            )
        if config.task == "fdm":
            example = backbone.build_fdm_sequence(source_ids, action, target_ids)
        else:
            example = backbone.build_idm_sequence(source_ids, target_ids, action, rationale)
        weights = torch.ones(len(example.input_ids))
        if config.loss_weighting == "l2":
            weights[example.target_image_positions] = weights_from_distances(
                torch.tensor(distances), config.weight_normalization, config.weight_floor
            )
        output["input_ids"].append(example.input_ids)
        output["labels"].append(example.labels)
        output["token_weights"].append(weights.tolist())
    return output


def pretokenize(
    dataset: datasets.Dataset,
    backbone: Backbone,
    config: PretokenizeConfig | None = None,
    cache_dir: str | Path | None = None,
    desc: str | None = None,
) -> datasets.Dataset:
    """Turn a triplet dataset (``TRIPLET_FEATURES``) into training sequences.

    Image columns are replaced by ``input_ids`` (int32), ``labels`` (``-100`` outside the completion) and
    ``token_weights`` (float32; recognition weights on the FDM target's image tokens with ``loss_weighting='l2'``,
    1 elsewhere); the other columns (``id``, ``origin``...) are kept. A dataset that :func:`encode_triplets` has
    already encoded is taken as it is; one with images is encoded first (cached on its own, see the module).

    Args:
        dataset: Triplets with ``source``, ``target`` (images, or the columns of :func:`encode_triplets`) and
            ``action``.
        backbone: The backbone whose VQ tokenizer and sequence format are used.
        config: Task and weighting settings.
        cache_dir: Where to cache the results of an in-memory dataset (file-backed datasets cache next to their
            Arrow files, as ``datasets`` does).
        desc: Progress-bar label.

    Returns:
        The pre-tokenised dataset, loaded from cache when the same inputs were processed before.
    """
    config = config or PretokenizeConfig()
    encoded = set(ENCODED_FEATURES) <= set(dataset.column_names)
    missing = ({"action"} if encoded else {"source", "target", "action"}) - set(dataset.column_names)
    if missing:
        raise ValueError(f"pretokenize needs columns source, target, action; missing {sorted(missing)}")
    if not encoded:
        dataset = encode_triplets(dataset, backbone, cache_dir=cache_dir, batch_size=config.batch_size)
    fingerprint = Hasher.hash(
        [dataset._fingerprint, backbone_fingerprint(backbone), asdict(config), PRETOKENIZE_FORMAT_VERSION]
    )
    kept = [name for name in dataset.column_names if name not in ENCODED_FEATURES]
    features = datasets.Features({**{name: dataset.features[name] for name in kept}, **PRETOKENIZED_FEATURES})
    return dataset.map(
        _sequence_batch,
        batched=True,
        batch_size=256,
        fn_kwargs={"backbone": backbone, "config": config},
        remove_columns=list(ENCODED_FEATURES),
        features=features,
        new_fingerprint=fingerprint,
        cache_file_name=_map_cache_file(dataset, cache_dir, "pretokenized", fingerprint),
        desc=desc or f"Pre-tokenising ({config.task}, {config.loss_weighting})",
    )

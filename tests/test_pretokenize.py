"""Pre-tokenisation: exact sequences from triplets, recognition weights on the FDM target, cached by fingerprint."""

from __future__ import annotations

import datasets
import pytest
import torch
from PIL import Image, ImageDraw

from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet
from wm_hub.models.base import IGNORE_INDEX
from wm_hub.training.pretokenize import (
    PretokenizeConfig,
    backbone_fingerprint,
    encode_triplets,
    pretokenize,
)
from wm_hub.training.recognition import recognition_weights


def scene(cell: tuple[int, int], colour=(220, 30, 30), size: int = 64) -> Image.Image:
    """A plain scene with one square filling grid cell ``(x, y)`` of an 8x8 grid (one cell per tiny-VQ token)."""
    image = Image.new("RGB", (size, size), (230, 230, 230))
    step = size // 8
    x, y = cell
    ImageDraw.Draw(image).rectangle((x * step, y * step, x * step + step - 1, y * step + step - 1), fill=colour)
    return image


@pytest.fixture()
def triplet_parquet(tmp_path, real_images):
    rows = [
        make_triplet("moved", scene((1, 1)), scene((5, 6)), "move the red square", "test/shapes"),
        make_triplet("same", scene((2, 2)), scene((2, 2)), "wait", "test/shapes"),
        make_triplet("real", real_images[0], real_images[1], "swap the scenes", "test/real"),
    ]
    path = tmp_path / "triplets.parquet"
    datasets.Dataset.from_list(rows, features=TRIPLET_FEATURES).to_parquet(path)
    return path


def load_triplets(path, cache_dir):
    return datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(cache_dir))


@pytest.mark.parametrize("arch", ["chameleon", "emu3"])
def test_fdm_rows_match_the_backbone_and_weights_average_one(arch, tiny_backbones, triplet_parquet, tmp_path):
    backbone = tiny_backbones(arch)
    triplets = load_triplets(triplet_parquet, tmp_path / "cache")
    rows = pretokenize(triplets, backbone, PretokenizeConfig(task="fdm", loss_weighting="l2", batch_size=2))
    assert rows.column_names == [
        "id", "action", "origin", "score", "action_class", "video", "frames", "rationale", "input_ids", "labels",
        "token_weights",
    ]  # fmt: skip
    for index in range(len(rows)):
        triplet, row = triplets[index], rows[index]
        expected = backbone.build_fdm_sequence(triplet["source"], triplet["action"], triplet["target"])
        assert row["input_ids"] == expected.input_ids and row["labels"] == expected.labels
        positions = torch.tensor(expected.target_image_positions)
        ids = torch.tensor(row["input_ids"])
        assert torch.equal(ids[positions], backbone.encode_images([triplet["target"]])[0])
        weights = torch.tensor(row["token_weights"])
        assert len(weights) == len(ids)
        torch.testing.assert_close(weights[positions].mean(), torch.tensor(1.0))
        others = torch.ones(len(ids), dtype=torch.bool)
        others[positions] = False
        assert (weights[others] == 1).all()  # prompt, eoi, eos and Emu3's layout tokens keep weight 1
    assert (torch.tensor(rows[1]["token_weights"]) == 1).all()  # identical source and target -> all ones
    assert torch.tensor(rows[0]["token_weights"]).std() > 0.1


def test_idm_rows_and_unweighted_fdm(tiny_backbones, triplet_parquet, tmp_path):
    backbone = tiny_backbones("liquid")
    triplets = load_triplets(triplet_parquet, tmp_path / "cache")
    idm = pretokenize(triplets, backbone, PretokenizeConfig(task="idm", loss_weighting="none"))
    expected = backbone.build_idm_sequence(triplets[0]["source"], triplets[0]["target"], triplets[0]["action"])
    assert idm[0]["input_ids"] == expected.input_ids and idm[0]["labels"] == expected.labels
    action = backbone.tokenizer(triplets[0]["action"], add_special_tokens=False)["input_ids"]
    assert [label for label in idm[0]["labels"] if label != IGNORE_INDEX] == action + [backbone.eos_token_id]
    plain = pretokenize(triplets, backbone, PretokenizeConfig(task="fdm", loss_weighting="none"))
    assert all(weight == 1 for row in plain["token_weights"] for weight in row)
    with pytest.raises(ValueError, match="use loss_weighting='none' for idm"):
        PretokenizeConfig(task="idm", loss_weighting="l2")


def test_second_call_is_served_from_cache(tiny_backbones, triplet_parquet, tmp_path, monkeypatch):
    backbone = tiny_backbones("chameleon")
    triplets = load_triplets(triplet_parquet, tmp_path / "cache")
    calls = []
    original = backbone.encode_images_with_features
    monkeypatch.setattr(backbone, "encode_images_with_features", lambda images: calls.append(1) or original(images))
    first = pretokenize(triplets, backbone)
    assert calls
    calls.clear()
    second = pretokenize(load_triplets(triplet_parquet, tmp_path / "cache"), backbone)
    assert calls == [] and second["input_ids"] == first["input_ids"]
    assert second.cache_files[0]["filename"] == first.cache_files[0]["filename"]
    # other settings -> other sequences and weights, from the same encoded images (the encoder is not run again)
    raw = pretokenize(triplets, backbone, PretokenizeConfig(weight_normalization="none"))
    assert calls == [] and raw["token_weights"] != first["token_weights"]
    assert raw.cache_files[0]["filename"] != first.cache_files[0]["filename"]


def test_idm_and_fdm_share_one_encoding_and_weights_equal_the_one_pass_reference(
    tiny_backbones, triplet_parquet, tmp_path, monkeypatch
):
    backbone = tiny_backbones("chameleon")
    triplets = load_triplets(triplet_parquet, tmp_path / "cache")
    calls = []
    original = backbone.encode_images_with_features
    monkeypatch.setattr(backbone, "encode_images_with_features", lambda images: calls.append(1) or original(images))
    fdm = pretokenize(triplets, backbone, PretokenizeConfig(task="fdm", loss_weighting="l2", weight_floor=0.5))
    encoded_once = len(calls)
    idm = pretokenize(triplets, backbone, PretokenizeConfig(task="idm", loss_weighting="none"))
    assert encoded_once > 0 and len(calls) == encoded_once and len(idm) == len(fdm) == 3
    # an encoded dataset is taken as it is
    encoded = encode_triplets(triplets, backbone)
    assert len(calls) == encoded_once
    assert (
        pretokenize(encoded, backbone, PretokenizeConfig(task="idm", loss_weighting="none"))["input_ids"]
        == (idm["input_ids"])
    )
    for index in range(len(triplets)):
        row = triplets[index]
        _, features = original([row["source"], row["target"]])
        expected = recognition_weights(features[0], features[1], "mean", floor=0.5)
        sequence = backbone.build_fdm_sequence(row["source"], row["action"], row["target"])
        weights = torch.tensor(fdm[index]["token_weights"])[sequence.target_image_positions]
        torch.testing.assert_close(weights, expected)


def test_in_memory_dataset_caches_under_cache_dir(tiny_backbones, tmp_path, monkeypatch):
    backbone = tiny_backbones("chameleon")
    rows = [make_triplet("a", scene((0, 0)), scene((3, 3)), "move", "test")]
    triplets = datasets.Dataset.from_list(rows, features=TRIPLET_FEATURES)
    first = pretokenize(triplets, backbone, cache_dir=tmp_path / "tok")
    # the encoded images land in cache_dir; the sequences, made from that file-backed result, next to it
    assert list((tmp_path / "tok").glob("encoded-*.arrow")) and len(list((tmp_path / "tok").glob("*.arrow"))) == 2
    monkeypatch.setattr(backbone, "encode_images_with_features", lambda images: pytest.fail("recomputed"))
    assert pretokenize(triplets, backbone, cache_dir=tmp_path / "tok")["input_ids"] == first["input_ids"]


def test_fingerprint_follows_the_vq_weights(tiny_model_dirs):
    from wm_hub import load_backbone

    one, two = load_backbone(str(tiny_model_dirs("chameleon"))), load_backbone(str(tiny_model_dirs("chameleon")))
    assert backbone_fingerprint(one) == backbone_fingerprint(two)
    with torch.no_grad():
        two.vqgan.quant_conv.bias.add_(1.0)
    two._image_fingerprint = None
    assert backbone_fingerprint(one) != backbone_fingerprint(two)


def test_another_instruction_shares_the_image_encoding_but_not_the_sequences(tiny_backbones, tmp_path, monkeypatch):
    # the demo's FDM sets fdm_instruction: its labelled triplets must reuse the IDM's encoding (it re-encoded them)
    backbone = tiny_backbones("chameleon")
    rows = [make_triplet("a", scene((0, 0)), scene((3, 3)), "move", "test")]
    triplets = datasets.Dataset.from_list(rows, features=TRIPLET_FEATURES)
    before = backbone_fingerprint(backbone), backbone.image_fingerprint()
    first = pretokenize(triplets, backbone, cache_dir=tmp_path / "tok")
    monkeypatch.setattr(backbone.processor, "fdm_instruction", "Redraw the picture:")
    assert backbone.image_fingerprint() == before[1] and backbone_fingerprint(backbone) != before[0]
    monkeypatch.setattr(backbone, "encode_images_with_features", lambda images: pytest.fail("re-encoded"))
    second = pretokenize(triplets, backbone, cache_dir=tmp_path / "tok")
    assert second["input_ids"] != first["input_ids"]
    assert second["input_ids"][0][-20:] == first["input_ids"][0][-20:]  # the same target tokens


def test_missing_columns_are_named(tiny_backbones):
    triplets = datasets.Dataset.from_dict({"source": [], "action": []})
    with pytest.raises(ValueError, match=r"missing \['target'\]"):
        pretokenize(triplets, tiny_backbones("chameleon"))

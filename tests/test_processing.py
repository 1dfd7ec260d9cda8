"""WorldModelProcessor: the sequence format saved with every checkpoint, read back without the model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from wm_hub import load_backbone
from wm_hub.models.image_processing import SquareImageProcessor
from wm_hub.models.processing import PromptFormat, WorldModelProcessor

ARCHS = ("chameleon", "liquid", "emu3")


@pytest.mark.parametrize("arch", ARCHS)
def test_the_saved_processor_alone_builds_the_backbones_sequences(arch, tiny_backbones, tmp_path):
    backbone = tiny_backbones(arch)
    backbone.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "processor_config.json").read_text())
    assert saved["processor_class"] == "WorldModelProcessor"
    assert saved["fdm_instruction"] == PromptFormat().fdm_instruction
    assert saved["image_grid"] == list(backbone.image_grid) and saved["image_processor"]["image_processor_type"]
    assert "prompt" not in json.loads((tmp_path / "saved" / "config.json").read_text())["wm_hub"]

    processor = WorldModelProcessor.from_pretrained(tmp_path / "saved")  # no model, no VQ
    ids = backbone.image_token_ids
    source, target = ids[:4].repeat(16)[: backbone.image_seq_len], ids[-backbone.image_seq_len :]
    src, tgt = source.tolist(), target.tolist()
    assert processor.build_fdm_sequence(src, "go", tgt) == backbone.build_fdm_sequence(source, "go", target)
    assert processor.build_fdm_sequence(src, "go") == backbone.build_fdm_sequence(source, "go")
    assert processor.build_idm_sequence(src, tgt, "go") == backbone.build_idm_sequence(source, target, "go")
    assert torch.equal(processor.generation_layout(), backbone.generation_layout())
    example = processor.build_fdm_sequence(source.tolist(), "go", target.tolist())
    assert [example.input_ids[i] for i in example.target_image_positions] == target.tolist()
    assert [example.input_ids[i] for i in example.source_image_positions] == source.tolist()


def test_emu3_layout_is_saved_as_tokens(tiny_backbones, tmp_path):
    backbone = tiny_backbones("emu3")
    backbone.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "processor_config.json").read_text())
    assert saved["image_row_end"] == "<|extra_200|>" and saved["image_end"] == ["<|extra_201|>", "<|image end|>"]
    assert saved["image_start"][0] == "<|image start|>" and saved["image_start"][-1] == "<|image token|>"
    assert saved["image_processor"] == {
        "image_processor_type": "SquareImageProcessor",
        "size": backbone.config.image_size,
        "square": "crop",
        "pad_color": [122, 116, 104],
    }


def test_a_checkpoint_saved_before_the_processor_loads_with_its_settings(tiny_model_dirs, tmp_path, real_images):
    folder = tmp_path / "old"
    shutil.copytree(tiny_model_dirs("chameleon"), folder)
    saved = json.loads((folder / "processor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps(saved.pop("image_processor")))
    (folder / "processor_config.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    config["wm_hub"]["prompt"] = {"fdm_instruction": "Old FDM:", "idm_instruction": "Old IDM?"}
    config["wm_hub"]["separator_token"] = "<reserved08706>"
    (folder / "config.json").write_text(json.dumps(config))

    old = load_backbone(str(folder))
    assert old.processor.prompt == PromptFormat("Old FDM:", "Old IDM?")
    assert old.processor.separator_token == "<reserved08706>"
    reference = load_backbone(str(tiny_model_dirs("chameleon")))
    assert torch.equal(old.encode_images(real_images), reference.encode_images(real_images))
    old.save_pretrained(tmp_path / "resaved")  # saved again: the settings move to processor_config.json
    assert load_backbone(str(tmp_path / "resaved")).processor.prompt == PromptFormat("Old FDM:", "Old IDM?")


def test_a_processor_of_another_layout_is_refused(tiny_model_dirs, tmp_path):
    folder = tmp_path / "wrong"
    shutil.copytree(tiny_model_dirs("chameleon"), folder)
    saved = json.loads((folder / "processor_config.json").read_text())
    saved["image_grid"] = [3, 3]
    (folder / "processor_config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"processor_config.json: image_grid is \[3, 3\]"):
        load_backbone(str(folder))


def test_square_image_processor_pads_or_crops_and_round_trips(tmp_path):
    wide = Image.new("RGBA", (40, 20), (255, 0, 0, 255))
    wide.putpixel((0, 0), (0, 0, 255, 0))  # transparent: blended on white when cropping
    pad = SquareImageProcessor(size=16, square="pad")
    pixels = pad(wide)["pixel_values"]
    assert pixels.shape == (1, 3, 16, 16) and pixels.dtype == torch.float32
    expected_canvas = (np.array([122, 116, 104], dtype=np.float32) / 127.5 - 1.0).reshape(3)
    torch.testing.assert_close(pixels[0, :, 0, 8], torch.from_numpy(expected_canvas))  # the padded top rows
    torch.testing.assert_close(pixels[0, :, 8, 8], torch.tensor([1.0, -1.0, -1.0]))  # the red picture

    crop = SquareImageProcessor(size=16, square="crop")
    cropped = crop([wide, Image.new("RGB", (16, 16), (0, 255, 0))])["pixel_values"]
    assert cropped.shape == (2, 3, 16, 16)
    torch.testing.assert_close(cropped[1, :, 3, 3], torch.tensor([-1.0, 1.0, -1.0]))

    pad.save_pretrained(tmp_path)
    reloaded = SquareImageProcessor.from_pretrained(tmp_path)
    assert (reloaded.size, reloaded.square, reloaded.pad_color) == (16, "pad", [122, 116, 104])
    assert torch.equal(reloaded(wide)["pixel_values"], pixels)
    with pytest.raises(ValueError, match="square must be 'pad' or 'crop'"):
        SquareImageProcessor(square="stretch")


@pytest.mark.parametrize("arch", ["chameleon", "emu3"])
def test_an_image_size_override_rebuilds_the_saved_layout(arch, tiny_backbones, tmp_path):
    tiny_backbones(arch).save_pretrained(tmp_path / "saved")
    resized = load_backbone(str(tmp_path / "saved"), image_size=32)  # the saved processor holds the 64 px grid
    assert resized.image_grid == (4, 4) and resized.processor.image_grid == [4, 4]
    example = resized.build_fdm_sequence(resized.image_token_ids[:16], "go", resized.image_token_ids[-16:])
    assert [example.input_ids[i] for i in example.target_image_positions] == resized.image_token_ids[-16:].tolist()
    if arch == "emu3":
        assert resized.processor.image_processor.size == 32
        assert resized.processor.image_start[1:-1] == resized.tokenizer.convert_ids_to_tokens(resized._text_ids("4*4"))

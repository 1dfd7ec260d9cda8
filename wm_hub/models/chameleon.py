"""Chameleon / Anole: the LM without image-logit suppression, and Meta's VQGAN as the image tokenizer.

``transformers``' ``ChameleonForConditionalGeneration`` sets every image-token logit to ``finfo.min``, so it can
neither generate images nor train on image labels. :class:`ChameleonWorldModelForConditionalGeneration` is the
same model (same parameters, stock checkpoints load with ``strict=True``) without that line. Images are tokenized
with the VQGAN of :mod:`wm_hub.models.chameleon_vqgan` (encoder and decoder), looked up in ``<model>/vqgan``
(diffusers format) or given as Meta's ``vqgan.ckpt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import VQModel
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, ChameleonForConditionalGeneration
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.chameleon.modeling_chameleon import ChameleonImageVocabularyMapping

from wm_hub.models.base import Backbone, BackboneConfig
from wm_hub.models.chameleon_vqgan import VQGAN_SUBFOLDER, decode_codes, encode_codes, load_vqgan

BOI_TOKEN = "<racm3:break>"
EOI_TOKEN = "<eoss>"
END_OF_TURN_TOKEN = "<reserved08706>"


class ChameleonWorldModelForConditionalGeneration(ChameleonForConditionalGeneration):
    """``ChameleonForConditionalGeneration`` whose logits keep the image tokens.

    Identical parameters to the stock class; only ``forward`` differs: it does not overwrite image-token logits
    with ``finfo.min``, so image tokens can be generated and trained on.
    """

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Same arguments as the parent's ``forward`` (cache, ``use_cache``... pass through ``kwargs``)."""
        kwargs.setdefault("return_dict", True)
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        hidden_states = outputs[0]
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        extra = {key: value for key, value in outputs.items() if key != "last_hidden_state"}
        return CausalLMOutputWithPast(loss=loss, logits=logits, **extra)


class ChameleonBackbone(Backbone):
    """Chameleon-7B / Anole-7B (and tiny presets of the same layout).

    Args:
        model: The unsuppressed Chameleon LM.
        tokenizer: Chameleon's tokenizer (image codes are ``IMGIMG...Z`` vocabulary entries).
        vqgan: Meta's VQGAN as a ``diffusers.VQModel``.
        image_processor: ``ChameleonImageProcessor`` (short side to ``image_size``, centre crop, [-1, 1]).
        config: wm-hub settings.
    """

    arch = "chameleon"

    def __init__(self, model, tokenizer, vqgan: VQModel, image_processor, config: BackboneConfig):
        if config.separator_token is None:
            config.separator_token = END_OF_TURN_TOKEN
        super().__init__(model, tokenizer, config)
        # The LM carries transformers' VQ encoder; wm-hub tokenizes with the VQGAN, so keep that one frozen and out
        # of the optimizer (and of DDP's unused-parameter checks).
        model.model.vqmodel.eval().requires_grad_(False)
        self.vqgan = vqgan.eval().requires_grad_(False)
        self.image_processor = image_processor
        mapping = ChameleonImageVocabularyMapping(model.config.vocabulary_map)
        num_codes = vqgan.config.num_vq_embeddings
        if len(mapping.img2bpe) != num_codes:
            raise ValueError(
                f"the vocabulary has {len(mapping.img2bpe)} IMGIMG image tokens but the VQGAN has {num_codes} codes"
            )
        self._code_to_id = torch.tensor([mapping.img2bpe[code] for code in range(num_codes)], dtype=torch.long)
        self._id_to_code = torch.full((model.config.vocab_size,), -1, dtype=torch.long)
        self._id_to_code[self._code_to_id] = torch.arange(num_codes)
        side = config.image_size // 2 ** (len(vqgan.config.block_out_channels) - 1)
        self._set_image_vocabulary((side, side), self._code_to_id, BOI_TOKEN, EOI_TOKEN)

    @property
    def image_tokenizer(self) -> VQModel:
        return self.vqgan

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return self._code_to_id.to(codes.device)[codes]

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return self._id_to_code.to(ids.device)[ids]

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    def _encode_codes(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_codes(self.vqgan, pixel_values)

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return decode_codes(self.vqgan, codes, self.image_grid)

    def _save_image_tokenizer(self, save_directory: Path) -> None:
        self.vqgan.save_pretrained(save_directory / VQGAN_SUBFOLDER)
        self.image_processor.save_pretrained(save_directory)

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        config: BackboneConfig,
        vqgan: str | None = None,
        vqgan_config: str | None = None,
        **model_kwargs: Any,
    ) -> ChameleonBackbone:
        """Load an Anole/Chameleon checkpoint (HF layout) plus its VQGAN.

        Args:
            path: Folder or Hub id of a ``transformers`` Chameleon checkpoint.
            config: wm-hub settings.
            vqgan: Where the VQGAN is: a diffusers ``VQModel`` folder/Hub id, or Meta's ``vqgan.ckpt``. Defaults to
                ``<path>/vqgan``.
            vqgan_config: ``vqgan.yaml`` next to a ``vqgan.ckpt`` (Chameleon's config if omitted).
            **model_kwargs: For the LM's ``from_pretrained`` (``dtype``, ``device_map``, ``attn_implementation``).
        """
        model = ChameleonWorldModelForConditionalGeneration.from_pretrained(path, **model_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path)
        image_processor = AutoImageProcessor.from_pretrained(path)
        return cls(model, tokenizer, load_vqgan(path, vqgan, vqgan_config), image_processor, config)

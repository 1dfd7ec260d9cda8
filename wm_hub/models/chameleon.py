"""Chameleon / Anole: the LM without image-logit suppression, and Meta's VQGAN as the image tokenizer.

``transformers``' ``ChameleonForConditionalGeneration`` sets every image-token logit to ``finfo.min``, so it can
neither generate images nor train on image labels. :class:`ChameleonWorldModelForConditionalGeneration` is the
same model (same parameters, stock checkpoints load with ``strict=True``) without that line. Images are tokenized
with the VQGAN of :mod:`wm_hub.models.chameleon_vqgan` (encoder and decoder), looked up in ``<model>/vqgan``
(diffusers format) or given as Meta's ``vqgan.ckpt``.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import VQModel
from transformers import AutoImageProcessor, ChameleonForConditionalGeneration
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.chameleon.modeling_chameleon import ChameleonImageVocabularyMapping

from wm_hub.models.base import BackboneConfig
from wm_hub.models.chameleon_vqgan import VQGANBackbone, load_vqgan
from wm_hub.models.processing import WorldModelProcessor

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


class ChameleonBackbone(VQGANBackbone):
    """Chameleon-7B / Anole-7B (and tiny presets of the same layout).

    Args:
        model: The unsuppressed Chameleon LM.
        processor: Chameleon's tokenizer (image codes are ``IMGIMG...Z`` vocabulary entries) and
            ``ChameleonImageProcessor`` (short side to ``image_size``, centre crop, [-1, 1]).
        vqgan: Meta's VQGAN as a ``diffusers.VQModel``.
        config: wm-hub settings.
    """

    arch = "chameleon"
    separator_token = END_OF_TURN_TOKEN

    def __init__(self, model, processor: WorldModelProcessor, vqgan: VQModel, config: BackboneConfig):
        super().__init__(model, processor, vqgan, config)
        # The LM carries transformers' VQ encoder; wm-hub tokenizes with the VQGAN, so keep that one frozen and out
        # of the optimizer (and of DDP's unused-parameter checks).
        model.model.vqmodel.eval().requires_grad_(False)
        mapping = ChameleonImageVocabularyMapping(model.config.vocabulary_map)
        num_codes = vqgan.config.num_vq_embeddings
        if len(mapping.img2bpe) != num_codes:
            raise ValueError(
                f"the vocabulary has {len(mapping.img2bpe)} IMGIMG image tokens but the VQGAN has {num_codes} codes"
            )
        code_to_id = torch.tensor([mapping.img2bpe[code] for code in range(num_codes)], dtype=torch.long)
        self._set_image_vocabulary(self.vqgan_grid(), code_to_id, [BOI_TOKEN], [EOI_TOKEN])

    @classmethod
    def default_image_processor(cls, path: str, config: BackboneConfig) -> Any:
        """The checkpoint's own ``ChameleonImageProcessor`` (``preprocessor_config.json``)."""
        return AutoImageProcessor.from_pretrained(path)

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        config: BackboneConfig,
        processor: WorldModelProcessor,
        vqgan: str | None = None,
        vqgan_config: str | None = None,
        **model_kwargs: Any,
    ) -> ChameleonBackbone:
        """Load an Anole/Chameleon checkpoint (HF layout) plus its VQGAN.

        Args:
            path: Folder of a ``transformers`` Chameleon checkpoint.
            config: wm-hub settings.
            processor: Its processor (:func:`~wm_hub.models.loading.load_backbone` reads it).
            vqgan: Where the VQGAN is: a diffusers ``VQModel`` folder/Hub id, or Meta's ``vqgan.ckpt``. Defaults to
                ``<path>/vqgan``.
            vqgan_config: ``vqgan.yaml`` next to a ``vqgan.ckpt`` (Chameleon's config if omitted).
            **model_kwargs: For the LM's ``from_pretrained`` (``dtype``, ``device_map``, ``attn_implementation``).
        """
        model = ChameleonWorldModelForConditionalGeneration.from_pretrained(path, **model_kwargs)
        return cls(model, processor, load_vqgan(path, vqgan, vqgan_config), config)

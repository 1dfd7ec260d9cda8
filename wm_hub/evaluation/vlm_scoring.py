"""Understanding-only VLMs in the trajectory-preference probe: ``log p(action | source, target)`` by chat template.

The paper's Section 2 probes nine VLMs, most of which read images but cannot write them (Qwen2-VL, LLaVA...). Such
a model has no forward direction (it cannot score image tokens), so it is probed in the inverse direction only: the
two observations and a question go in the user turn, the action is the assistant's reply, and the score is the
log-likelihood of the reply's tokens (the assistant turn's closing tokens included, as an IDM's ``eos`` is). Any
model ``transformers`` loads with ``AutoModelForImageTextToText`` and whose ``AutoProcessor`` has a chat template
works (Qwen2-VL, Qwen2.5-VL, LLaVA, Idefics...).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from wm_hub.inference.scoring import SequenceScore

IDM_QUESTION = (
    "The first image shows a scene, the second image shows the same scene after one action. What was the action?"
)


class ChatVLMScorer:
    """Scores actions between two pictures with an understanding-only VLM, in its own chat format.

    Args:
        model: Hub id or local folder of an image-text-to-text model with a chat template.
        device: Torch device (default: CPU).
        dtype: Model dtype name, e.g. ``bfloat16`` (default: the checkpoint's).
        question: The user turn's text after the two images.
    """

    def __init__(self, model: str, device: str | None = None, dtype: str | None = None, question: str = IDM_QUESTION):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
        self.model = AutoModelForImageTextToText.from_pretrained(model, **kwargs).to(device or "cpu").eval()
        self.processor = AutoProcessor.from_pretrained(model)
        if getattr(self.processor, "chat_template", None) is None:
            raise ValueError(f"{model}: its processor has no chat template, which the probe's prompt is built with")
        self.question = question

    def _messages(self, action: str | None) -> list[dict]:
        user = {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": self.question}],
        }
        if action is None:
            return [user]
        return [user, {"role": "assistant", "content": [{"type": "text", "text": action}]}]

    def _token_count(self, text: str, images: list[Image.Image]) -> int:
        return int(self.processor(images=images, text=[text], return_tensors="pt")["input_ids"].shape[1])

    @torch.no_grad()
    def action_log_likelihoods(
        self,
        sources: Sequence[Image.Image],
        targets: Sequence[Image.Image],
        actions: Sequence[str],
        batch_size: int = 4,
    ) -> list[SequenceScore]:
        """``log p(action | source, target)`` of each triple: the assistant reply's tokens, summed and averaged.

        Args:
            sources: First observations.
            targets: Second observations.
            actions: The actions to score.
            batch_size: Sequences per forward pass (padded on whichever side the processor pads).

        Returns:
            One score per triple, in order.
        """
        prompt = self.processor.apply_chat_template(self._messages(None), tokenize=False, add_generation_prompt=True)
        scores: list[SequenceScore] = []
        for start in tqdm(range(0, len(actions), batch_size), desc="VLM scoring", unit="batch", leave=False):
            part = slice(start, start + batch_size)
            pairs = [[s.convert("RGB"), t.convert("RGB")] for s, t in zip(sources[part], targets[part])]
            texts = [self.processor.apply_chat_template(self._messages(a), tokenize=False) for a in actions[part]]
            if not all(text.startswith(prompt) for text in texts):
                raise ValueError("the chat template writes the user turn differently with a reply: cannot score it")
            images = [image for pair in pairs for image in pair]
            batch = self.processor(images=images, text=texts, padding=True, return_tensors="pt").to(self.model.device)
            log_probs = self.model(**batch).logits[:, :-1].float().log_softmax(-1)
            targets_ids = batch["input_ids"][:, 1:]
            token_scores = log_probs.gather(-1, targets_ids.unsqueeze(-1)).squeeze(-1)
            for row, pair in enumerate(pairs):
                mask = batch["attention_mask"][row]
                offset = int(mask.nonzero()[0])  # left padding, if the processor pads on the left
                first = offset + self._token_count(prompt, pair)  # the reply starts where the prompt ends
                last = offset + int(mask.sum())
                values = token_scores[row, first - 1 : last - 1]
                scores.append(SequenceScore(float(values.sum()), float(values.mean()), int(values.numel())))
        return scores

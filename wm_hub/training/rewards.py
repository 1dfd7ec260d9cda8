"""Rewards for GRPO from the verifier (SWIRL, arXiv 2602.06130): a frozen world model scores the policy's samples.

Each reward is a plain callable in TRL's reward-function form, ``reward(prompts, completions, completion_ids,
**columns) -> list[float]``, reading the dataset columns and the rollout's extra fields by name; :data:`REWARDS`
names them for recipes (``reward_funcs: [idm_log_likelihood]``), as open-r1 does. They are not ``nn.Module`` s on
purpose: TRL would take a module for a sequence-classification reward model.

- ``idm_log_likelihood`` (:class:`IDMActionLikelihood`): for an FDM policy, the frozen IDM's per-token mean
  log-likelihood of the row's action given the source and the sampled image, read from the sampled ids (no
  decoding; the IDM must share the policy's image tokenizer), clamped to ``[min_value, max_value]``. The rows of
  one prompt are scored exactly as :meth:`~wm_hub.inference.inverse_dynamics.InverseDynamicsPipeline.score` scores
  best-of-N candidates: one forward, the shared source read once.
- ``fdm_log_likelihood`` (:class:`FDMTargetLikelihood`): for an IDM policy, the frozen FDM's per-token mean
  log-likelihood of the row's target image codes given the source and the sampled action text, clamped.
- ``fdm_weighted_log_likelihood`` (:class:`FDMWeightedTargetLikelihood`): the same log-likelihoods averaged with the
  recognition weights of the paper's Eq. 2 (the row's ``change_distances``, normalised to mean 1 with a floor), so
  the codes that the action changes count most: under the plain mean, the many unchanged codes, which any action
  that names no object there predicts equally well, flatten the differences between sampled actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from wm_hub.inference.scoring import SequenceScore, action_log_likelihoods, target_log_likelihoods
from wm_hub.models.base import Backbone
from wm_hub.models.processing import split_idm_completion
from wm_hub.training.recognition import weights_from_distances


class IDMActionLikelihood:
    """``clamp(mean log p(action | source, sampled image))`` under a frozen inverse-dynamics model.

    Args:
        idm: The frozen IDM backbone (moved to eval mode; it shares the policy's image tokenizer).
        min_value: Lower clamp of the per-token mean log-likelihood (SWIRL clamps it).
        max_value: Upper clamp.
    """

    name = "idm_log_likelihood"
    __name__ = name  # what TRL logs the reward as (rewards/idm_log_likelihood/mean)

    def __init__(self, idm: Backbone, min_value: float = -10.0, max_value: float = 0.0):
        if not min_value < max_value:
            raise ValueError(f"min_value must be < max_value, got {min_value} and {max_value}")
        self.idm, self.min_value, self.max_value = idm, min_value, max_value
        self.idm.model.eval()

    @torch.no_grad()
    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]],
        *,
        image_ids: Sequence[Sequence[int]],
        source_ids: Sequence[Sequence[int]],
        action: Sequence[str],
        **kwargs: Any,
    ) -> list[float]:
        """One reward per row, in row order (rows of one source and action are scored in one forward)."""
        groups: dict[tuple[tuple[int, ...], str], list[int]] = {}
        for row, (source, text) in enumerate(zip(source_ids, action, strict=True)):
            groups.setdefault((tuple(source), text), []).append(row)
        rewards = [0.0] * len(image_ids)
        for (source, text), rows in groups.items():
            source_tensor = torch.tensor(source)
            scores = action_log_likelihoods(
                self.idm,
                [source_tensor] * len(rows),
                [torch.tensor(image_ids[row]) for row in rows],
                [text] * len(rows),
                batch_size=None,
            )
            for row, score in zip(rows, scores):
                rewards[row] = min(max(score.mean, self.min_value), self.max_value)
        return rewards


class FDMTargetLikelihood:
    """``clamp(mean log p(target codes | source, sampled action))`` under a frozen forward-dynamics model.

    Args:
        fdm: The frozen FDM backbone (moved to eval mode; it shares the policy's image tokenizer).
        min_value: Lower clamp of the per-code mean log-likelihood.
        max_value: Upper clamp.
        policy_writes_rationale: The IDM policy writes a rationale before the action (``idm_rationale``): only the
            action after it is scored.
    """

    name = "fdm_log_likelihood"
    __name__ = name

    def __init__(
        self, fdm: Backbone, min_value: float = -10.0, max_value: float = 0.0, policy_writes_rationale: bool = False
    ):
        if not min_value < max_value:
            raise ValueError(f"min_value must be < max_value, got {min_value} and {max_value}")
        self.fdm, self.min_value, self.max_value = fdm, min_value, max_value
        self.policy_writes_rationale = policy_writes_rationale
        self.fdm.model.eval()

    @torch.no_grad()
    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[str],
        completion_ids: Sequence[Sequence[int]],
        *,
        source_ids: Sequence[Sequence[int]],
        target_ids: Sequence[Sequence[int]],
        **columns: Any,
    ) -> list[float]:
        """One reward per row: the sampled action is the completion's text, stripped (as ``generate_actions``), or
        what follows the rationale of a policy that reasons first."""
        scores = target_log_likelihoods(
            self.fdm,
            [torch.tensor(ids) for ids in source_ids],
            [split_idm_completion(text, self.policy_writes_rationale)[1] for text in completions],
            [torch.tensor(ids) for ids in target_ids],
            batch_size=None,
        )
        return [min(max(value, self.min_value), self.max_value) for value in self._reduce(scores, columns)]

    def _reduce(self, scores: list[SequenceScore], columns: dict[str, Any]) -> list[float]:
        """Each row's value before clamping: the per-code mean log-likelihood."""
        return [score.mean for score in scores]


class FDMWeightedTargetLikelihood(FDMTargetLikelihood):
    """``clamp(sum_l w_l log p(target code l | source, sampled action) / sum_l w_l)`` under a frozen FDM, with ``w``
    the recognition weights of the row's ``change_distances``
    (:func:`~wm_hub.training.recognition.weights_from_distances`, ``"mean"`` normalisation).

    Args:
        fdm: The frozen FDM backbone (it shares the policy's image tokenizer).
        min_value: Lower clamp of the weighted mean log-likelihood.
        max_value: Upper clamp.
        floor: The weights' floor (``floor + (1 - floor) * w``); 1.0 gives :class:`FDMTargetLikelihood`'s mean, 0.0
            the paper's pure Eq. 2 weights.
    """

    name = "fdm_weighted_log_likelihood"
    __name__ = name

    def __init__(self, fdm: Backbone, min_value: float = -10.0, max_value: float = 0.0, floor: float = 0.5):
        super().__init__(fdm, min_value, max_value)
        self.floor = floor

    def _reduce(self, scores: list[SequenceScore], columns: dict[str, Any]) -> list[float]:
        """Each row's recognition-weighted mean (the rows need a ``change_distances`` column)."""
        if "change_distances" not in columns:
            raise ValueError(
                f"{self.name} needs a change_distances column (encode_triplets or idm_grpo_rows write it)"
            )
        values = []
        for score, distances in zip(scores, columns["change_distances"], strict=True):
            weights = weights_from_distances(torch.tensor(distances), "mean", self.floor)
            log_probs = torch.tensor(score.token_log_probs)
            if weights.shape != log_probs.shape:
                raise ValueError(f"{len(distances)} change distances for {len(log_probs)} target codes")
            values.append(float((weights * log_probs).sum() / weights.sum()))
        return values


REWARDS = {reward.name: reward for reward in (IDMActionLikelihood, FDMTargetLikelihood, FDMWeightedTargetLikelihood)}
TASK_REWARDS = {"fdm": ("idm_log_likelihood",), "idm": ("fdm_log_likelihood", "fdm_weighted_log_likelihood")}
"""The rewards that fit each policy's task (the first is the task's default)."""

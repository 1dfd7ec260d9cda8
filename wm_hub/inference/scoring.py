"""Teacher-forced log-likelihoods of parts of world-model sequences: the verifier's and the probe's primitive.

Every score is computed on the model's own training format (``build_idm_sequence`` / ``build_fdm_sequence``), in
batched forward passes over left-padded rows with explicit position ids, so a row scores the same alone or in a
batch. Only the logits of the scored tail of each batch are computed (``logits_to_keep``): scoring an action after
two 1024-token images never builds the ``(batch, length, vocab)`` logits of the images.

- :func:`action_log_likelihoods`: ``log p(action | source, target)`` under an IDM, over the action's tokens and the
  closing ``eos`` (exactly the IDM's training labels; with the rationale before them for an IDM that reasons
  first): the best-of-N verifier, the inverse direction of the trajectory-preference probe.
- :func:`output_log_likelihoods`: the same score of what the IDM itself wrote (annotation, the IDM pipeline), read
  off the generation's own log-probabilities where the written tokens are the training format's, which saves the
  second forward pass over the images.
- :func:`target_log_likelihoods`: ``log p(target image codes | source, action)`` under an FDM, over the target's
  code tokens only: the forward direction of the probe.
- :func:`position_log_likelihoods`: the general form, any token positions of any sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from wm_hub.inference.actions import IDMOutput, generate_idm_outputs
from wm_hub.inference.generation import left_pad
from wm_hub.inference.kv_cache import cache_argument, growing_cache
from wm_hub.models.base import IGNORE_INDEX, Backbone, ImageLike, SequenceExample


@dataclass(frozen=True)
class SequenceScore:
    """Log-likelihood of the scored tokens of one sequence.

    Attributes:
        total: Sum of the natural-log probabilities of the scored tokens.
        mean: ``total / num_tokens`` (length-normalised; what stratified sampling uses by default).
        num_tokens: Number of scored tokens.
        token_log_probs: Each scored token's log-probability, in position order (empty where a scorer does not
            keep them), e.g. for a weighted mean.
    """

    total: float
    mean: float
    num_tokens: int
    token_log_probs: tuple[float, ...] = ()


@torch.no_grad()
def position_log_likelihoods(
    backbone: Backbone,
    sequences: Sequence[Sequence[int]],
    positions: Sequence[Sequence[int]],
    batch_size: int | None = 8,
) -> list[SequenceScore]:
    """``log p(token_t | tokens_<t)`` summed over ``positions[i]`` of ``sequences[i]``, in batched forwards.

    Args:
        backbone: The model that scores.
        sequences: Token id lists.
        positions: For each sequence, the (non-empty, > 0) indices of the tokens to score.
        batch_size: Rows per forward pass; ``None`` scores everything in one forward.

    Returns:
        One :class:`SequenceScore` per sequence, in order.

    Raises:
        ValueError: On mismatched lengths, an empty or out-of-range position list.
    """
    if len(sequences) != len(positions):
        raise ValueError(f"{len(sequences)} sequences but {len(positions)} position lists")
    for row, (ids, where) in enumerate(zip(sequences, positions)):
        if not where:
            raise ValueError(f"row {row}: nothing to score (empty position list)")
        if min(where) < 1 or max(where) >= len(ids):
            raise ValueError(f"row {row}: positions must lie in [1, {len(ids) - 1}], got {min(where)}..{max(where)}")
        backbone.check_sequence_length(len(ids), f"sequence {row} to score")
    step = batch_size or max(len(sequences), 1)
    scores: list[SequenceScore] = []
    for start in range(0, len(sequences), step):
        scores += _score_batch(backbone, sequences[start : start + step], positions[start : start + step])
    return scores


SHARED_PREFIX_MIN = 16


def _shared_prefix(input_ids: torch.Tensor, limit: int) -> int:
    """Length of the leading columns every row of ``input_ids`` has in common (at most ``limit``; 0 when shorter
    than :data:`SHARED_PREFIX_MIN` or a single row, where reading it once would save nothing)."""
    if input_ids.shape[0] < 2 or limit < SHARED_PREFIX_MIN:
        return 0
    same = (input_ids[:, :limit] == input_ids[:1, :limit]).all(dim=0)
    length = int(same.long().cumprod(0).sum())
    return length if length >= SHARED_PREFIX_MIN else 0


def _score_batch(
    backbone: Backbone, sequences: Sequence[Sequence[int]], positions: Sequence[Sequence[int]]
) -> list[SequenceScore]:
    input_ids, attention_mask = left_pad(sequences, backbone.pad_token_id)
    length = input_ids.shape[1]
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    # Left padding puts every row's end at ``length``: logits for the last ``keep`` positions cover every scored
    # token (the logit predicting token t sits at t - 1).
    offsets = [length - len(ids) for ids in sequences]
    earliest = min(offset + min(where) for offset, where in zip(offsets, positions))
    keep = length - earliest + 1
    device = backbone.device
    input_ids, attention_mask, position_ids = input_ids.to(device), attention_mask.to(device), position_ids.to(device)
    shared = _shared_prefix(input_ids, length - keep)
    if shared:  # e.g. the N candidates of one source: the source is read once, its cache repeated for every row
        cache = growing_cache()
        backbone.model(
            input_ids=input_ids[:1, :shared],
            attention_mask=attention_mask[:1, :shared],
            position_ids=position_ids[:1, :shared],
            **{cache_argument(backbone.model): cache},
            use_cache=True,
            logits_to_keep=1,
        )
        cache.batch_repeat_interleave(len(sequences))
        logits = backbone.model(
            input_ids=input_ids[:, shared:],
            attention_mask=attention_mask,
            position_ids=position_ids[:, shared:],
            **{cache_argument(backbone.model): cache},
            logits_to_keep=keep,
        ).logits
    else:
        logits = backbone.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=keep,
            use_cache=False,
        ).logits
    first = length - keep  # absolute position of logits[:, 0]
    scores = []
    for row, (offset, where) in enumerate(zip(offsets, positions)):
        targets = torch.as_tensor([offset + p for p in where], device=logits.device)
        row_logits = logits[row, targets - 1 - first].float()
        log_probs = torch.log_softmax(row_logits, dim=-1)
        token_ids = input_ids[row, targets.cpu()].to(logits.device)
        picked = log_probs.gather(-1, token_ids[:, None]).squeeze(-1)
        total = float(picked.sum())
        per_token = tuple(picked.tolist())
        scores.append(
            SequenceScore(total=total, mean=total / len(where), num_tokens=len(where), token_log_probs=per_token)
        )
    return scores


def action_log_likelihoods(
    idm: Backbone,
    sources: Sequence[ImageLike],
    targets: Sequence[ImageLike],
    actions: Sequence[str],
    batch_size: int | None = 8,
    rationales: Sequence[str | None] | None = None,
) -> list[SequenceScore]:
    """``log p(action | source, target)`` under an inverse-dynamics model, in its training format.

    Scores the action's tokens and the closing ``eos`` (the IDM's training labels), never the images or the
    instruction. An IDM that reasons first (``idm_rationale``) is scored on all it writes,
    ``log p(rationale, action | source, target)``, with the rationale given or, by default, its own greedy one for
    the pair (so the score still ranks actions, and candidates, by how well the IDM explains them). Where that
    greedy completion ends in the given action, its score is the generation's own and the row needs no forward.

    Args:
        idm: The inverse-dynamics backbone.
        sources: Source observations (PIL images or their LM ids, as ``build_idm_sequence`` takes).
        targets: Next observations (e.g. the N candidates of one prediction).
        actions: Action texts.
        batch_size: Rows per forward pass (and per rationale ``generate``); ``None``: one for all.
        rationales: The rationale of each row, for an IDM that reasons first (e.g. the one it generated with the
            action); ``None``: generate them.

    Returns:
        One score per (source, target, action).
    """
    if not len(sources) == len(targets) == len(actions):
        raise ValueError(f"got {len(sources)} sources, {len(targets)} targets and {len(actions)} actions")
    images = idm.images_as_ids([*sources, *targets])
    sources, targets = images[: len(sources)], images[len(sources) :]
    written: list[IDMOutput | None] = [None] * len(actions)
    if rationales is None and idm.writes_rationale:
        written = greedy_outputs(idm, sources, targets, batch_size)
        rationales = [output.rationale for output in written]
        written = [output if output.action == action else None for output, action in zip(written, actions)]
    rationales = rationales if rationales is not None else [None] * len(actions)
    examples = [idm.build_idm_sequence(s, t, a, r) for s, t, a, r in zip(sources, targets, actions, rationales)]
    return _scores(idm, examples, written, batch_size)


def output_log_likelihoods(
    idm: Backbone,
    sources: Sequence[ImageLike],
    targets: Sequence[ImageLike],
    outputs: Sequence[IDMOutput],
    batch_size: int | None = 8,
) -> list[SequenceScore]:
    """:func:`action_log_likelihoods` of what the IDM wrote for each pair (its action, after its rationale).

    Where an output's generated tokens are the tokens its training format gives the action (and rationale),
    the score is the generation's log-probabilities (equal to the teacher-forced one up to float rounding);
    the other rows (e.g. text that re-tokenises differently, a completion cut by the token budget) are scored
    teacher-forced, in batched forwards.

    Args:
        idm: The inverse-dynamics backbone that wrote ``outputs``.
        sources: Source observations (PIL images or their LM ids).
        targets: Next observations.
        outputs: What :func:`~wm_hub.inference.actions.generate_idm_outputs` returned for the pairs.
        batch_size: Rows per forward pass of the rows scored teacher-forced; ``None``: one for all.

    Returns:
        One score per pair.
    """
    if not len(sources) == len(targets) == len(outputs):
        raise ValueError(f"got {len(sources)} sources, {len(targets)} targets and {len(outputs)} outputs")
    images = idm.images_as_ids([*sources, *targets])
    sources, targets = images[: len(sources)], images[len(sources) :]
    examples = [idm.build_idm_sequence(s, t, o.action, o.rationale) for s, t, o in zip(sources, targets, outputs)]
    return _scores(idm, examples, list(outputs), batch_size)


def _scores(
    idm: Backbone, examples: Sequence[SequenceExample], written: Sequence[IDMOutput | None], batch_size: int | None
) -> list[SequenceScore]:
    """Each example's score over its labelled tokens: the generation's where ``written`` holds exactly those
    tokens, teacher-forced for the rest."""
    positions = [[i for i, label in enumerate(ex.labels) if label != IGNORE_INDEX] for ex in examples]
    # None: to be scored teacher-forced
    scores = [None if output is None else generated_score(ex, output) for ex, output in zip(examples, written)]
    missing = [row for row, score in enumerate(scores) if score is None]
    if missing:
        forced = position_log_likelihoods(
            idm, [examples[row].input_ids for row in missing], [positions[row] for row in missing], batch_size
        )
        for row, score in zip(missing, forced):
            scores[row] = score
    return scores


def generated_score(example: SequenceExample, output: IDMOutput) -> SequenceScore | None:
    """The score of ``example``'s labelled tokens from ``output``'s log-probabilities, when ``output`` generated
    exactly those tokens (``None`` otherwise, e.g. text that re-tokenises differently or a completion cut short)."""
    tokens = tuple(label for label in example.labels if label != IGNORE_INDEX)
    if output.token_ids != tokens or len(output.token_log_probs) != len(tokens):
        return None
    total = sum(output.token_log_probs)
    return SequenceScore(total, total / len(tokens), len(tokens), output.token_log_probs)


def greedy_outputs(
    idm: Backbone, sources: Sequence[ImageLike], targets: Sequence[ImageLike], batch_size: int | None = 8
) -> list[IDMOutput]:
    """What an IDM writes greedily for each pair, ``batch_size`` pairs per ``generate`` (the best-of-N verifier
    already hands over each distinct candidate once)."""
    pairs = list(zip(sources, targets))
    step = batch_size or max(len(pairs), 1)
    outputs = []
    for start in range(0, len(pairs), step):
        outputs += generate_idm_outputs(idm, pairs[start : start + step])
    return outputs


def target_log_likelihoods(
    fdm: Backbone,
    sources: Sequence[ImageLike],
    actions: Sequence[str],
    targets: Sequence[ImageLike],
    batch_size: int | None = 8,
) -> list[SequenceScore]:
    """``log p(target image codes | source, action)`` under a forward-dynamics model, in its training format.

    Scores the target's code tokens only (not the layout tokens around them, which a model predicts trivially).

    Args:
        fdm: The forward-dynamics backbone.
        sources: Source observations (PIL images or LM ids).
        actions: Action texts.
        targets: Next observations whose codes are scored.
        batch_size: Rows per forward pass; ``None``: one forward for all.

    Returns:
        One score per (source, action, target).
    """
    if not len(sources) == len(targets) == len(actions):
        raise ValueError(f"got {len(sources)} sources, {len(actions)} actions and {len(targets)} targets")
    examples = [fdm.build_fdm_sequence(s, a, t) for s, a, t in zip(sources, actions, targets)]
    positions = [ex.target_image_positions for ex in examples]
    return position_log_likelihoods(fdm, [ex.input_ids for ex in examples], positions, batch_size)

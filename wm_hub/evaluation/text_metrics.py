"""Text similarity of predicted and reference actions: the IDM metrics of the paper's Table 1.

BLEU, ROUGE-1, ROUGE-L and BERTScore (F1), each computed by wm-hub's own ``evaluate`` metric modules
(:mod:`wm_hub.evaluation.metrics`: sacrebleu, rouge_score and bert_score underneath), which load offline::

    from wm_hub.evaluation.text_metrics import TextMetricsConfig, compute_text_metrics

    scores = compute_text_metrics(predictions, references, TextMetricsConfig(bertscore_model="roberta-large"))
    scores["bleu"], scores["rouge1"], scores["rougeL"], scores["bertscore_f1"]

The paper's Table 1 reports values in [0, 1] (Chameleon ZS: BERTScore 0.05), which only a baseline-rescaled
BERTScore gives (raw F1 of unrelated English sentences under roberta-large is about 0.8), so rescaling with
bert_score's baseline is the default here; switch it off for models without a published baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from wm_hub.evaluation import split_names
from wm_hub.evaluation.metrics import metric_path

DEFAULT_BERTSCORE_MODEL = "roberta-large"
ALL_METRICS = ("bleu", "rouge", "bertscore")


@dataclass
class TextMetricsConfig:
    """Which text metrics to compute and how.

    Args:
        metrics: Any of ``bleu``, ``rouge`` (ROUGE-1 and ROUGE-L), ``bertscore``, as a list or comma-separated.
        bertscore_model: Hub id or local folder of BERTScore's embedding model.
        bertscore_num_layers: Layer BERTScore compares (required for a local folder; bert_score knows Hub ids).
        bertscore_rescale: Rescale BERTScore with its baseline (the paper's 0-1 scale; needs a baseline for the
            model: ``--no-bertscore-rescale`` reports raw BERTScore).
        bertscore_baseline_path: A baseline file (bert_score's TSV layout) for models bert_score has none for.
        bertscore_batch_size: Texts per BERTScore forward pass.
        lang: Language of the texts (BERTScore's baseline).
        use_stemmer: Porter-stem words for ROUGE.
        bertscore_device: Torch device of the BERTScore model (default: CUDA when available; ``wm-hub eval idm``:
            its ``--device``).
    """

    metrics: list[str] = field(default_factory=lambda: list(ALL_METRICS))
    bertscore_model: str = DEFAULT_BERTSCORE_MODEL
    bertscore_num_layers: int | None = None
    bertscore_rescale: bool = True
    bertscore_baseline_path: str | None = field(default=None, metadata={"aliases": ["--bertscore-baseline"]})
    bertscore_batch_size: int = 64
    lang: str = "en"
    use_stemmer: bool = False
    bertscore_device: str | None = None

    def __post_init__(self) -> None:
        self.metrics = split_names(self.metrics)
        unknown = sorted(set(self.metrics) - set(ALL_METRICS))
        if unknown or not self.metrics:
            raise ValueError(f"unknown text metric(s) {unknown}; choose from {list(ALL_METRICS)}")

    def check_bertscore_model(self) -> None:
        """Make sure BERTScore's model loads (its tokenizer and config) before any prediction is made, so that an
        offline machine without it in the cache, or a folder that is no model, is refused before the work.

        Raises:
            ValueError: Naming ``--bertscore-model`` and the first line of the loading error.
        """
        if "bertscore" not in self.metrics:
            return
        from transformers import AutoConfig, AutoTokenizer

        try:
            AutoConfig.from_pretrained(self.bertscore_model)
            AutoTokenizer.from_pretrained(self.bertscore_model)
        except (OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(
                f"--bertscore-model {self.bertscore_model}: cannot load it ({first}); give a model in the cache or a "
                "local folder (with --bertscore-num-layers), or leave bertscore out of --metrics"
            ) from None


def compute_text_metrics(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], config: TextMetricsConfig | None = None
) -> dict[str, float]:
    """Corpus BLEU, mean ROUGE-1/ROUGE-L F-measures and mean BERTScore of predictions against references.

    Args:
        predictions: Predicted action texts.
        references: The reference action (or a list of references) of each prediction.
        config: Metrics and their options (default :class:`TextMetricsConfig`).

    Returns:
        ``n`` and ``bleu``, ``rouge1``, ``rougeL``, ``bertscore_precision``, ``bertscore_recall``,
        ``bertscore_f1`` (those asked for), in [0, 1] (a rescaled BERTScore may leave it).

    Raises:
        ValueError: No predictions, or not one reference entry per prediction.
    """
    return compute_text_metrics_by_subset(predictions, references, ["all"] * len(predictions), config)["all"]


def compute_text_metrics_by_subset(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]],
    subsets: Sequence[str],
    config: TextMetricsConfig | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`compute_text_metrics` for every subset and for all rows (key ``all``).

    BLEU is a corpus score, computed per subset; ROUGE and BERTScore are per-prediction scores (each computed
    once for all rows, BERTScore's model loaded once) averaged per subset.

    Args:
        predictions: Predicted action texts.
        references: The reference action (or a list of references) of each prediction.
        subsets: Subset of each prediction.
        config: Metrics and their options.

    Returns:
        ``subset -> metrics`` (subsets sorted), then ``all``.
    """
    import evaluate

    config = config or TextMetricsConfig()
    if not len(predictions) == len(references) == len(subsets):
        raise ValueError(f"{len(predictions)} predictions, {len(references)} references and {len(subsets)} subsets")
    if not predictions:
        raise ValueError("no predictions to score")
    predictions = list(predictions)
    references = [reference if isinstance(reference, str) else list(reference) for reference in references]
    per_row: dict[str, list[float]] = {}
    if "rouge" in config.metrics:
        rouge = evaluate.load(metric_path("rouge")).compute(
            predictions=predictions, references=references, use_stemmer=config.use_stemmer, use_aggregator=False
        )
        per_row.update(rouge1=rouge["rouge1"], rougeL=rouge["rougeL"])
    if "bertscore" in config.metrics:
        bertscore = evaluate.load(metric_path("bertscore")).compute(
            predictions=predictions,
            references=references,
            model_type=config.bertscore_model,
            num_layers=config.bertscore_num_layers,
            lang=config.lang,
            rescale_with_baseline=config.bertscore_rescale,
            baseline_path=config.bertscore_baseline_path,
            batch_size=config.bertscore_batch_size,
            device=config.bertscore_device,
            use_aggregator=False,
        )
        per_row.update(
            bertscore_precision=bertscore["precision"],
            bertscore_recall=bertscore["recall"],
            bertscore_f1=bertscore["f1"],
        )
    bleu = evaluate.load(metric_path("bleu")) if "bleu" in config.metrics else None
    groups = {name: [i for i, subset in enumerate(subsets) if subset == name] for name in sorted(set(subsets))}
    groups["all"] = list(range(len(predictions)))
    results = {}
    for name, rows in groups.items():
        scores: dict[str, float] = {"n": len(rows)}
        if bleu is not None:
            scores["bleu"] = bleu.compute(
                predictions=[predictions[i] for i in rows], references=[references[i] for i in rows]
            )["bleu"]
        for metric, values in per_row.items():
            scores[metric] = sum(values[i] for i in rows) / len(rows)
        results[name] = scores
    return results

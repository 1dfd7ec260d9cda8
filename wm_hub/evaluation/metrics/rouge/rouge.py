"""ROUGE-1 and ROUGE-L F-measures computed by Google's rouge_score (an ``evaluate`` metric, offline)."""

import datasets
import evaluate
import numpy
from rouge_score import rouge_scorer

_DESCRIPTION = """ROUGE (Lin, 2004) F-measures per prediction from ``rouge_score.rouge_scorer.RougeScorer``,
averaged over predictions (a plain mean: no bootstrap resampling), in [0, 1]. With several references per
prediction, each prediction keeps its best score against any of them (``score_multi``)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: Predicted texts.
    references: One reference text per prediction, or a list of references per prediction.
    rouge_types: ROUGE variants (default ``["rouge1", "rougeL"]``, the paper's R-1 and R-L).
    use_stemmer: Porter-stem words before matching (default ``False``).
    use_aggregator: Return the mean over predictions (default) or the per-prediction F-measures.
Returns:
    One entry per ROUGE type: its mean F-measure (or the list of per-prediction F-measures).
"""

_CITATION = """@inproceedings{lin-2004-rouge,
  title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
  author = "Lin, Chin-Yew",
  booktitle = "Text Summarization Branches Out",
  year = "2004",
  pages = "74--81",
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    """ROUGE F-measures through rouge_score."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, rouge_types=None, use_stemmer=False, use_aggregator=True):
        rouge_types = list(rouge_types or ["rouge1", "rougeL"])
        scorer = rouge_scorer.RougeScorer(rouge_types, use_stemmer=use_stemmer)
        per_row = {name: [] for name in rouge_types}
        for prediction, reference in zip(predictions, references):
            if isinstance(reference, str):
                scores = scorer.score(reference, prediction)
            else:
                scores = scorer.score_multi(list(reference), prediction)
            for name in rouge_types:
                per_row[name].append(scores[name].fmeasure)
        if not use_aggregator:
            return per_row
        return {name: float(numpy.mean(values)) if values else 0.0 for name, values in per_row.items()}

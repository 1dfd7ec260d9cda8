"""BERTScore of predicted against reference texts, computed by bert_score (an ``evaluate`` metric, offline)."""

import os

import bert_score
import datasets
import evaluate
import numpy

_DESCRIPTION = """BERTScore (Zhang et al., 2020): greedy cosine matching of contextual token embeddings, computed
by ``bert_score.score``. The scoring model is an option: a Hub id (default ``roberta-large``, layer 17, the
bert_score default for English) or a local folder (then ``num_layers`` is required). With
``rescale_with_baseline`` the scores are rescaled with bert_score's published baseline for the model and
language (``(score - b) / (1 - b)``), or with the baseline file given as ``baseline_path``. A pair whose
prediction or references are all empty (an IDM that generated nothing) scores 0 (it matches nothing); the
other pairs go to bert_score."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: Predicted texts.
    references: One reference text per prediction, or a list of references per prediction (best match kept).
    model_type: Hub id or local folder of the embedding model (default ``roberta-large``).
    num_layers: Layer whose embeddings are compared (default: bert_score's for a known model id).
    lang: Language of the texts (selects the baseline file; default ``en``).
    idf: Weight tokens by inverse document frequency over the references.
    rescale_with_baseline: Rescale with the baseline (see above).
    baseline_path: A baseline file (bert_score's TSV layout) instead of the packaged one.
    batch_size: Texts per forward pass.
    device: torch device (default: bert_score's choice, CUDA when available).
    use_aggregator: Return means (default) or per-prediction lists.
Returns:
    precision, recall, f1: Means (or per-prediction lists).
    model_type, num_layers, rescaled: What was used.
"""

_CITATION = """@inproceedings{bert-score,
  title={BERTScore: Evaluating Text Generation with BERT},
  author={Tianyi Zhang* and Varsha Kishore* and Felix Wu* and Kilian Q. Weinberger and Yoav Artzi},
  booktitle={International Conference on Learning Representations},
  year={2020},
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BertScore(evaluate.Metric):
    """BERTScore through bert_score, with the model as an option."""

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
            reference_urls=["https://github.com/Tiiiger/bert_score"],
        )

    def _compute(
        self,
        predictions,
        references,
        model_type="roberta-large",
        num_layers=None,
        lang="en",
        idf=False,
        rescale_with_baseline=False,
        baseline_path=None,
        batch_size=64,
        device=None,
        use_aggregator=True,
    ):
        if not predictions:
            raise ValueError("BERTScore of no predictions")
        if rescale_with_baseline:
            packaged = os.path.join(
                os.path.dirname(bert_score.__file__), "rescale_baseline", lang, f"{model_type}.tsv"
            )
            if not os.path.isfile(baseline_path or packaged):
                raise FileNotFoundError(
                    f"BERTScore rescaling: no baseline file {baseline_path or packaged} for model {model_type!r} "
                    f"and language {lang!r}; pass baseline_path or rescale_with_baseline=False"
                )
        references = [reference if isinstance(reference, str) else list(reference) for reference in references]
        scored = [
            index
            for index, (prediction, reference) in enumerate(zip(predictions, references))
            if prediction.strip()
            and any(text.strip() for text in ([reference] if isinstance(reference, str) else reference))
        ]
        values = {name: [0.0] * len(predictions) for name in ("precision", "recall", "f1")}
        if scored:
            values.update(
                zip(
                    ("precision", "recall", "f1"),
                    self._scores(
                        [predictions[index] for index in scored],
                        [references[index] for index in scored],
                        scored,
                        len(predictions),
                        model_type=model_type,
                        num_layers=num_layers,
                        lang=lang,
                        idf=idf,
                        rescale_with_baseline=rescale_with_baseline,
                        baseline_path=baseline_path,
                        batch_size=batch_size,
                        device=device,
                    ),
                )
            )
        if use_aggregator:
            values = {name: float(numpy.mean(value)) for name, value in values.items()}
        return {**values, "model_type": model_type, "num_layers": num_layers, "rescaled": rescale_with_baseline}

    @staticmethod
    def _scores(predictions, references, rows, size, **options):
        """bert_score's (P, R, F) of the scored pairs, as lists of ``size`` values (0 where not scored)."""
        # bert_score wants multi-reference rows as lists; drop empty references within them
        references = [ref if isinstance(ref, str) else [text for text in ref if text.strip()] for ref in references]
        scores = bert_score.score(predictions, references, **options)
        lists = []
        for tensor in scores:
            full = [0.0] * size
            for row, value in zip(rows, tensor.tolist()):
                full[row] = value
            lists.append(full)
        return lists

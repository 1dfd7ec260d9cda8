"""Corpus BLEU of predicted against reference texts, computed by sacrebleu (an ``evaluate`` metric, offline)."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = """Corpus-level BLEU (Papineni et al., 2002) computed by sacrebleu's ``corpus_bleu`` with its
default settings (13a tokenisation, exponential smoothing, up to 4-grams), reported in [0, 1] (sacrebleu's score
divided by 100) as in the paper's Table 1."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: Predicted texts.
    references: One reference text per prediction, or a list of references per prediction (every prediction
        must have the same number of references).
    tokenize: sacrebleu tokeniser name (default ``13a``).
    lowercase: Compare lowercased texts.
Returns:
    bleu: Corpus BLEU in [0, 1].
    precisions: The 1- to 4-gram precisions in [0, 1].
    brevity_penalty: The brevity penalty.
    length_ratio: Prediction length over reference length (tokens).
    translation_length: Prediction tokens.
    reference_length: Reference tokens.
"""

_CITATION = """@inproceedings{post-2018-call,
  title = "A Call for Clarity in Reporting {BLEU} Scores",
  author = "Post, Matt",
  booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
  year = "2018",
  pages = "186--191",
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    """Corpus BLEU through sacrebleu."""

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
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False):
        references = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
        counts = {len(refs) for refs in references}
        if len(counts) > 1:
            raise ValueError(f"every prediction needs the same number of references, got {sorted(counts)}")
        streams = [list(stream) for stream in zip(*references)] if references else [[]]
        result = sacrebleu.corpus_bleu(predictions, streams, tokenize=tokenize, lowercase=lowercase)
        return {
            "bleu": result.score / 100,
            "precisions": [precision / 100 for precision in result.precisions],
            "brevity_penalty": result.bp,
            "length_ratio": result.sys_len / result.ref_len if result.ref_len else 0.0,
            "translation_length": result.sys_len,
            "reference_length": result.ref_len,
        }

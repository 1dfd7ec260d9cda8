"""IDM text metrics: wm-hub's offline evaluate modules against direct sacrebleu / rouge_score / bert_score, and
``wm-hub eval idm`` end to end on a tiny IDM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

PREDICTIONS = ["the door make her open", "move the cup to the left", "the red cube turns blue", ""]
REFERENCES = ["make her close the door", "move the cup to the left of the table", "paint the cube blue", "add a cup"]
SUBSETS = ["ag", "ag", "kubric", "kubric"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    """A random 2-layer BERT with a local WordPiece vocabulary (what BERTScore needs, nothing from the Hub)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({word for text in PREDICTIONS + REFERENCES for word in text.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *"abcdefghijklmnopqrstuvwxyz"]
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(vocab)}, model_max_length=64)
    assert tokenizer("open the door")["input_ids"].count(tokenizer.unk_token_id) == 0
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def test_bleu_and_rouge_equal_direct_computations():
    import evaluate
    import sacrebleu
    from rouge_score import rouge_scorer

    from wm_hub.evaluation.metrics import metric_path

    bleu = evaluate.load(metric_path("bleu")).compute(predictions=PREDICTIONS, references=REFERENCES)
    direct = sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES])
    assert bleu["bleu"] == pytest.approx(direct.score / 100)
    assert 0 < bleu["bleu"] < 1
    assert bleu["precisions"] == pytest.approx([p / 100 for p in direct.precisions])

    rouge = evaluate.load(metric_path("rouge")).compute(predictions=PREDICTIONS, references=REFERENCES)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
    rows = [scorer.score(ref, pred) for pred, ref in zip(PREDICTIONS, REFERENCES)]
    assert rouge["rouge1"] == pytest.approx(np.mean([row["rouge1"].fmeasure for row in rows]))
    assert rouge["rougeL"] == pytest.approx(np.mean([row["rougeL"].fmeasure for row in rows]))
    assert rouge["rouge1"] != rouge["rougeL"]  # the fixtures tell the two apart

    # several references per prediction: sacrebleu's reference streams, rouge_score's best-of
    multi = [[ref, "open the door"] for ref in REFERENCES]
    bleu_multi = evaluate.load(metric_path("bleu")).compute(predictions=PREDICTIONS, references=multi)
    assert bleu_multi["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(PREDICTIONS, [list(s) for s in zip(*multi)]).score / 100
    )
    rouge_multi = evaluate.load(metric_path("rouge")).compute(predictions=PREDICTIONS, references=multi)
    best = [scorer.score_multi(refs, pred)["rouge1"].fmeasure for pred, refs in zip(PREDICTIONS, multi)]
    assert rouge_multi["rouge1"] == pytest.approx(np.mean(best))


def test_bertscore_tiny_local_model(tiny_bert, tmp_path):
    import bert_score
    import evaluate

    from wm_hub.evaluation.metrics import metric_path

    metric = evaluate.load(metric_path("bertscore"))
    same = metric.compute(predictions=REFERENCES, references=REFERENCES, model_type=tiny_bert, num_layers=2)
    assert same["f1"] == pytest.approx(1.0, abs=1e-5) and same["precision"] == pytest.approx(1.0, abs=1e-5)
    rows = metric.compute(
        predictions=PREDICTIONS, references=REFERENCES, model_type=tiny_bert, num_layers=2, use_aggregator=False
    )
    _, _, direct = bert_score.score(PREDICTIONS[:3], REFERENCES[:3], model_type=tiny_bert, num_layers=2)
    assert rows["f1"][:3] == pytest.approx(direct.tolist(), abs=1e-6)
    assert all(value < 0.9999 for value in rows["f1"][:3])
    assert rows["f1"][3] == 0.0  # an empty prediction matches nothing

    # rescaling with a baseline file: (raw - b) / (1 - b) per layer row
    baseline = tmp_path / "tiny.tsv"
    baseline.write_text("LAYER,P,R,F\n0,0.1,0.1,0.1\n1,0.2,0.2,0.2\n2,0.5,0.4,0.6\n")
    rescaled = metric.compute(
        predictions=PREDICTIONS[:3],
        references=REFERENCES[:3],
        model_type=tiny_bert,
        num_layers=2,
        rescale_with_baseline=True,
        baseline_path=str(baseline),
        use_aggregator=False,
    )
    assert rescaled["f1"] == pytest.approx([(f - 0.6) / 0.4 for f in direct.tolist()], abs=1e-5)
    with pytest.raises(FileNotFoundError, match="no baseline file"):
        metric.compute(
            predictions=["a"], references=["a"], model_type=tiny_bert, num_layers=2, rescale_with_baseline=True
        )


def test_text_metrics_per_subset(tiny_bert):
    import sacrebleu

    from wm_hub.evaluation.text_metrics import TextMetricsConfig, compute_text_metrics, compute_text_metrics_by_subset

    config = TextMetricsConfig(bertscore_model=tiny_bert, bertscore_num_layers=2, bertscore_rescale=False)
    scores = compute_text_metrics_by_subset(PREDICTIONS, REFERENCES, SUBSETS, config)
    assert list(scores) == ["ag", "kubric", "all"]
    assert scores["ag"]["n"] == 2 and scores["all"]["n"] == 4
    assert scores["ag"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS[:2], [REFERENCES[:2]]).score / 100)
    for metric in ("rouge1", "rougeL", "bertscore_f1"):
        assert scores["all"][metric] == pytest.approx((scores["ag"][metric] + scores["kubric"][metric]) / 2)
    overall = compute_text_metrics(PREDICTIONS, REFERENCES, TextMetricsConfig(metrics=["bleu", "rouge"]))
    assert overall == pytest.approx({key: scores["all"][key] for key in ("n", "bleu", "rouge1", "rougeL")})
    with pytest.raises(ValueError, match="unknown text metric"):
        TextMetricsConfig(metrics=["meteor"])
    with pytest.raises(ValueError, match="3 predictions, 4 references"):
        compute_text_metrics(PREDICTIONS[:3], REFERENCES)


@pytest.fixture(scope="module")
def shapes_dataset(tmp_path_factory) -> Path:
    """A Hub-layout folder of 4 shapes-world triplets in two origins (what ``wm-hub data build`` writes)."""
    import datasets

    from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet
    from wm_hub.data.shapes_world import ShapesWorld, WorldConfig

    world = ShapesWorld(WorldConfig())
    rows = []
    for index in range(4):
        triplet = world.triplet("test", index)
        origin = f"synthetic/{'moves' if index % 2 else 'paints'}"
        rows.append(make_triplet(f"row{index}", triplet.source, triplet.target, triplet.action.text, origin))
    out = tmp_path_factory.mktemp("shapes-hub")
    (out / "data").mkdir()
    datasets.Dataset.from_list(rows, features=TRIPLET_FEATURES).to_parquet(out / "data/test-00000-of-00001.parquet")
    return out


def test_eval_idm_cli(tiny_model_dirs, tiny_bert, shapes_dataset, tmp_path, capsys):
    import sacrebleu

    from wm_hub.cli import main

    out = tmp_path / "idm.json"
    args = ["eval", "idm", "--data", str(shapes_dataset), "--out", str(out), "--max-new-tokens", "6"]
    args += ["--bertscore-model", tiny_bert, "--bertscore-num-layers", "2", "--no-bertscore-rescale"]
    assert main([*args, "--model", str(tiny_model_dirs("chameleon")), "--batch-size", "3"]) == 0
    results = json.loads(out.read_text())
    predictions = [json.loads(line) for line in Path(results["predictions"]).read_text().splitlines()]
    assert [row["id"] for row in predictions] == [f"row{i}" for i in range(4)]
    assert {row["subset"] for row in predictions} == {"moves", "paints"}
    assert set(results["subsets"]) == {"moves", "paints"} and results["overall"]["n"] == 4
    texts = [row["prediction"] for row in predictions]
    references = [row["reference"] for row in predictions]
    assert references[0] and all(isinstance(text, str) for text in texts)
    assert results["overall"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(texts, [references]).score / 100)
    assert results["config"]["decoding"] == "greedy"

    # a rerun resumes from the predictions file: nothing is generated (the model is not even loaded)
    before = Path(results["predictions"]).read_text()
    capsys.readouterr()
    assert main([*args, "--model", str(tmp_path / "no-such-model")]) == 0
    assert Path(results["predictions"]).read_text() == before
    assert json.loads(out.read_text())["overall"] == pytest.approx(results["overall"])


def test_eval_idm_cli_errors(tmp_path):
    from wm_hub.cli import main

    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "rows.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit, match=r"not a triplet dataset \(no column\(s\) \['id'"):
        main(["eval", "idm", "--model", "m", "--data", str(tmp_path / "csv"), "--split", "train", "--out", "r.json"])
    with pytest.raises(SystemExit, match=r"csv: no split 'test' \(.*\); choose one with --split"):
        main(["eval", "idm", "--model", "m", "--data", str(tmp_path / "csv"), "--out", "r.json"])
    with pytest.raises(SystemExit, match="unknown text metric"):
        main(["eval", "idm", "--model", "m", "--data", "d", "--metrics", "bleu,meteor", "--out", "r.json"])


def test_eval_idm_refuses_a_bertscore_model_it_cannot_load_before_any_prediction(tmp_path):
    from human_eval_study import write_aurora_checkout

    from wm_hub.cli import main

    root = write_aurora_checkout(tmp_path / "aurora", rows_per_subset=1)
    (tmp_path / "no-model").mkdir()  # offline without roberta-large in the cache fails the same way
    argv = [
        "eval",
        "idm",
        "--model",
        str(tmp_path / "never-loaded"),
        "--data",
        str(root),
        "--out",
        str(tmp_path / "r"),
    ]
    with pytest.raises(SystemExit, match=r"--bertscore-model .*no-model: cannot load it \(.*\); give a model"):
        main([*argv, "--bertscore-model", str(tmp_path / "no-model")])
    assert not (tmp_path / "r.predictions.jsonl").exists()  # nothing generated (the IDM never loaded)


def test_eval_triplets_name_rows_without_a_picture_or_an_action_and_skip_pictures_on_request(shapes_dataset, tmp_path):
    import datasets

    from wm_hub.evaluation.triplet_sources import load_eval_triplets

    rows = datasets.load_dataset(str(shapes_dataset), split="test").to_list()
    rows[1]["target"] = None
    folder = tmp_path / "holes"
    (folder / "data").mkdir(parents=True)
    features = datasets.load_dataset(str(shapes_dataset), split="test").features
    datasets.Dataset.from_list(rows, features=features).to_parquet(folder / "data/test-00000-of-00001.parquet")
    with pytest.raises(ValueError, match=r"1 missing picture\(s\): row 1 \(id 'row1'\) field 'target'; --skip"):
        load_eval_triplets(str(folder))
    triplets = load_eval_triplets(str(folder), skip_missing=True)
    assert triplets.dataset["id"] == ["row0", "row2", "row3"]
    assert [(bad["row"], bad["field"], bad["reason"]) for bad in triplets.skipped] == [(1, "target", "no image")]
    rows[1]["target"], rows[2]["action"], rows[3]["action"] = rows[0]["target"], " ", None
    datasets.Dataset.from_list(rows, features=features).to_parquet(folder / "data/test-00000-of-00001.parquet")
    with pytest.raises(ValueError, match=r"2 row\(s\) with a blank or missing action: row 2 \(id 'row2'\), row 3"):
        load_eval_triplets(str(folder), skip_missing=True)

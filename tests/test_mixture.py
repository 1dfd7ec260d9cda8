"""Data mixtures: deterministic max_samples/weight draws, hold-outs without leakage, clear errors."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import datasets
import pytest
from PIL import Image

from wm_hub.data.mixture import SourceConfig, build_mixture
from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (shade % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _triplet_folder(root: Path, name: str, count: int) -> str:
    """A local dataset folder of ``count`` triplets with ids ``name/<i>`` (as ``wm-hub data build`` writes)."""
    rows = [make_triplet(f"{name}/{i}", _png(i), _png(i + 1), f"act {i}", f"test/{name}") for i in range(count)]
    datasets.Dataset.from_list(rows, features=TRIPLET_FEATURES).to_parquet(
        str(root / name / "data" / "train-00000-of-00001.parquet")
    )
    return str(root / name)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixture")
    return {name: _triplet_folder(root, name, count) for name, count in (("big", 40), ("small", 6))}


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def test_max_samples_and_weight_pick_the_same_rows_whatever_the_other_sources(folders, cache):
    big = SourceConfig(path=folders["big"], max_samples=10)
    small = SourceConfig(path=folders["small"], weight=2.5)
    mixture = build_mixture([big, small], seed=3, cache_dir=cache)
    ids = Counter(mixture.train["id"])

    big_ids = {key for key in ids if key.startswith("big/")}
    assert len(big_ids) == 10 and all(ids[key] == 1 for key in big_ids)
    small_counts = sorted(count for key, count in ids.items() if key.startswith("small/"))
    assert small_counts == [2, 2, 2, 3, 3, 3]  # round(2.5 * 6) = 15: every row twice, a seeded half once more
    assert [(r.label, r.available, r.train, r.eval) for r in mixture.sources] == [
        (folders["big"], 40, 10, 0),
        (folders["small"], 6, 15, 0),
    ]

    again = build_mixture([small, big], seed=3, cache_dir=cache)
    assert Counter(again.train["id"]) == ids  # order of sources does not matter
    alone = build_mixture([big], seed=3, cache_dir=cache)
    assert set(alone.train["id"]) == big_ids  # nor does the presence of another source
    other_seed = build_mixture([big], seed=4, cache_dir=cache)
    assert set(other_seed.train["id"]) != big_ids


def test_weight_below_one_subsamples_and_the_full_source_is_kept_as_is(folders, cache):
    half = build_mixture([SourceConfig(path=folders["big"], weight=0.5)], cache_dir=cache)
    assert len(half.train) == 20 and len(set(half.train["id"])) == 20
    full = build_mixture([SourceConfig(path=folders["big"])], cache_dir=cache)
    assert full.train["id"] == [f"big/{i}" for i in range(40)] and full.eval is None


def test_eval_size_holds_out_rows_with_all_their_copies(folders, cache):
    sources = [SourceConfig(path=folders["big"]), SourceConfig(path=folders["small"], weight=3.0)]
    mixture = build_mixture(sources, eval_size=0.25, seed=0, cache_dir=cache)
    held_out = set(mixture.eval["id"])
    assert len(mixture.eval) == len(held_out) == round(0.25 * 46)
    assert not held_out & set(mixture.train["id"])
    assert len(mixture.train) == 40 + 18 - sum(3 if key.startswith("small/") else 1 for key in held_out)
    assert sum(report.eval for report in mixture.sources) == len(held_out)
    again = build_mixture(sources, eval_size=0.25, seed=0, cache_dir=cache)
    assert again.eval["id"] == mixture.eval["id"] and again.train["id"] == mixture.train["id"]
    assert len(build_mixture(sources, eval_size=5, cache_dir=cache).eval) == 5


def test_eval_sources_form_a_separate_evaluation_set(folders, cache):
    mixture = build_mixture(
        [SourceConfig(path=folders["big"])],
        eval_sources=[SourceConfig(path=folders["small"], max_samples=4)],
        cache_dir=cache,
    )
    assert len(mixture.train) == 40 and len(mixture.eval) == 4
    assert mixture.summary()["eval_sources"] == [{"label": folders["small"], "available": 6, "train": 0, "eval": 4}]


def test_builder_sources_resolve_data_dir_against_data_root(tmp_path, cache):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.png").write_bytes(_png(1))
    (tmp_path / "ann" / "b.png").write_bytes(_png(2))
    line = '{"id": "v/0-1", "source": "a.png", "target": "b.png", "action": "push it", "score": -1.5}\n'
    (tmp_path / "ann" / "annotations.jsonl").write_text(line)
    source = SourceConfig(builder="synthetic_triplets", data_dir="ann", name="synthetic/test")
    mixture = build_mixture([source], data_root=str(tmp_path), cache_dir=cache)
    assert mixture.train["id"] == ["v/0-1"] and mixture.sources[0].label == "synthetic/test"
    with pytest.raises(FileNotFoundError, match="source synthetic/test: data_dir .*missing is not a folder"):
        build_mixture([SourceConfig(builder="synthetic_triplets", data_dir="missing", name="synthetic/test")])


def test_a_builder_folder_that_changed_is_built_again_and_expect_rows_checks_its_count(tmp_path, cache):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.png").write_bytes(_png(1))
    (tmp_path / "ann" / "b.png").write_bytes(_png(2))
    line = '{"id": "v/%d", "source": "a.png", "target": "b.png", "action": "push it", "score": -1.5}\n'
    (tmp_path / "ann" / "annotations.jsonl").write_text(line % 0)
    source = SourceConfig(builder="synthetic_triplets", data_dir=str(tmp_path / "ann"), name="s", expect_rows=2)
    with pytest.raises(ValueError, match=r"source s: 1 rows, the recipe expects 2 \(expect_rows\)"):
        build_mixture([source], cache_dir=cache)
    (tmp_path / "ann" / "annotations-00001.jsonl").write_text(line % 1)  # a resumed annotation run added a shard
    assert build_mixture([source], cache_dir=cache).train["id"] == ["v/0", "v/1"]  # not the cached single row
    with pytest.raises(ValueError, match="expect_rows must be at least 1"):
        SourceConfig(path="x", expect_rows=0)


def test_bad_sources_fail_with_a_message_naming_them(tmp_path, folders, cache):
    with pytest.raises(ValueError, match="exactly one of 'builder'"):
        SourceConfig(builder="aurora", path="x")
    with pytest.raises(ValueError, match="Unknown dataset builder 'auroraa'"):
        SourceConfig(builder="auroraa")
    with pytest.raises(ValueError, match="weight must be positive"):
        SourceConfig(path="x", weight=0)
    with pytest.raises(ValueError, match="share the label"):
        build_mixture([SourceConfig(path=folders["big"]), SourceConfig(path=folders["big"], max_samples=3)])
    with pytest.raises(ValueError, match="no sources"):
        build_mixture([])
    with pytest.raises(ValueError, match="keeps none"):
        build_mixture([SourceConfig(path=folders["small"], weight=0.01)], cache_dir=cache)
    with pytest.raises(ValueError, match="either eval_sources .* or eval_size"):
        build_mixture(
            [SourceConfig(path=folders["big"])], eval_sources=[SourceConfig(path=folders["small"])], eval_size=2
        )
    plain = tmp_path / "plain"
    datasets.Dataset.from_dict({"text": ["a", "b"]}).to_parquet(str(plain / "data" / "train-00000-of-00001.parquet"))
    with pytest.raises(ValueError, match=r"not a triplet dataset \(no column\(s\) \['id', 'source'"):
        build_mixture([SourceConfig(path=str(plain))], cache_dir=cache)

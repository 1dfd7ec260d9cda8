"""CITATION.cff is valid Citation File Format 1.2.0 and agrees with what the model cards cite.

``tests/data/citation-file-format-1.2.0.schema.json`` is the official CFF 1.2.0 JSON schema
(https://citation-file-format.github.io/1.2.0/schema.json, CC-BY-4.0, as shipped by the ``cffconvert`` package),
kept in the repository because tests run without network access.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).with_name("data") / "citation-file-format-1.2.0.schema.json"


class _CffLoader(yaml.SafeLoader):
    """YAML as CFF tools read it: dates stay strings (the schema types them as ``string``, format ``date``)."""


_CffLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _errors(citation: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return sorted(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(citation)
    )


@pytest.fixture(scope="module")
def citation() -> dict:
    return yaml.load((ROOT / "CITATION.cff").read_text(encoding="utf-8"), Loader=_CffLoader)


def test_citation_file_is_valid_cff_1_2_0(citation):
    assert citation["cff-version"] == "1.2.0"
    assert _errors(citation) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.pop("title"), ": 'title' is a required property"),
        (lambda c: c.update({"date-released": "26/11/2026"}), "date-released: '26/11/2026' is not a 'date'"),
        (lambda c: c.update({"license": "Apache 2"}), "license: 'Apache 2' is not valid"),
        (lambda c: c["preferred-citation"].update({"type": "tweet"}), "preferred-citation/type: 'tweet' is not one"),
    ],
)
def test_the_schema_check_rejects_broken_citations(citation, change, expected):
    broken = copy.deepcopy(citation)
    change(broken)
    assert any(error.startswith(expected) for error in _errors(broken)), _errors(broken)


def test_citation_agrees_with_the_package_and_the_model_cards(citation):
    import wm_hub
    from wm_hub.training.model_card import PAPER_CITATION

    assert citation["version"] == wm_hub.__version__
    paper = citation["preferred-citation"]
    for author in paper["authors"]:
        assert author["family-names"] in PAPER_CITATION
    assert paper["title"].replace("–", "-") in PAPER_CITATION
    assert paper["repository-code"] in PAPER_CITATION

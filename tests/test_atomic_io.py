"""wm_hub.atomic_io: whole files or none, and append-only logs that resume after a torn last line."""

import json
import os

import pytest

from wm_hub.atomic_io import read_json_object, read_jsonl_log, write_json, write_jsonl, write_text, write_with


def test_writes_land_whole_with_their_folder_and_no_temporary_file(tmp_path):
    assert write_text(tmp_path / "a" / "b.txt", "héllo") == tmp_path / "a" / "b.txt"
    assert (tmp_path / "a" / "b.txt").read_text(encoding="utf-8") == "héllo"
    write_json(tmp_path / "r.json", {"x": [1, 2], "name": "é"}, ensure_ascii=False)
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == '{\n  "x": [\n    1,\n    2\n  ],\n  "name": "é"\n}\n'
    write_jsonl(tmp_path / "rows.jsonl", ({"i": i} for i in range(3)))
    assert (tmp_path / "rows.jsonl").read_text() == '{"i": 0}\n{"i": 1}\n{"i": 2}\n'
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.txt", "r.json", "rows.jsonl"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_text(tmp_path / "keep.txt", "old")

    def half_then_crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_with(path, half_then_crash)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_temporary_name_is_per_process(tmp_path):
    seen = []
    write_with(tmp_path / "x.bin", lambda tmp: (seen.append(tmp.name), tmp.write_bytes(b"1")))
    assert seen == [f".x.bin.{os.getpid()}.tmp"]


def test_a_log_drops_a_torn_last_line_and_appending_resumes_cleanly(tmp_path):
    log = tmp_path / "scores.jsonl"
    assert read_jsonl_log(log) == []
    log.write_text('{"id": 1}\n\n{"id": 2}\n{"id": 3, "sco')  # a crash while appending row 3
    assert read_jsonl_log(log) == [{"id": 1}, {"id": 2}]
    assert log.read_text() == '{"id": 1}\n\n{"id": 2}\n'
    with log.open("a") as handle:
        handle.write(json.dumps({"id": 3}) + "\n")
    assert [row["id"] for row in read_jsonl_log(log)] == [1, 2, 3]


@pytest.mark.parametrize("line", ["not json", "[1, 2]"])
def test_a_complete_line_that_is_not_an_object_is_named(tmp_path, line):
    log = tmp_path / "log.jsonl"
    log.write_text(f'{{"id": 1}}\n{line}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl:2: not a JSON object"):
        read_jsonl_log(log)
    assert log.read_text() == f'{{"id": 1}}\n{line}\n'  # nothing is thrown away


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n", r"settings.json: not valid JSON \(not UTF-8 text: invalid start byte at byte 0\)"),
        (b"{", r"settings.json: not valid JSON \(Expecting"),
        (b"[1]", "settings.json: expected a JSON object, got list"),
    ],
)
def test_read_json_object_names_the_file_of_any_bad_content(tmp_path, content, message):
    path = tmp_path / "settings.json"
    path.write_bytes(content)  # a picture given where a settings or results file goes, cut JSON, a list
    with pytest.raises(ValueError, match=message):
        read_json_object(path)


def test_utf8_lines_names_the_line_that_is_not_utf8(tmp_path):
    from wm_hub.atomic_io import utf8_lines

    path = tmp_path / "rows.jsonl"
    path.write_bytes("é\n".encode() + b"ok\r\n" + b"\xff\n")
    lines = utf8_lines(path)
    assert next(lines) == (1, "é\n") and next(lines) == (2, "ok\r\n")
    with pytest.raises(ValueError, match="rows.jsonl:3: not UTF-8 text"):
        next(lines)

"""Reading a batch's input and writing its output: pure, no model."""

from __future__ import annotations

import json

import pytest

from autocontinue.batch.items import parse_lines
from autocontinue.batch.output import ItemResult, OutputWriter
from autocontinue.batch.runner import batch_key, load_items
from autocontinue.usage import Usage


def test_jsonl_lines_become_items_with_their_options():
    text = "\n".join(
        [
            json.dumps({"id": "a", "prompt": "Write a poem", "max_rounds": 3}),
            "",
            json.dumps(
                {
                    "id": 7,
                    "messages": [{"role": "user", "content": "Hi"}],
                    "system": "Be brief",
                    "min_words": 10,
                }
            ),
        ]
    )
    items, bad = parse_lines(text)
    assert bad == []
    assert [(i.id, i.line) for i in items] == [("a", 1), ("7", 3)]
    assert items[0].prompt == "Write a poem" and items[0].options == {"max_rounds": 3}
    assert items[1].system == "Be brief" and items[1].options == {"min_words": 10}
    assert items[1].prompt == [{"role": "user", "content": "Hi"}]


def test_bad_lines_are_named_by_number_and_the_rest_kept():
    text = "\n".join(
        [
            json.dumps({"id": "a", "prompt": "one"}),
            "{not json",
            json.dumps({"id": "b", "prompt": "two", "colour": "red"}),
            json.dumps({"id": "a", "prompt": "again"}),
            json.dumps({"id": "c"}),
            json.dumps(["a", "list"]),
            json.dumps({"id": "d", "prompt": "four"}),
        ]
    )
    items, bad = parse_lines(text)
    assert [i.id for i in items] == ["a", "d"]
    assert [b.line for b in bad] == [2, 3, 4, 5, 6]
    reasons = [b.reason for b in bad]
    assert "not valid JSON" in reasons[0]
    assert "'colour'" in reasons[1]
    assert "twice" in reasons[2]
    assert "prompt or messages" in reasons[3]
    assert "JSON object" in reasons[4]
    assert str(bad[0]).startswith("line 2: ")


def test_a_plain_text_file_is_one_prompt_a_line():
    items, bad = parse_lines("Write about cats\n\n  Write about dogs  \n")
    assert bad == []
    assert [(i.id, i.prompt) for i in items] == [("1", "Write about cats"), ("3", "Write about dogs")]


def test_custom_id_stems_are_safe_and_stable():
    items, _ = parse_lines(
        json.dumps({"id": "a b/ü", "prompt": "x"}) + "\n" + json.dumps({"id": "ok-1_x", "prompt": "y"})
    )
    assert items[1].key == "ok-1_x"
    assert items[0].key.startswith("i") and items[0].key.isalnum()
    again, _ = parse_lines(json.dumps({"id": "a b/ü", "prompt": "x"}))
    assert again[0].key == items[0].key


def test_items_from_python_objects_and_strings():
    items, bad = load_items([{"id": "x", "prompt": "p"}, "just a prompt", 5])
    assert [i.id for i in items] == ["x", "2"]
    assert bad[0].line == 3


def test_same_input_and_options_give_the_same_batch_key():
    items, _ = parse_lines("a\nb\n")
    other, _ = parse_lines("a\nc\n")
    assert batch_key(items, {"max_rounds": 2}, "live") == batch_key(items, {"max_rounds": 2}, "live")
    assert batch_key(items, {"max_rounds": 2}, "live") != batch_key(items, {"max_rounds": 3}, "live")
    assert batch_key(items, {}, "live") != batch_key(other, {}, "live")
    assert batch_key(items, {}, "live") != batch_key(items, {}, "batches")


def _result(ident: str) -> ItemResult:
    return ItemResult(
        id=ident, text="é" * 3, stop_reason="end_turn", rounds=2, usage=Usage(output_tokens=5), cost_usd=0.1
    )


def test_output_lines_are_whole_json_objects(tmp_path):
    path = tmp_path / "out.jsonl"
    writer = OutputWriter(path)
    writer.write(_result("a"))
    writer.write(_result("b"))
    writer.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b"]
    assert set(json.loads(lines[0])) == {"id", "text", "stop_reason", "rounds", "usage", "cost_usd", "error"}


def test_rewrite_replaces_a_half_written_output_with_the_finished_items(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(_result("a").to_line() + '{"id": "b", "te', encoding="utf-8")
    writer = OutputWriter(path)
    writer.rewrite([_result("a")])
    writer.write(_result("c"))
    writer.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "c"]


def test_output_dir_holds_one_file_per_item_even_for_awkward_ids(tmp_path):
    writer = OutputWriter(output_dir=tmp_path / "answers")
    writer.rewrite([])
    writer.write(_result("a/b"))
    writer.write(_result("a_b"))
    names = sorted(p.name for p in (tmp_path / "answers").iterdir())
    assert len(names) == 2 and "a_b.json" in names
    assert all(json.loads((tmp_path / "answers" / n).read_text())["id"] in ("a/b", "a_b") for n in names)


def test_strict_refuses_an_input_with_a_bad_line(tmp_path):
    from autocontinue import ConfigurationError, batch

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "prompt": "x"}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="line 2"):
        batch(str(source), strict=True, journal=str(tmp_path / "j.sqlite3"), backend="local")


def test_an_item_option_with_a_wrong_value_is_a_bad_line_saying_why():
    text = "\n".join(
        json.dumps(line)
        for line in [
            {"id": "a", "prompt": "x", "max_rounds": 0},
            {"id": "b", "prompt": "x", "temperature": 5},
            {"id": "c", "prompt": "x", "max_rounds": 2},
        ]
    )
    items, bad = parse_lines(text)
    assert [i.id for i in items] == ["c"]
    assert [b.line for b in bad] == [1, 2]
    assert "max_rounds" in bad[0].reason and "temperature" in bad[1].reason


@pytest.mark.parametrize(
    ("lines", "ids"),
    [
        (['{"prompt": "y"}', '{"id": "1", "prompt": "x"}'], ["line-1", "1"]),
        (['{"id": 2, "prompt": "x"}', '{"prompt": "y"}'], ["2", "line-2"]),
        (
            ['{"prompt": "y"}', '{"id": "1", "prompt": "x"}', '{"id": "line-1", "prompt": "z"}'],
            ["line-1-2", "1", "line-1"],
        ),
        (['{"prompt": "y"}', '{"id": "b", "prompt": "x"}'], ["1", "b"]),  # no clash: ids as before
    ],
)
def test_an_explicit_id_is_never_lost_to_one_made_from_a_line_number(lines, ids):
    items, bad = parse_lines("\n".join(lines))
    assert bad == []
    assert [item.id for item in items] == ids


def test_python_batch_with_no_good_item_says_why_the_first_line_is_bad(tmp_path):
    from autocontinue import ConfigurationError, batch

    with pytest.raises(ConfigurationError, match="holds no items.*line 1: give exactly one of prompt"):
        batch([{"id": "a"}], journal=str(tmp_path / "j.sqlite3"), backend="local")

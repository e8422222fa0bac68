"""Prompt files: our JSON lines and MT-Bench's question format, and errors that name the line."""

from __future__ import annotations

import pytest

from arenastack_arena.evaluation.prompts import DEFAULT_CATEGORY, Prompt, PromptError, parse_jsonl

# MT-Bench's question.jsonl layout, key for key (the texts are our own).
MT_BENCH_LINES = (
    '{"question_id": 81, "category": "writing", "turns": ["Write a short note to a '
    'neighbour about a lost cat, warm but brief.", "Now rewrite it so that every sentence '
    'starts with the letter C."]}\n'
    '{"question_id": 111, "category": "math", "turns": ["What is 17 * 23?", "And 17 * 230?"], '
    '"reference": ["391", "3910"]}\n'
)


def test_mt_bench_lines_are_read_as_they_are():
    first, second = parse_jsonl(MT_BENCH_LINES, "question.jsonl")
    assert first == Prompt(
        id="81",
        turns=[
            "Write a short note to a neighbour about a lost cat, warm but brief.",
            "Now rewrite it so that every sentence starts with the letter C.",
        ],
        category="writing",
        reference=None,
    )
    assert first.multi_turn
    assert (second.id, second.category, second.reference) == ("111", "math", ["391", "3910"])


def test_our_format_defaults_and_blank_lines():
    text = (
        '{"text": "Name three primes."}\n\n   \n'
        '{"id": "q-7", "turns": ["a", "b"], "reference": "x"}\n'
    )
    first, second = parse_jsonl(text, "prompts.jsonl")
    # The id is the physical line number, blank lines included.
    assert (first.id, first.turns, first.category) == (
        "1",
        ["Name three primes."],
        DEFAULT_CATEGORY,
    )
    assert not first.multi_turn
    assert (second.id, second.turns, second.reference) == ("q-7", ["a", "b"], ["x"])


def test_line_number_id_may_not_collide_with_an_explicit_one():
    text = '{"id": "2", "text": "a"}\n{"text": "b"}\n'
    with pytest.raises(PromptError, match=r"p\.jsonl:2: duplicate id '2' \(first on line 1\)"):
        parse_jsonl(text, "p.jsonl")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"text": "ok"', "bad JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"category": "math"}', "neither text nor turns"),
        ('{"text": "a", "turns": ["b"]}', "both text and turns"),
        ('{"turns": ["fine", "  "]}', "empty turn 2"),
        ('{"text": ""}', "empty turn 1"),
        ('{"turns": []}', "non-empty list"),
        ('{"turns": ["a", 3]}', "turn 2 is not a string"),
        ('{"id": true, "text": "a"}', "id must be"),
        ('{"text": "a", "reference": ["r1", "r2"]}', "2 reference answers for 1 turns"),
        ('{"text": "a", "reference": [1]}', "reference must be"),
        ('{"text": "a", "category": ""}', "category"),
    ],
)
def test_errors_name_source_line_and_problem(line, problem):
    text = '{"text": "the first line is fine"}\n' + line + "\n"
    with pytest.raises(PromptError) as err:
        parse_jsonl(text, "bad.jsonl")
    assert str(err.value).startswith("bad.jsonl:2: ")
    assert problem in str(err.value)
    assert isinstance(err.value, ValueError)


def test_duplicate_mt_bench_ids():
    line = '{"question_id": 81, "category": "writing", "turns": ["x"]}\n'
    with pytest.raises(PromptError, match="q.jsonl:2: duplicate id '81'"):
        parse_jsonl(line + line, "q.jsonl")


def test_prompt_itself_refuses_empty_turns():
    with pytest.raises(ValueError):
        Prompt("1", [])
    with pytest.raises(ValueError):
        Prompt("1", ["   "])

"""Evaluation prompts from JSON lines: our own format or MT-Bench's question file.

Our format, one object per line: ``{"id"?, "text"? | "turns"?, "category"?,
"reference"?}``. MT-Bench's ``question.jsonl`` is read as it is:
``{"question_id": 81, "category": "writing", "turns": [...], "reference"?: [...]}``.
Keys neither format knows are ignored, so files carrying extra metadata load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

DEFAULT_CATEGORY = "general"


class PromptError(ValueError):
    """A prompt file problem, naming the source and the line."""


@dataclass(frozen=True)
class Prompt:
    id: str
    turns: list[str]
    category: str = DEFAULT_CATEGORY
    # One reference answer per turn; may stop before the last turn.
    reference: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError("a prompt needs at least one turn")
        if any(not turn.strip() for turn in self.turns):
            raise ValueError("empty turn")
        if self.reference is not None and len(self.reference) > len(self.turns):
            raise ValueError(f"{len(self.reference)} reference answers for {len(self.turns)} turns")

    @property
    def multi_turn(self) -> bool:
        return len(self.turns) > 1


def parse_jsonl(text: str, source: str) -> list[Prompt]:
    """Prompts in file order; blank lines skipped; ids default to the line number."""
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompt = _parse_line(line, number)
        except ValueError as err:
            raise PromptError(f"{source}:{number}: {err}") from None
        if prompt.id in seen:
            raise PromptError(
                f"{source}:{number}: duplicate id {prompt.id!r} (first on line {seen[prompt.id]})"
            )
        seen[prompt.id] = number
        prompts.append(prompt)
    return prompts


def _parse_line(line: str, number: int) -> Prompt:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"bad JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    return Prompt(
        id=_prompt_id(row, number),
        turns=_turns(row),
        category=_category(row),
        reference=_reference(row),
    )


def _prompt_id(row: dict, number: int) -> str:
    if "id" in row and "question_id" in row:
        raise ValueError("both id and question_id")
    raw = row.get("id", row.get("question_id"))
    if raw is None:
        return str(number)
    # bool is an int subclass; true as an id is surely a mistake.
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(f"id must be a string or an integer, got {raw!r}")
    if isinstance(raw, str) and not raw.strip():
        raise ValueError("empty id")
    return str(raw)


def _turns(row: dict) -> list[str]:
    if "text" in row and "turns" in row:
        raise ValueError("both text and turns")
    if "text" in row:
        turns = [row["text"]]
    elif "turns" in row:
        turns = row["turns"]
        if not isinstance(turns, list) or not turns:
            raise ValueError("turns must be a non-empty list of strings")
    else:
        raise ValueError("neither text nor turns")
    for k, turn in enumerate(turns, start=1):
        if not isinstance(turn, str):
            raise ValueError(f"turn {k} is not a string")
        if not turn.strip():
            raise ValueError(f"empty turn {k}")
    return list(turns)


def _category(row: dict) -> str:
    category = row.get("category", DEFAULT_CATEGORY)
    if not isinstance(category, str) or not category.strip():
        raise ValueError(f"category must be a non-empty string, got {category!r}")
    return category


def _reference(row: dict) -> list[str] | None:
    reference = row.get("reference")
    if reference is None:
        return None
    # A bare string is the reference for a single-turn prompt.
    if isinstance(reference, str):
        reference = [reference]
    if not isinstance(reference, list) or not all(isinstance(r, str) for r in reference):
        raise ValueError("reference must be a string or a list of strings")
    return reference or None

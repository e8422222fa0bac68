"""Verdict sources: who decided a battle.

People's votes are source "human" and stay in the ``votes`` / ``vote_counts``
tables; an LLM judge's games are source "judge:<judge model>" and live in
``judged_battles`` / ``game_counts``. Boards are computed per source so that
the two can be compared; "all" is every source together.
"""

from __future__ import annotations

HUMAN = "human"
ALL = "all"
JUDGE_PREFIX = "judge:"
# Names of models and judges come from outside (a runner, an import): any printable
# text up to this length. The UI shows them with textContent, never as markup.
MAX_NAME = 200
PRINTABLE = r"[^\x00-\x1f\x7f]"
NAME_TEXT_PATTERN = rf"^{PRINTABLE}{{1,{MAX_NAME}}}$"
_JUDGE = rf"{JUDGE_PREFIX}{PRINTABLE}{{1,{MAX_NAME}}}"
JUDGE_SOURCE_PATTERN = rf"^{_JUDGE}$"
# Who may be compared (a verdict source) and which boards exist (those and "all").
VERDICT_SOURCE_PATTERN = rf"^(?:{HUMAN}|{_JUDGE})$"
BOARD_SOURCE_PATTERN = rf"^(?:{ALL}|{HUMAN}|{_JUDGE})$"


def is_judge(source: str) -> bool:
    return source.startswith(JUDGE_PREFIX) and len(source) > len(JUDGE_PREFIX)


def board_sources(judges: list[str]) -> list[str]:
    """Every source with boards, in the order the UI lists them: human, judges, all.

    "all" exists only beside a judge: with people alone it would be the human
    board fitted twice.
    """
    return [HUMAN, *sorted(judges), *([ALL] if judges else [])]

"""Service settings, read once from ARENA_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

ENV_PREFIX = "ARENA_"


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///arena.db"
    admin_token: str = ""
    # Bearer token of the LLM-judge API (POST /api/judgments, ...); empty turns that API off.
    judge_token: str = ""
    models_file: Path | None = None
    max_prompt_chars: int = 8_000
    max_body_bytes: int = 64 * 1024
    max_import_bytes: int = 64 * 1024 * 1024
    # One judged battle: up to 16 turns of a prompt and two answers, two judgments.
    max_judgment_bytes: int = 8 * 1024 * 1024
    max_turns: int = 8
    # Requests per client per minute, per bucket.
    battle_rate_per_minute: float = 30.0
    vote_rate_per_minute: float = 60.0
    upstream_timeout_s: float = 120.0
    upstream_first_token_timeout_s: float = 30.0
    max_answer_chars: int = 64_000
    # Sent as max_tokens. Unset, an endpoint may fill its whole context with one answer and
    # then refuse the conversation's next turn (HTTP 400 from vLLM past max_model_len).
    max_answer_tokens: int | None = None
    leaderboard_refresh_s: float = 5.0
    leaderboard_bootstrap_rounds: int = 100
    # Worker processes sharing a refresh, the boards dealt out between them (one per core).
    leaderboard_workers: int = 2
    leaderboard_anchor: str | None = None
    leaderboard_anchor_rating: float = 1000.0
    # Models with fewer battles than this on a board are listed apart as preliminary, unranked.
    min_battles: int = 10
    style_max_votes: int = 200_000
    # The style-controlled board reads individual votes, so it is rebuilt less often.
    style_refresh_s: float = 60.0
    seed_counts_file: Path | None = None
    trust_forwarded_for: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            if kind.startswith("int"):
                values[f.name] = int(raw)
            elif kind.startswith("float"):
                values[f.name] = float(raw)
            elif kind.startswith("bool"):
                values[f.name] = raw.lower() in ("1", "true", "yes")
            elif kind.startswith("Path"):
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        values.update(overrides)
        return cls(**values)

"""Versioned schema migrations, valid on SQLite and PostgreSQL alike.

Append only: a released migration is never edited; a change is a new version.
Timestamps are seconds since the epoch (DOUBLE PRECISION), flags are INTEGER,
so one text serves both databases.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "registry, battles, turns, votes",
        (
            """CREATE TABLE models (
                name TEXT PRIMARY KEY,
                endpoint TEXT NOT NULL,
                upstream_model TEXT NOT NULL,
                display_name TEXT NOT NULL,
                organization TEXT NOT NULL DEFAULT '',
                license TEXT NOT NULL DEFAULT '',
                price_per_mtok DOUBLE PRECISION,
                active INTEGER NOT NULL DEFAULT 1,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE battles (
                id TEXT PRIMARY KEY,
                model_a TEXT NOT NULL,
                model_b TEXT NOT NULL,
                category TEXT,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE turns (
                battle_id TEXT NOT NULL REFERENCES battles(id),
                turn INTEGER NOT NULL,
                prompt TEXT NOT NULL,
                answer_a TEXT,
                answer_b TEXT,
                error_a TEXT,
                error_b TEXT,
                PRIMARY KEY (battle_id, turn)
            )""",
            """CREATE TABLE votes (
                battle_id TEXT PRIMARY KEY,
                model_a TEXT NOT NULL,
                model_b TEXT NOT NULL,
                winner TEXT NOT NULL,
                judge TEXT NOT NULL,
                turn INTEGER NOT NULL,
                anony INTEGER NOT NULL,
                language TEXT,
                category TEXT,
                tstamp DOUBLE PRECISION NOT NULL,
                a_tokens DOUBLE PRECISION,
                a_headers DOUBLE PRECISION,
                a_lists DOUBLE PRECISION,
                a_bold DOUBLE PRECISION,
                b_tokens DOUBLE PRECISION,
                b_headers DOUBLE PRECISION,
                b_lists DOUBLE PRECISION,
                b_bold DOUBLE PRECISION
            )""",
        ),
    ),
    (
        2,
        "covering index for the leaderboard's GROUP BY",
        ("CREATE INDEX votes_pair_outcome ON votes (category, model_a, model_b, winner)",),
    ),
    (
        3,
        "index on vote time: the style board reads the latest votes",
        ("CREATE INDEX votes_tstamp ON votes (tstamp)",),
    ),
    (
        4,
        "vote counts per (category, pair, outcome), kept with every vote; backfilled",
        (
            # category '' stands for none: NULLs never conflict in a unique key.
            """CREATE TABLE vote_counts (
                category TEXT NOT NULL,
                model_a TEXT NOT NULL,
                model_b TEXT NOT NULL,
                winner TEXT NOT NULL,
                n BIGINT NOT NULL,
                PRIMARY KEY (category, model_a, model_b, winner)
            )""",
            """INSERT INTO vote_counts (category, model_a, model_b, winner, n)
                SELECT COALESCE(category, ''), model_a, model_b, winner, COUNT(*) FROM votes
                GROUP BY COALESCE(category, ''), model_a, model_b, winner""",
            # The leaderboard reads vote_counts now; this index only slowed every insert.
            "DROP INDEX votes_pair_outcome",
        ),
    ),
)

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
    (
        5,
        "judged battles (LLM judges) and their game counts per source",
        (
            # One row per judged battle, keyed by the runner's deterministic battleId. Turns,
            # judgments and games are JSON text: read back whole (export), never queried into.
            # outcome is the battle's result from its games (agreement); NULL without games.
            """CREATE TABLE judged_battles (
                id TEXT PRIMARY KEY,
                evaluation TEXT NOT NULL,
                run INTEGER NOT NULL,
                arena_battle_id TEXT,
                source TEXT NOT NULL,
                category TEXT,
                model_a TEXT NOT NULL,
                model_b TEXT NOT NULL,
                turns TEXT NOT NULL,
                judgments TEXT NOT NULL,
                games TEXT NOT NULL,
                consistent INTEGER,
                outcome TEXT,
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
            # A restarted runner lists its evaluation's ids; the export pages through them.
            "CREATE INDEX judged_battles_evaluation ON judged_battles (evaluation, tstamp, id)",
            # The style board reads a source's latest battles; agreement joins on the source.
            "CREATE INDEX judged_battles_source ON judged_battles (source, tstamp)",
            "CREATE INDEX judged_battles_arena ON judged_battles (arena_battle_id)",
            # As vote_counts, per source: games weighted (what the board fits) and battles
            # by their outcome (what the preliminary threshold and /api/sources count).
            """CREATE TABLE game_counts (
                source TEXT NOT NULL,
                category TEXT NOT NULL,
                model_a TEXT NOT NULL,
                model_b TEXT NOT NULL,
                winner TEXT NOT NULL,
                games BIGINT NOT NULL,
                battles BIGINT NOT NULL,
                PRIMARY KEY (source, category, model_a, model_b, winner)
            )""",
        ),
    ),
)

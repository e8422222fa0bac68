"""Pure pieces of the service: settings, config file, sampling, rate limits, style counts,
boards split between workers."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from arenastack_arena.ratings import EloScale
from arenastack_arena.service.app import load_models_file
from arenastack_arena.service.boards import compute_boards, merge_boards
from arenastack_arena.service.exchange import VoteImportError, line_to_vote, vote_to_line
from arenastack_arena.service.protection import RateLimiter
from arenastack_arena.service.sampling import NEW_MODEL_VOTES, sample_pair
from arenastack_arena.service.settings import Settings
from arenastack_arena.service.style_features import answer_style, total_style


def test_settings_from_env_parse_types():
    s = Settings.from_env(
        {
            "ARENA_MAX_TURNS": "3",
            "ARENA_UPSTREAM_TIMEOUT_S": "2.5",
            "ARENA_TRUST_FORWARDED_FOR": "true",
            "ARENA_MODELS_FILE": "/x.yaml",
            "ARENA_LEADERBOARD_ANCHOR": "m",
            "ARENA_ADMIN_TOKEN": "",
        }
    )
    assert (s.max_turns, s.upstream_timeout_s, s.trust_forwarded_for) == (3, 2.5, True)
    assert s.models_file == Path("/x.yaml") and s.leaderboard_anchor == "m" and s.admin_token == ""


def test_models_file_errors_name_the_problem(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("models: {}\n")
    with pytest.raises(ValueError, match="top-level 'models' list"):
        load_models_file(bad)
    bad.write_text("models:\n  - endpoint: http://x\n")
    with pytest.raises(ValueError, match="model 1 needs a name"):
        load_models_file(bad)
    good = tmp_path / "ok.yaml"
    good.write_text(
        "models:\n  - name: a\n    endpoint: http://h:8000/v1\n    upstream_model: org/a\n"
    )
    (entry,) = load_models_file(good)
    assert entry.upstream_model == "org/a" and entry.display_name == "a" and entry.active


def test_sampling_prefers_unexplored_pairs_and_new_models():
    rng = random.Random(0)
    models = ["a", "b", "c"]
    seen = {"a": 5000, "b": 5000, "c": 5000}
    pair_votes = {("a", "b"): 10_000, ("a", "c"): 0, ("b", "c"): 10_000}
    draws = Counter(tuple(sorted(sample_pair(models, pair_votes, seen, rng))) for _ in range(3000))
    assert draws[("a", "c")] > 0.9 * 3000
    newcomer = {"a": 5000, "b": 5000, "c": NEW_MODEL_VOTES - 1}
    even = {("a", "b"): 100, ("a", "c"): 100, ("b", "c"): 100}
    draws = Counter(tuple(sorted(sample_pair(models, even, newcomer, rng))) for _ in range(3000))
    assert draws[("a", "b")] < draws[("a", "c")] and draws[("a", "b")] < draws[("b", "c")]
    sides = Counter(sample_pair(["x", "y"], {}, {}, rng)[0] for _ in range(2000))
    assert 800 < sides["x"] < 1200
    with pytest.raises(ValueError, match="at least two active models"):
        sample_pair(["x"], {}, {}, rng)


def test_rate_limiter_refills():
    limiter = RateLimiter(rate_per_minute=60_000)  # 1000 per second
    allowed = sum(limiter.allow("c") for _ in range(70_000))
    assert 60_000 <= allowed < 70_000
    assert RateLimiter(2).allow("other")


def test_answer_style_counts():
    text = "# Title\n\n## Sub\n\n- one\n* two\n1. three\n\n**bold** and __also__ words."
    tokens, headers, lists, bold = answer_style(text)
    assert (headers, lists, bold) == (2, 3, 2) and tokens > 10
    assert total_style([text, text]) == tuple(2 * v for v in answer_style(text))


def test_export_line_round_trip_and_public_nested_counts():
    line = (
        '{"question_id": "q1", "model_a": "a", "model_b": "b", "winner": "tie", "judge": "j", '
        '"turn": 2, "anony": true, "language": "English", "tstamp": 5.0, '
        '"conv_metadata": {"sum_assistant_a_tokens": 10, "sum_assistant_b_tokens": 20, '
        '"header_count_a": {"h1": 1, "h2": 2}, "header_count_b": {"h1": 0}, '
        '"list_count_a": {"ordered": 1, "unordered": 1}, "list_count_b": {"ordered": 0}, '
        '"bold_count_a": {"**": 3, "__": 0}, "bold_count_b": {"**": 0}}}'
    )
    vote = line_to_vote(line, 1)
    assert vote.style_a == (10.0, 3.0, 2.0, 3.0) and vote.style_b == (20.0, 0.0, 0.0, 0.0)
    assert line_to_vote(vote_to_line(vote), 1) == vote
    with pytest.raises(VoteImportError, match="line 4: not valid JSON"):
        line_to_vote("{", 4)
    with pytest.raises(VoteImportError, match="must differ"):
        line_to_vote('{"model_a": "a", "model_b": "a", "winner": "tie"}', 1)


def test_boards_dealt_out_between_workers_merge_into_the_whole_refresh():
    rng = random.Random(4)
    models = [f"m{k}" for k in range(6)]
    tally: Counter[tuple[str | None, str, str, str]] = Counter()
    for _ in range(3000):
        a, b = rng.sample(models, 2)
        category = rng.choice([None, "coding", "math", "writing"])
        tally[category, a, b, rng.choice(["model_a", "model_b", "tie"])] += 1
    rows = [(*key, n) for key, n in tally.items()]
    scale = EloScale()
    whole = compute_boards(rows, scale, 10, None)
    shares = [compute_boards(rows, scale, 10, None, share, 3) for share in range(3)]
    # Every worker fits boards of its own, and together they fit each board once.
    dealt = [set(share.boards) for share in shares]
    assert all(dealt) and sum(map(len, dealt)) == len(whole.boards) == 4
    merged = merge_boards(shares)
    assert merged.boards == whole.boards
    assert (merged.model_votes, merged.pair_votes) == (whole.model_votes, whole.pair_votes)

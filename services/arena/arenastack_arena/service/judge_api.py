"""Routes of LLM-judge evaluations: the runner's API (judge token) and the public
per-source views (sources, agreement).

A judged battle is acknowledged only after its commit, through the same
group-committing writer as votes, and stored once per battleId: a restarted
runner may resend what it posted before and gets ``{"stored": false}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from arenastack_arena.service.agreement import agreement
from arenastack_arena.service.boards import OVERALL, LeaderboardCache
from arenastack_arena.service.judgments import (
    JudgedBattle,
    agreement_outcomes,
    arena_battles,
    battle_ids,
    export_line,
    export_page,
    insert_judged,
    voted_pair,
)
from arenastack_arena.service.metrics import Metrics
from arenastack_arena.service.protection import bearer_auth
from arenastack_arena.service.schema import (
    EVALUATION_PATTERN,
    MAX_ARENA_BATTLES,
    NAMESPACE_PATTERN,
    OBJECT_NAME_PATTERN,
    JudgedBattleBody,
)
from arenastack_arena.service.settings import Settings
from arenastack_arena.service.sources import HUMAN, VERDICT_SOURCE_PATTERN, is_judge
from arenastack_arena.service.store import Store

EXPORT_PAGE = 500
WRONG_TOKEN = "missing or wrong judge token (Authorization: Bearer ...)"
Source = Annotated[str, Query(pattern=VERDICT_SOURCE_PATTERN)]


def judge_routes(
    settings: Settings, store: Store, boards: LeaderboardCache, metrics: Metrics
) -> APIRouter:
    router = APIRouter()
    # Off without a judge token, whatever the admin token; with one, the admin's works too.
    judge = Depends(
        bearer_auth(
            (settings.judge_token, settings.admin_token) if settings.judge_token else (),
            "judge API disabled: set ARENA_JUDGE_TOKEN",
            WRONG_TOKEN,
        )
    )
    # The export is an admin's tool too: it stays readable with the judge API off.
    reader = Depends(
        bearer_auth(
            (settings.judge_token, settings.admin_token),
            "export disabled: set ARENA_JUDGE_TOKEN or ARENA_ADMIN_TOKEN",
            WRONG_TOKEN.replace("judge token", "judge or admin token"),
        )
    )

    @router.post("/api/judgments", dependencies=[judge])
    async def post_judgment(body: JudgedBattleBody) -> dict[str, bool]:
        if body.arena_battle_id is not None:
            arena_id = body.arena_battle_id
            pair = await store.db.point_read(lambda tx: voted_pair(tx, arena_id))
            if pair is None or set(pair) != {body.model_a, body.model_b}:
                raise HTTPException(
                    422, "arenaBattleId: no human-voted arena battle of modelA and modelB"
                )
        battle = JudgedBattle.create(
            turns=[t.model_dump(by_alias=True) for t in body.turns],
            judgments=[j.model_dump(by_alias=True) for j in body.judgments],
            games=[(g.winner, g.weight) for g in body.games],
            id=body.battle_id,
            evaluation=body.evaluation,
            run=body.run,
            arena_battle_id=body.arena_battle_id,
            source=body.source,
            category=body.category,
            model_a=body.model_a,
            model_b=body.model_b,
            consistent=body.consistent,
        )
        stored = bool(await store.db.write_bulk(insert_judged, battle))
        metrics.judged_battles.labels(str(stored).lower()).inc()
        if stored:
            boards.note_vote()
        return {"stored": stored}

    @router.get("/api/judgments", dependencies=[judge])
    async def stored_judgments(
        evaluation: Annotated[str, Query(pattern=EVALUATION_PATTERN)],
    ) -> dict[str, list[str]]:
        return {"battleIds": await store.db.read(lambda tx: battle_ids(tx, evaluation))}

    @router.get(
        "/api/evaluations/{namespace}/{name}/battles.jsonl",
        dependencies=[reader],
        responses={200: {"content": {"application/x-ndjson": {}}}},
    )
    async def export(
        namespace: Annotated[str, PathParam(pattern=NAMESPACE_PATTERN)],
        name: Annotated[str, PathParam(pattern=OBJECT_NAME_PATTERN)],
    ) -> StreamingResponse:
        evaluation = f"{namespace}/{name}"

        async def lines() -> AsyncIterator[bytes]:
            # Page by page (keyset on tstamp, id): an evaluation may hold far more than fits.
            after: tuple[float, str] | None = None
            while True:
                rows = await store.db.read(
                    lambda tx, after=after: export_page(tx, evaluation, after, EXPORT_PAGE)
                )
                for row in rows:
                    yield (export_line(row) + "\n").encode()
                if len(rows) < EXPORT_PAGE:
                    return
                after = (rows[-1][-1], rows[-1][0])

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @router.get("/api/arena-battles", dependencies=[judge])
    async def people_voted(
        category: Annotated[str, Query(max_length=64)] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_ARENA_BATTLES)] = 100,
    ) -> dict[str, list[dict[str, Any]]]:
        rows = await store.db.read(lambda tx: arena_battles(tx, category or None, limit))
        return {"battles": rows}

    @router.get("/api/sources")
    async def sources() -> dict[str, list[dict[str, Any]]]:
        current = boards.current.sources
        listed = [HUMAN, *sorted(s for s in current if is_judge(s))]
        return {
            "sources": [
                {"source": s, "votes": current.get(s, {}).get(OVERALL, {}).get("votes", 0)}
                for s in listed
            ]
        }

    @router.get("/api/agreement")
    async def source_agreement(
        a: Source,
        b: Source,
        category: Annotated[str, Query(max_length=64)] = "",
    ) -> dict[str, Any]:
        if a == b:
            raise HTTPException(422, "a and b must be two different sources")
        pairs = await store.db.read(lambda tx: agreement_outcomes(tx, a, b, category or None))
        return {"a": a, "b": b, **agreement(pairs)}

    return router

"""The FastAPI application: routes, lifecycle and error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field

from arenastack_arena.ratings import load_leaderbot_json
from arenastack_arena.service.battles import BattleError, BattleService
from arenastack_arena.service.boards import OVERALL, STYLE_SUFFIX, LeaderboardCache
from arenastack_arena.service.db import Database, DatabaseError
from arenastack_arena.service.exchange import VoteImportError, parse_lines, vote_to_line
from arenastack_arena.service.judge_api import judge_routes
from arenastack_arena.service.metrics import LatencyMiddleware, Metrics
from arenastack_arena.service.protection import (
    BodyLimitMiddleware,
    RateLimiter,
    SecurityHeadersMiddleware,
    bearer_auth,
)
from arenastack_arena.service.schema import BATTLE_ID_PATTERN, NAME_PATTERN, Strict, Winner
from arenastack_arena.service.settings import Settings
from arenastack_arena.service.sources import ALL, BOARD_SOURCE_PATTERN, HUMAN
from arenastack_arena.service.store import ModelEntry, Store, vote_from_row

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "web"
BattleId = Annotated[str, PathParam(pattern=BATTLE_ID_PATTERN)]
ModelName = Annotated[str, PathParam(pattern=NAME_PATTERN)]


class BattleRequest(Strict):
    prompt: str = Field(min_length=1, description="The user's message")
    category: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9_-]+$")


class TurnRequest(Strict):
    prompt: str = Field(min_length=1)


class VoteRequest(Strict):
    winner: Winner


class ModelSpec(Strict):
    endpoint: str = Field(
        pattern=r"^https?://[^\s]+$",
        max_length=2000,
        description="Base URL of an OpenAI-compatible API, e.g. http://vllm:8000/v1",
    )
    upstream_model: str | None = Field(
        default=None, max_length=200, description="Model name at the endpoint"
    )
    display_name: str | None = Field(default=None, max_length=200)
    organization: str = Field(default="", max_length=200)
    license: str = Field(default="", max_length=200)
    price_per_mtok: float | None = Field(default=None, ge=0, le=1e6)
    active: bool = True

    def entry(self, name: str) -> ModelEntry:
        return ModelEntry(
            name=name,
            endpoint=self.endpoint,
            upstream_model=self.upstream_model or name,
            display_name=self.display_name or name,
            organization=self.organization,
            license=self.license,
            price_per_mtok=self.price_per_mtok,
            active=self.active,
        )


def load_models_file(path: Path) -> list[ModelEntry]:
    """A YAML or JSON file: {"models": [{"name": ..., "endpoint": ..., ...}, ...]}."""
    data = yaml.safe_load(path.read_text())
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a top-level 'models' list")
    out = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict) or "name" not in item:
            raise ValueError(f"{path}: model {n} needs a name")
        fields = {k: v for k, v in item.items() if k != "name"}
        out.append(ModelSpec(**fields).entry(str(item["name"])))
    return out


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    metrics = Metrics()
    db = Database(settings.database_url)
    db.on_error = lambda op: metrics.db_errors.labels(op).inc()
    db.on_commit = metrics.observe_commit
    store = Store(db)
    seed = load_leaderbot_json(settings.seed_counts_file) if settings.seed_counts_file else None
    boards = LeaderboardCache(store, settings, metrics, seed)
    battles = BattleService(store, settings, metrics, boards)
    battle_limit = RateLimiter(settings.battle_rate_per_minute)
    vote_limit = RateLimiter(settings.vote_rate_per_minute)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db.start()
        if settings.models_file:
            for entry in load_models_file(settings.models_file):
                await store.upsert_model(entry)
        await battles.start()
        refresher = asyncio.create_task(boards.run())
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await battles.close()
            boards.close()
            await asyncio.to_thread(db.close)

    app = FastAPI(
        title="arenastack arena",
        version="0.1.0",
        description="Anonymous pairwise model battles, votes and a Bradley-Terry leaderboard.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.store, app.state.boards, app.state.battles = (
        settings,
        store,
        boards,
        battles,
    )
    app.state.metrics = metrics

    # --- middleware: body limits, security headers, latency metrics ------
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_body_bytes,
        limits={
            "/api/admin/import": settings.max_import_bytes,
            "/api/judgments": settings.max_judgment_bytes,
        },
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(LatencyMiddleware, histogram=metrics.request_latency)

    @app.exception_handler(BattleError)
    async def battle_error(request: Request, err: BattleError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.exception_handler(DatabaseError)
    async def database_error(request: Request, err: DatabaseError) -> JSONResponse:
        return JSONResponse({"detail": "database unavailable, try again"}, status_code=503)

    def client_of(request: Request) -> str:
        if settings.trust_forwarded_for:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded:
                return forwarded.split(",")[0].strip()
        return request.client.host if request.client else "unknown"

    def limited(limiter: RateLimiter, bucket: str) -> Any:
        # async: FastAPI runs a plain ``def`` dependency in a worker thread.
        async def check(request: Request) -> str:
            client = client_of(request)
            if not limiter.allow(client):
                metrics.rate_limited.labels(bucket).inc()
                raise HTTPException(429, f"too many {bucket} requests; slow down")
            return client

        return Depends(check)

    admin = bearer_auth(
        (settings.admin_token,),
        "admin API disabled: set ARENA_ADMIN_TOKEN",
        "missing or wrong admin token (Authorization: Bearer ...)",
    )

    def check_prompt(prompt: str) -> str:
        if len(prompt) > settings.max_prompt_chars:
            raise HTTPException(413, f"prompt longer than {settings.max_prompt_chars} characters")
        if not prompt.strip():
            raise HTTPException(422, "prompt is empty")
        return prompt

    def sse(events: AsyncIterator[tuple[str, dict[str, Any]]]) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            async for name, payload in events:
                yield f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    sse_doc = {200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}}

    # --- pages and operations -------------------------------------------
    @app.get("/", include_in_schema=False)
    async def battle_page() -> FileResponse:
        return FileResponse(STATIC / "battle.html")

    @app.get("/leaderboard", include_in_schema=False)
    async def leaderboard_page() -> FileResponse:
        return FileResponse(STATIC / "leaderboard.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    async def metrics_endpoint() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- battles --------------------------------------------------------
    @app.get("/api/models")
    async def public_models() -> list[dict[str, Any]]:
        return [m.public() for m in await store.models(active_only=True)]

    @app.post("/api/battles", responses=sse_doc)
    async def start_battle(
        req: BattleRequest, client: str = limited(battle_limit, "battle")
    ) -> StreamingResponse:
        state = await battles.create(check_prompt(req.prompt), req.category)
        return sse(battles.stream_turn(state))

    @app.post("/api/battles/{battle_id}/turns", responses=sse_doc)
    async def next_turn(
        battle_id: BattleId, req: TurnRequest, client: str = limited(battle_limit, "battle")
    ) -> StreamingResponse:
        state = await battles.add_turn(battle_id, check_prompt(req.prompt))
        return sse(battles.stream_turn(state))

    @app.post("/api/battles/{battle_id}/vote")
    async def vote(
        battle_id: BattleId, req: VoteRequest, client: str = limited(vote_limit, "vote")
    ) -> dict[str, Any]:
        return await battles.vote(battle_id, req.winner, client)

    @app.get("/api/battles/{battle_id}")
    async def battle(battle_id: BattleId) -> dict[str, Any]:
        state = await battles.state(battle_id)
        out: dict[str, Any] = {
            "battle_id": state.id,
            "category": state.category,
            "voted": state.voted,
            "streaming": state.streaming,
            "failed": state.failed,
            "turns": [
                {"prompt": p, "answer_a": a[0], "answer_b": a[1]}
                for p, a in zip(state.prompts, state.answers, strict=False)
            ],
        }
        if state.voted:
            out["model_a"], out["model_b"] = state.model_a, state.model_b
        return out

    # --- leaderboard ----------------------------------------------------
    @app.get("/api/leaderboard")
    async def leaderboard(
        category: Annotated[str, Query(max_length=64)] = OVERALL,
        style_control: bool = False,
        source: Annotated[str, Query(pattern=BOARD_SOURCE_PATTERN)] = HUMAN,
    ) -> dict[str, Any]:
        current = boards.current
        # human and all always have a board (empty before any vote); a judge once it judged.
        known = current.sources.get(source)
        if known is None and source not in (HUMAN, ALL):
            raise HTTPException(404, f"no leaderboard for source {source!r}")
        known = known or {}
        key = category + (STYLE_SUFFIX if style_control else "")
        board = known.get(key)
        if board is None:
            if category != OVERALL and category not in known:
                raise HTTPException(404, f"no leaderboard for category {category!r}")
            board = {"rows": [], "preliminary": [], "votes": 0, "method": "none"}
        return {
            "source": source,
            "category": category,
            "style_control": style_control,
            "refreshed_at": current.refreshed_at,
            "categories": sorted(k for k in known if ":" not in k),
            "min_battles": settings.min_battles,
            **board,
        }

    # --- admin ------------------------------------------------------------
    @app.get("/api/admin/models", dependencies=[Depends(admin)])
    async def admin_models() -> list[dict[str, Any]]:
        return [m.__dict__ for m in await store.models()]

    @app.put("/api/admin/models/{name}", dependencies=[Depends(admin)])
    async def put_model(name: ModelName, spec: ModelSpec) -> dict[str, Any]:
        entry = spec.entry(name)
        await store.upsert_model(entry)
        battles.registry_changed()
        return entry.__dict__

    @app.delete("/api/admin/models/{name}", dependencies=[Depends(admin)])
    async def deactivate_model(name: ModelName) -> dict[str, Any]:
        if not await store.set_active(name, False):
            raise HTTPException(404, f"model {name!r} not registered")
        battles.registry_changed()
        return {"name": name, "active": False}

    @app.get(
        "/api/admin/export",
        dependencies=[Depends(admin)],
        responses={200: {"content": {"application/x-ndjson": {}}}},
    )
    async def export() -> StreamingResponse:
        rows = await store.db.read(store.export_rows)

        async def lines() -> AsyncIterator[bytes]:
            for row in rows:
                yield (vote_to_line(vote_from_row(row)) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.post("/api/admin/import", dependencies=[Depends(admin)])
    async def import_votes(request: Request) -> dict[str, int]:
        raw = await request.body()
        try:
            votes = parse_lines(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise HTTPException(400, "import body must be UTF-8 JSON lines") from None
        except VoteImportError as err:
            raise HTTPException(400, str(err)) from None
        added = await store.import_votes(votes)
        if added:
            boards.note_vote()
        return {"received": len(votes), "added": added, "duplicates": len(votes) - added}

    app.include_router(judge_routes(settings, store, boards, metrics))
    return app

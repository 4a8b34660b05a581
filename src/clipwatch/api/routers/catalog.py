"""GET|POST /channels, GET|DELETE /channels/{login}, GET /channels/{login}/streams, GET /games."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.api.auth import Admin
from clipwatch.api.cached import cached_answer
from clipwatch.api.deps import Session, State, reads_only
from clipwatch.api.errors import problem_responses
from clipwatch.api.params import Cursor, Key
from clipwatch.api.schemas import (
    ChannelPage,
    ChannelRead,
    ChannelsAdd,
    ChannelsAdded,
    ChannelStatsRead,
    ClipRead,
    GamePage,
    GameRead,
    StreamPage,
    StreamRead,
)
from clipwatch.clips.cursor import decode_cursor, encode_cursor
from clipwatch.clips.stats import Period, hot_stats, stats_deps
from clipwatch.db.models import Channel
from clipwatch.db.repositories import catalog, clip_search, live_state, sync_state
from clipwatch.errors import BadRequest, NotFound, UpstreamUnavailable
from clipwatch.twitch import sync

router = APIRouter(tags=["catalog"])
# Channel answers show sync progress and live state too (twitch/live.py bumps `live`).
CHANNEL_DEPS = {"catalog", "sync", "live"}
Limit = Annotated[int, Query(ge=1, le=100)]


def _after(key: bytes, cursor: str | None, listing: str) -> str | None:
    if cursor is None:
        return None
    after = decode_cursor(key, cursor, query=listing).get("k")
    if not isinstance(after, str):
        raise BadRequest("cursor is not valid for this query")
    return after


async def _channel(session: AsyncSession, login: str) -> Channel:
    channel = await catalog.get_channel(session, login)
    if channel is None:
        raise NotFound(f"no channel {login}")
    return channel


def _page_cursor(key: bytes, listing: str, ids: list[str], limit: int) -> str | None:
    """The cursor after a page fetched with limit + 1 rows, or None on the last page."""
    return encode_cursor(key, {"q": listing, "k": ids[limit - 1]}) if len(ids) > limit else None


@router.get(
    "/channels",
    response_model=ChannelPage,
    responses=problem_responses({422: "Invalid input"}),
    summary="Channels we know, tracked or named by clips",
)
@reads_only
async def list_channels(
    request: Request,
    state: State,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor | None = None,
) -> Response:
    key = state.settings.signing_key

    async def compute() -> tuple[ChannelPage, set[str]]:
        rows = await catalog.list_channels(
            session, limit=limit + 1, after=_after(key, cursor, "channels")
        )
        tracked = [c.id for c in rows[:limit] if c.tracked]
        states = await sync_state.states_of(session, tracked)
        live = await live_state.live_of(session, tracked)
        return ChannelPage(
            data=[
                ChannelRead.from_channel(c, states.get(c.id), live.get(c.id)) for c in rows[:limit]
            ],
            next_cursor=_page_cursor(key, "channels", [c.id for c in rows], limit),
        ), CHANNEL_DEPS

    return await cached_answer(request, state, compute)


@router.get(
    "/channels/{login}",
    response_model=ChannelRead,
    responses=problem_responses({404: "No such channel", 422: "Invalid input"}),
    summary="One channel by login or id",
)
@reads_only
async def get_channel(request: Request, state: State, session: Session, login: Key) -> Response:
    async def compute() -> tuple[ChannelRead, set[str]]:
        channel = await _channel(session, login)
        tracked = [channel.id] if channel.tracked else []
        states = await sync_state.states_of(session, tracked)
        live = await live_state.live_of(session, tracked)
        answer = ChannelRead.from_channel(channel, states.get(channel.id), live.get(channel.id))
        return answer, CHANNEL_DEPS

    return await cached_answer(request, state, compute)


def _stream_after(key: bytes, cursor: str | None, listing: str) -> tuple[datetime, int] | None:
    if cursor is None:
        return None
    after = decode_cursor(key, cursor, query=listing).get("k")
    try:
        started, stream_id = after  # type: ignore[misc]
        return datetime.fromisoformat(started), int(stream_id)
    except (TypeError, ValueError):
        raise BadRequest("cursor is not valid for this query") from None


@router.get(
    "/channels/{login}/streams",
    response_model=StreamPage,
    responses=problem_responses({404: "No such channel", 422: "Invalid input"}),
    summary="A channel's streams, newest first (history kept from Get Streams and EventSub)",
    description=(
        "Keyset paged: pass `next_cursor` as `cursor` for the next page. A running stream "
        "has `ended_at` null. Streams are known from when the channel was tracked on."
    ),
)
@reads_only
async def list_channel_streams(
    request: Request,
    state: State,
    session: Session,
    login: Key,
    limit: Limit = 20,
    cursor: Cursor | None = None,
) -> Response:
    key = state.settings.signing_key

    async def compute() -> tuple[StreamPage, set[str]]:
        channel = await _channel(session, login)
        listing = f"streams:{channel.id}"
        rows = await live_state.list_streams(
            session, channel.id, limit=limit + 1, before=_stream_after(key, cursor, listing)
        )
        page = rows[:limit]
        next_cursor = (
            encode_cursor(key, {"q": listing, "k": [page[-1].started_at.isoformat(), page[-1].id]})
            if len(rows) > limit
            else None
        )
        deps = {"catalog", "live", f"ch:{channel.id}"}
        return StreamPage(
            data=[StreamRead.from_stream(s) for s in page], next_cursor=next_cursor
        ), deps

    return await cached_answer(request, state, compute)


@router.get(
    "/channels/{login}/stats",
    response_model=ChannelStatsRead,
    responses=problem_responses({404: "No such channel", 422: "Invalid input"}),
    summary="A channel's clips per day, top clips, top creators and top games over a period",
    description=(
        "Kept hot: the worker recomputes what each sync changed, so this answers from the "
        "cache. `since` is null for `all`."
    ),
)
@reads_only
async def get_channel_stats(
    request: Request, state: State, session: Session, login: Key, period: Period = "week"
) -> Response:
    async def compute() -> tuple[ChannelStatsRead, set[str]]:
        channel = await _channel(session, login)
        stats = await hot_stats(state.cache, session, channel.id, period)
        top = await clip_search.clips_by_ids(session, stats["top_clip_ids"])
        names = await catalog.game_names(session, (c.game_id for c in top if c.game_id))
        answer = ChannelStatsRead.model_validate(
            {
                **stats,
                "login": channel.login,
                "display_name": channel.display_name,
                "top_clips": [ClipRead.from_clip(c, names.get(c.game_id or "")) for c in top],
            }
        )
        return answer, stats_deps(channel.id)

    return await cached_answer(request, state, compute)


@router.post(
    "/channels",
    response_model=ChannelsAdded,
    status_code=201,
    responses=problem_responses(
        {422: "Invalid input", 503: "Twitch is not configured or does not answer"}
    ),
    summary="Track channels by login (admin): resolved through Twitch, synced from then on",
)
async def add_channels(
    state: State, session: Session, _admin: Admin, body: ChannelsAdd
) -> ChannelsAdded:
    if state.twitch is None:
        raise UpstreamUnavailable("Twitch is not configured (CLIPWATCH_TWITCH_CLIENT_ID/SECRET)")
    wanted = [login.lower() for login in body.logins]
    added = await sync.track_users(session, await state.twitch.get_users(wanted))
    return ChannelsAdded(added=added, unknown=[login for login in wanted if login not in added])


@router.delete(
    "/channels/{login}",
    status_code=204,
    responses=problem_responses({404: "No such channel", 422: "Invalid input"}),
    summary="Stop tracking a channel (admin); its clips stay",
)
async def remove_channel(session: Session, _admin: Admin, login: Key) -> Response:
    if await catalog.untrack_channel(session, login) is None:
        raise NotFound(f"no channel {login}")
    return Response(status_code=204)


@router.get(
    "/games",
    response_model=GamePage,
    responses=problem_responses({422: "Invalid input"}),
    summary="Games (Twitch categories) clips were made in",
)
@reads_only
async def list_games(
    request: Request,
    state: State,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor | None = None,
) -> Response:
    key = state.settings.signing_key

    async def compute() -> tuple[GamePage, set[str]]:
        rows = await catalog.list_games(
            session, limit=limit + 1, after=_after(key, cursor, "games")
        )
        return GamePage(
            data=[GameRead.from_game(g) for g in rows[:limit]],
            next_cursor=_page_cursor(key, "games", [g.id for g in rows], limit),
        ), {"catalog"}

    return await cached_answer(request, state, compute)

"""The channel page, /channels/{login}: live state, clips per day (an SVG drawn on the
server), top clips and creators for a period, sync state, recent streams. It reads what the
API reads, through the same cache entries where the API has them; docs/web.md."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from clipwatch.api.auth import Caller
from clipwatch.api.deps import Session, State, reads_only
from clipwatch.api.params import Key
from clipwatch.api.routers.catalog import CHANNEL_DEPS
from clipwatch.api.routers.pages import PAGE_DEPENDENCIES, PAGE_TAG, _cached_read, _common, _html
from clipwatch.api.schemas import ChannelRead, ChannelStatsRead, ClipRead, StreamPage, StreamRead
from clipwatch.clips.stats import Period, hot_stats, stats_deps
from clipwatch.db.models import Channel
from clipwatch.db.repositories import catalog, channel_stats, clip_search, live_state, sync_state
from clipwatch.errors import NotFound
from clipwatch.web.charts import clips_per_day_svg
from clipwatch.web.render import render

# Counted against the caller's limit like every page (pages.page_limit).
router = APIRouter(include_in_schema=False, tags=[PAGE_TAG], dependencies=PAGE_DEPENDENCIES)
PagePeriod = Literal["7d", "30d", "90d", "365d"]
DAYS: dict[PagePeriod, int] = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
# The API's kept-hot periods: the page shares their cache entries with GET .../stats.
HOT: dict[PagePeriod, Period] = {"7d": "week", "30d": "month"}
STREAMS_SHOWN = 10


async def _channel(session: Session, login: str) -> Channel:
    channel = await catalog.get_channel(session, login)
    if channel is None or not channel.tracked:
        raise NotFound(f"no tracked channel {login}")
    return channel


def _days(stats: ChannelStatsRead, period: PagePeriod, today: date) -> list[tuple[date, int]]:
    """Every day from the period's first (partial) day to today, oldest first; a day without
    clips is 0. So the bars add up to the period's clip count."""
    counts: dict[date, int] = {}
    for item in stats.per_day:
        try:
            counts[date.fromisoformat(item.day[:10])] = item.clips
        except ValueError:
            continue  # a day the database wrote oddly costs its bar only
    first = stats.since.date() if stats.since else today - timedelta(days=DAYS[period])
    span = max(1, (today - first).days + 1)
    return [
        (first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(span)
    ]


@router.get("/channels/{login}", response_class=HTMLResponse)
@reads_only
async def channel_page(
    request: Request,
    state: State,
    session: Session,
    principal: Caller,
    login: Key,
    period: Annotated[PagePeriod, Query()] = "30d",
) -> Response:
    async def read_channel() -> tuple[ChannelRead, set[str]]:
        channel = await _channel(session, login)
        states = await sync_state.states_of(session, [channel.id])
        live = await live_state.live_of(session, [channel.id])
        return ChannelRead.from_channel(
            channel, states.get(channel.id), live.get(channel.id)
        ), CHANNEL_DEPS

    body = await _cached_read(state, f"/api/v1/channels/{login}", [], read_channel)
    channel = ChannelRead.model_validate_json(body)
    if not channel.tracked:
        raise NotFound(f"no tracked channel {login}")

    async def read_stats() -> tuple[ChannelStatsRead, set[str]]:
        row = await _channel(session, login)
        if period in HOT:
            stats = await hot_stats(state.cache, session, row.id, HOT[period])
        else:
            now = datetime.now(UTC).replace(microsecond=0)
            since = now - timedelta(days=DAYS[period])
            data = await channel_stats.channel_stats(session, row.id, since, days=DAYS[period] + 1)
            stats = {
                "channel_id": row.id,
                "period": period,
                "since": since.isoformat(),
                "computed_at": now.isoformat(),
                **data,
            }
        top = await clip_search.clips_by_ids(session, stats["top_clip_ids"])
        names = await catalog.game_names(session, (c.game_id for c in top if c.game_id))
        answer = ChannelStatsRead.model_validate(
            {
                **stats,
                "login": row.login,
                "display_name": row.display_name,
                "top_clips": [ClipRead.from_clip(c, names.get(c.game_id or "")) for c in top],
            }
        )
        return answer, stats_deps(row.id)

    params: list[tuple[str, str]]
    if period in HOT:
        stats_path, params = f"/api/v1/channels/{login}/stats", [("period", HOT[period])]
    else:
        stats_path, params = f"/web/channels/{login}/stats", [("period", period)]
    stats = ChannelStatsRead.model_validate_json(
        await _cached_read(state, stats_path, params, read_stats)
    )

    async def read_streams() -> tuple[StreamPage, set[str]]:
        row = await _channel(session, login)
        rows = await live_state.list_streams(session, row.id, limit=STREAMS_SHOWN, before=None)
        deps = {"catalog", "live", f"ch:{row.id}"}
        return StreamPage(data=[StreamRead.from_stream(s) for s in rows], next_cursor=None), deps

    streams = StreamPage.model_validate_json(
        await _cached_read(
            state,
            f"/web/channels/{login}/streams",
            [("limit", str(STREAMS_SHOWN))],
            read_streams,
        )
    )

    # Sync errors are for admins only, read fresh (never from a shared cache entry).
    problem: dict[str, Any] | None = None
    if principal is not None and principal.is_admin:
        sync = (await sync_state.states_of(session, [channel.id])).get(channel.id)
        if sync is not None and sync.last_error:
            problem = {
                "error": sync.last_error,
                "at": sync.last_error_at,
                "failures": sync.consecutive_failures,
                "next_try_at": sync.next_try_at,
            }

    name = channel.display_name or channel.login or channel.id
    chart = clips_per_day_svg(
        _days(stats, period, datetime.now(UTC).date()),
        title=f"Clips per day on {name}, last {DAYS[period]} days",
    )
    return _html(
        render(
            "channel.html",
            **_common(state, request),
            channel=channel,
            name=name,
            period=period,
            periods=list(DAYS),
            stats=stats,
            chart=Markup(chart),  # built escaped by clips_per_day_svg
            streams=streams.data,
            problem=problem,
            is_admin=principal is not None and principal.is_admin,
        )
    )

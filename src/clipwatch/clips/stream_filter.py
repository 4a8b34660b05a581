"""Which clips a stream client asked for: the /clips filters, tested on one clip in Python.

The stream tests each new clip against each client's filter as it fans out, and the
Last-Event-ID replay uses the same test on the rows it reads, so live and replayed events
agree. Names are resolved to ids when the client connects (as /clips does per request);
ids are matched as given, so a channel or game first seen later still matches by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.clips.search import ClipSearch
from clipwatch.db.models import Clip
from clipwatch.db.repositories import catalog
from clipwatch.db.search import NO_TERMS, Terms, parse_terms, row_matches


@dataclass(frozen=True)
class StreamFilter:
    terms: Terms = NO_TERMS
    unmatchable: bool = False  # `q` with no words: nothing matches, as on /clips
    channel_ids: frozenset[str] | None = None
    game_ids: frozenset[str] | None = None
    game_names: frozenset[str] = frozenset()  # lower case
    creators: frozenset[str] | None = None  # ids and lower-case names
    languages: frozenset[str] | None = None
    # A feed: clips of any followed channel or any followed game.
    follow_channels: frozenset[str] | None = None
    follow_games: frozenset[str] = frozenset()
    min_views: int | None = None
    max_views: int | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    featured: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_deleted: bool = False

    def matches(self, clip: Clip, game_name: str | None) -> bool:
        """Does this clip, as stored now, pass every filter (GET /clips's meaning)?"""
        if self.unmatchable:
            return False
        if clip.deleted_at is not None and not self.include_deleted:
            return False
        if self.channel_ids is not None and clip.broadcaster_id not in self.channel_ids:
            return False
        if self.game_ids is not None and not (
            clip.game_id in self.game_ids or (game_name or "").lower() in self.game_names
        ):
            return False
        if self.creators is not None and not (
            clip.creator_id in self.creators or clip.creator_name.lower() in self.creators
        ):
            return False
        if self.languages is not None and clip.language not in self.languages:
            return False
        if self.follow_channels is not None and not (
            clip.broadcaster_id in self.follow_channels or clip.game_id in self.follow_games
        ):
            return False
        return self._in_ranges(clip) and (
            not self.terms
            or bool(
                row_matches(self.terms.spec(), clip.title, clip.creator_name, clip.broadcaster_name)
            )
        )

    def _in_ranges(self, clip: Clip) -> bool:
        checks = (
            self.min_views is None or clip.view_count >= self.min_views,
            self.max_views is None or clip.view_count <= self.max_views,
            self.min_duration is None or clip.duration >= self.min_duration,
            self.max_duration is None or clip.duration <= self.max_duration,
            self.featured is None or clip.is_featured is self.featured,
            self.created_after is None or clip.created_at >= self.created_after,
            self.created_before is None or clip.created_at < self.created_before,
        )
        return all(checks)

    def wants_channel(self, channel_id: str) -> bool:
        """`channel.live` events: only the channel filters apply (a channel has no views)."""
        if self.unmatchable:
            return False
        if self.channel_ids is not None and channel_id not in self.channel_ids:
            return False
        return not (
            self.follow_channels is not None
            and channel_id not in self.follow_channels
            and not self.follow_games
        )


async def resolve_filter(session: AsyncSession, search: ClipSearch) -> StreamFilter:
    """A validated search (its sort, cursor and limit unused) as a filter: names to ids."""
    terms = parse_terms(search.q) if search.q else NO_TERMS
    channel_ids = game_ids = follow_channels = None
    follow_games: frozenset[str] = frozenset()
    if search.broadcaster:
        resolved = await catalog.resolve_channel_ids(session, search.broadcaster)
        channel_ids = frozenset(resolved) | frozenset(search.broadcaster)
    if search.game:
        game_ids = frozenset(await catalog.resolve_game_ids(session, search.game)) | frozenset(
            search.game
        )
    if search.follow_channels or search.follow_games:
        follow_channels = frozenset(
            await catalog.resolve_channel_ids(session, search.follow_channels)
        )
        follow_games = frozenset(await catalog.resolve_game_ids(session, search.follow_games))
    return StreamFilter(
        terms=terms,
        unmatchable=bool(search.q) and not terms,
        channel_ids=channel_ids,
        game_ids=game_ids,
        game_names=frozenset(g.lower() for g in search.game),
        creators=(
            frozenset(c.lower() for c in search.creators) | frozenset(search.creators)
            if search.creators
            else None
        ),
        languages=frozenset(search.languages) if search.languages else None,
        follow_channels=follow_channels,
        follow_games=follow_games,
        min_views=search.min_views,
        max_views=search.max_views,
        min_duration=search.min_duration,
        max_duration=search.max_duration,
        featured=search.featured,
        created_after=search.created_after,
        created_before=search.created_before,
        include_deleted=search.include_deleted,
    )

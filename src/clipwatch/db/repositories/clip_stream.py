"""What the clip stream (clips/stream.py) reads: clips by `seq`, changed clips of a few
channels, live-state changes, and PostgreSQL's view of the transactions still running.

Why the snapshot: `seq` comes from a sequence, so on PostgreSQL a transaction can take seq 50,
another seq 51 and commit first. A reader that moved past 51 would never see 50. The stream
reads clips and `pg_current_snapshot()` in one REPEATABLE READ transaction (one snapshot), and
releases what it read only once every transaction running at that snapshot has ended
(docs/stream.md). SQLite has one writer at a time: seqs commit in order there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from clipwatch.db.models import Channel, ChannelLive, Clip
from clipwatch.db.repositories import moderation
from clipwatch.db.repositories._chunks import in_chunks
from clipwatch.db.repositories._dialect import dialect_name


@dataclass(frozen=True)
class Snapshot:
    """PostgreSQL's `pg_snapshot`: transactions below `xmin` have ended, those in `running`
    had not, those at or above `xmax` had not begun."""

    xmin: int
    xmax: int
    running: frozenset[int]

    def ended(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.running)


def parse_snapshot(value: str) -> Snapshot:
    """`xmin:xmax:xip,xip,...` (the text form of pg_snapshot)."""
    xmin, xmax, running = value.split(":", 2)
    return Snapshot(int(xmin), int(xmax), frozenset(int(x) for x in running.split(",") if x))


# Transactions with an id, and whether they run in this database: read before the snapshot
# (below), on a connection of its own.
RUNNING_XIDS = text(
    "SELECT backend_xid::text, datname = current_database() FROM pg_stat_activity"
    " WHERE backend_xid IS NOT NULL"
)


async def begin_consistent_read(session: AsyncSession) -> Snapshot | None:
    """Make the session's reads share one snapshot; that snapshot on PostgreSQL (None on
    SQLite, where a read transaction sees one state anyway).

    `pg_current_snapshot()` lists only running transactions below its `xmax`, and `xmax` is
    one past the newest *completed* transaction: a writer that took the newest id and has
    not committed is above it, running, and not listed. So the ids of every transaction
    running just before the snapshot are read first (pg_stat_activity) and this database's
    ones at or above `xmax` join `running`.

    Transaction ids are the cluster's, not the database's: the snapshot also lists the
    transactions of other databases on the same server, which can never write a clip here.
    Those seen running in another database are left out of `running`, or one long
    transaction elsewhere (another application, a report) would hold the stream back."""
    if dialect_name(session) != "postgresql":
        return None
    bind = session.bind
    assert isinstance(bind, AsyncEngine)
    async with bind.connect() as conn:
        before = [(int(xid), bool(here)) for xid, here in (await conn.execute(RUNNING_XIDS))]
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    value = (await session.execute(text("SELECT pg_current_snapshot()::text"))).scalar_one()
    snapshot = parse_snapshot(str(value))
    ours = {_full_xid(xid, snapshot.xmax) for xid, here in before if here} - {0}
    elsewhere = {_full_xid(xid, snapshot.xmax) for xid, here in before if not here}
    above = {xid for xid in ours if xid >= snapshot.xmax}
    if not above and not (snapshot.running & elsewhere):
        return snapshot
    return Snapshot(snapshot.xmin, snapshot.xmax, (snapshot.running - elsewhere) | above)


def _full_xid(xid: int, near: int) -> int:
    """A 32-bit transaction id as the 64-bit one (epoch included) closest to `near`."""
    full = (near & ~0xFFFFFFFF) | (xid & 0xFFFFFFFF)
    if full > near + 2**31:
        full -= 2**32
    elif full < near - 2**31:
        full += 2**32
    return max(full, 0)


async def newest_seq(session: AsyncSession) -> int:
    value = (await session.execute(select(Clip.seq).order_by(Clip.seq.desc()).limit(1))).first()
    return int(value[0]) if value else 0


async def clips_after(
    session: AsyncSession, after: int, *, limit: int, upto: int | None = None
) -> list[Clip]:
    """Clips with `after < seq <= upto`, in seq order (the primary key's); not the hidden."""
    stmt = (
        select(Clip)
        .where(Clip.seq > after, moderation.visible(Clip.seq))
        .order_by(Clip.seq)
        .limit(limit)
    )
    if upto is not None:
        stmt = stmt.where(Clip.seq <= upto)
    return list((await session.scalars(stmt)).all())


async def clips_changed(
    session: AsyncSession, channel_ids: Sequence[str] | None, *, since: datetime, upto: int
) -> list[Clip]:
    """Clips (seq <= upto) changed after they were first stored, at or after `since`: of
    these channels, or of every channel when `channel_ids` is None (a full scan)."""
    stmt = select(Clip).where(
        Clip.updated_at >= since, Clip.updated_at > Clip.first_seen_at, Clip.seq <= upto
    )
    if channel_ids is None:
        return list((await session.scalars(stmt.order_by(Clip.seq))).all())
    found: list[Clip] = []
    for chunk in in_chunks(channel_ids):
        found += (await session.scalars(stmt.where(Clip.broadcaster_id.in_(chunk)))).all()
    return sorted(found, key=lambda clip: clip.seq)


@dataclass(frozen=True)
class LiveChange:
    live: ChannelLive
    login: str | None
    display_name: str | None


async def live_changes(session: AsyncSession, *, since: datetime) -> list[LiveChange]:
    """Channels whose live state changed (went online or offline) at or after `since`."""
    stmt = (
        select(ChannelLive, Channel.login, Channel.display_name)
        .join(Channel, Channel.id == ChannelLive.channel_id, isouter=True)
        .where(ChannelLive.changed_at >= since)
        .order_by(ChannelLive.changed_at, ChannelLive.channel_id)
    )
    return [LiveChange(*row) for row in (await session.execute(stmt)).all()]

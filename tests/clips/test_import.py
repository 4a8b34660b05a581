"""The import path: parsing, bad lines, upserts, and the index following the data."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.clips.importer import ImportReport, import_clips, parse_lines
from clipwatch.db.models import Channel, Clip, Game
from clipwatch.twitch.helix import TITLE_MAX
from tests.factories import helix_clip, store_clips


def test_bad_lines_are_reported_by_number_and_good_ones_kept() -> None:
    good = orjson.dumps(helix_clip())
    no_tz = orjson.dumps(helix_clip(created_at="2025-01-01 10:00:00"))  # read as UTC
    negative = orjson.dumps(helix_clip(view_count=-3))  # read as 0
    no_id = orjson.dumps({k: v for k, v in helix_clip().items() if k != "id"})
    no_time = orjson.dumps(helix_clip(created_at="yesterday"))
    lines = [good, b"{not json", b"", no_tz, good, negative, no_id, b"   ", no_time]
    report = ImportReport()
    rows = [row for batch in parse_lines(lines, report) for row in batch]
    assert len(rows) == 4
    assert [row["view_count"] for row in rows if row["view_count"] <= 0] == [0]
    assert report.bad_lines == 3
    assert [number for number, _ in report.errors] == [2, 7, 9]
    assert report.errors[1][1].startswith("id:")
    assert "created_at" in report.errors[2][1]


def test_tolerant_parsing_of_helix_quirks() -> None:
    clip = helix_clip(video_id="", game_id="", vod_offset=None, language=None, surprise="x")
    clip["duration"] = None
    (row,) = next(parse_lines([orjson.dumps(clip)], ImportReport()))
    assert row["video_id"] is None
    assert row["game_id"] is None
    assert row["language"] == ""
    assert row["duration"] == 0
    assert "surprise" not in row


async def test_hostile_text_is_cleaned_and_cut_before_it_is_stored(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """NUL (PostgreSQL refuses it; SQLite would keep it) and other controls are dropped, a
    100,000-character title is cut, and a lone surrogate escape still reads."""
    hostile = helix_clip(
        id="Hostile", title="a\x00b\x07c " + "t" * 100_000, creator_name="cre\x00ator\x1b"
    )
    surrogate = orjson.dumps(helix_clip(id="Surrogate")).replace(b"test clip", b"x\\ud800y")
    report = await import_clips(sessionmaker, [orjson.dumps(hostile), surrogate])
    assert (report.inserted, report.bad_lines) == (2, 0)
    async with sessionmaker() as session:
        rows = {c.id: c for c in (await session.scalars(select(Clip))).all()}
    assert rows["Hostile"].title == ("abc " + "t" * 100_000)[:TITLE_MAX]
    assert rows["Hostile"].creator_name == "creator"
    assert rows["Surrogate"].title.startswith("xy ")


async def test_upsert_counts_and_leaves_unchanged_rows_alone(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    first = helix_clip(id="Same", title="first title", view_count=1)
    other = helix_clip(id="Other")
    report = await store_clips(sessionmaker, [first, other])
    assert (report.inserted, report.updated, report.unchanged) == (2, 0, 0)
    async with sessionmaker() as session:
        before = (await session.scalars(select(Clip).where(Clip.id == "Same"))).one()

    again = await store_clips(sessionmaker, [first, other])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)

    changed = await store_clips(sessionmaker, [{**first, "view_count": 99}, other])
    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 1, 1)
    async with sessionmaker() as session:
        after = (await session.scalars(select(Clip).where(Clip.id == "Same"))).one()
        count = (await session.execute(text("SELECT count(*) FROM clip"))).scalar_one()
    assert count == 2
    assert after.view_count == 99
    assert after.seq == before.seq
    assert after.first_seen_at == before.first_seen_at
    assert after.updated_at > before.updated_at


async def test_repeated_id_in_one_batch_keeps_the_last(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    report = await store_clips(
        sessionmaker, [helix_clip(id="Twice", view_count=1), helix_clip(id="Twice", view_count=7)]
    )
    assert report.inserted == 1
    async with sessionmaker() as session:
        clip = (await session.scalars(select(Clip).where(Clip.id == "Twice"))).one()
    assert clip.view_count == 7


async def test_channels_and_games_are_created(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await store_clips(
        sessionmaker,
        [
            helix_clip(broadcaster_id="1", broadcaster_name="CamelCase_99", game_id="42"),
            helix_clip(broadcaster_id="2", broadcaster_name="한국어", game_id=""),
        ],
    )
    async with sessionmaker() as session:
        channels = {c.id: c for c in (await session.scalars(select(Channel))).all()}
        games = (await session.scalars(select(Game.id))).all()
    assert channels["1"].login == "camelcase_99"
    assert channels["1"].display_name == "CamelCase_99"
    assert not channels["1"].tracked
    assert channels["2"].login is None
    assert games == ["42"]


async def test_search_index_follows_title_changes(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from clipwatch.clips.search import ClipSearch, search_clips

    async def found(q: str) -> list[str]:
        async with sessionmaker() as session:
            page = await search_clips(session, ClipSearch(q=q), key=b"k", relevance_candidates=100)
        return [c.id for c in page.clips]

    await store_clips(sessionmaker, [helix_clip(id="Renamed", title="oldword here")])
    assert await found("oldword") == ["Renamed"]
    await store_clips(sessionmaker, [helix_clip(id="Renamed", title="newword here")])
    assert await found("oldword") == []
    assert await found("newword") == ["Renamed"]
    await store_clips(sessionmaker, [helix_clip(id="Renamed", title="newword here", view_count=3)])
    assert await found("newword") == ["Renamed"]


@pytest.mark.parametrize("batch", [1, 3])
async def test_import_reports_progress_per_batch(
    sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr("clipwatch.clips.importer.BATCH_SIZE", batch)
    seen: list[int] = []
    report = await import_clips(
        sessionmaker,
        [orjson.dumps(helix_clip()) for _ in range(5)],
        on_progress=lambda r: seen.append(r.stored),
    )
    assert report.inserted == 5
    assert seen[-1] == 5
    assert seen == sorted(seen)
    assert len(seen) >= 5 // batch


async def test_batches_stored_on_their_own_each_keep_their_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The sync stores windows one transaction each, the clip write being the first
    statement once channels and games are known: every batch must still land."""
    from clipwatch.clips.importer import KnownReferences, parse_line, store_batch
    from clipwatch.db.engine import session_scope

    known = KnownReferences()
    for batch in range(3):
        rows = [parse_line(orjson.dumps(helix_clip(id=f"B{batch}-{i}"))) for i in range(5)]
        async with session_scope(sessionmaker) as session:
            result = await store_batch(session, rows, known=known)
        assert result.inserted == 5
    async with session_scope(sessionmaker) as session:
        count = (await session.execute(text("SELECT count(*) FROM clip"))).scalar_one()
    assert count == 15


async def test_a_clip_repeated_across_batches_ends_as_its_last_line_says(
    sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches are stored two at a time on PostgreSQL: repeated clips must still end as the
    file's last line for them says, whatever order the batches commit in."""
    import clipwatch.clips.importer as importer

    monkeypatch.setattr(importer, "BATCH_SIZE", 7)
    first = [helix_clip(id=f"R{i:03d}", view_count=1, title=f"first {i}") for i in range(60)]
    again = [
        helix_clip(id=f"R{i:03d}", view_count=2, title=f"second {i}") for i in reversed(range(60))
    ]
    others = [helix_clip(id=f"S{i:03d}") for i in range(40)]
    report = await store_clips(sessionmaker, first + others + again)
    assert report.inserted == 100
    assert report.updated == 60
    async with sessionmaker() as session:
        rows = (await session.execute(select(Clip.id, Clip.view_count, Clip.title))).all()
    repeated = {r.id: (r.view_count, r.title) for r in rows if r.id.startswith("R")}
    assert repeated == {f"R{i:03d}": (2, f"second {i}") for i in range(60)}

"""GET /api/v1/clips/export (issue 17), on both databases: every clip the same search walks,
as CSV or JSON Lines, across the export's pages and rate-limit blocks; bounds for anonymous
callers; bad input is a 4xx before anything is streamed."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.cache.manager import CacheManager
from clipwatch.clips.export import BLOCK, COLUMNS, PAGE, _csv_safe
from clipwatch.config import Settings
from tests.api.test_accounts import PROBLEM, bearer, make_user
from tests.conftest import app_client
from tests.factories import helix_clip, store_clips

EXPORT = "/api/v1/clips/export"
MANY = BLOCK + PAGE + 7  # more than a block, over three pages


async def walk(client: httpx.AsyncClient, token: str, **params: Any) -> list[str]:
    """The ids `/clips` gives over its cursors, in order."""
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        query = {"limit": 100, **params}
        if cursor:
            query["cursor"] = cursor
        answer = await client.get("/api/v1/clips", params=query, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        ids += [c["id"] for c in answer.json()["data"]]
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the walk never ended")


def parse_csv(body: bytes) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(body.decode()))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


async def test_a_csv_export_is_every_clip_the_search_walks_in_its_order(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    await store_clips(sessionmaker, [helix_clip(view_count=i % 997) for i in range(MANY)])
    answer = await client.get(EXPORT, params={"sort": "views"}, headers=bearer(alice))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="clips.csv"' in answer.headers["content-disposition"]
    rows = parse_csv(answer.content)
    assert [r["id"] for r in rows] == await walk(client, alice, sort="views")
    assert len(rows) == MANY
    assert [int(r["views"]) for r in rows] == sorted((int(r["views"]) for r in rows), reverse=True)


async def test_a_jsonl_export_takes_the_filters_and_max_rows(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    clips = [
        helix_clip(title=f"pog {i}" if i % 3 == 0 else f"calm {i}", view_count=i) for i in range(60)
    ]
    await store_clips(sessionmaker, clips)
    params = {"format": "jsonl", "q": "pog", "min_views": 10, "sort": "newest"}
    answer = await client.get(EXPORT, params=params, headers=bearer(alice))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    rows = [orjson.loads(line) for line in answer.content.splitlines()]
    expected = await walk(client, alice, q="pog", min_views=10, sort="newest")
    assert [r["id"] for r in rows] == expected
    assert len(expected) == len(
        [c for c in clips if c["view_count"] >= 10 and c["title"][0] == "p"]
    )
    assert set(rows[0]) == set(COLUMNS)
    limited = await client.get(EXPORT, params={**params, "max_rows": 3}, headers=bearer(alice))
    assert [orjson.loads(line)["id"] for line in limited.content.splitlines()] == expected[:3]


async def test_an_empty_result_is_a_header_and_nothing_else(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    answer = await client.get(EXPORT, headers=bearer(alice))
    assert answer.status_code == 200
    assert parse_csv(answer.content) == []
    jsonl = await client.get(EXPORT, params={"format": "jsonl"}, headers=bearer(alice))
    assert jsonl.content == b""


async def test_cells_a_spreadsheet_would_run_are_text(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    await store_clips(sessionmaker, [helix_clip(title='=HYPERLINK("http://x","y")')])
    rows = parse_csv((await client.get(EXPORT, headers=bearer(alice))).content)
    assert rows[0]["title"] == '\'=HYPERLINK("http://x","y")'


async def test_anonymous_exports_are_bounded_and_bad_input_is_a_4xx(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await store_clips(sessionmaker, [helix_clip() for _ in range(5)])
    unbounded = await client.get(EXPORT)
    assert unbounded.status_code == 401
    assert unbounded.headers["content-type"] == PROBLEM
    assert "1,000 rows" in unbounded.json()["detail"]
    assert (await client.get(EXPORT, params={"max_rows": 1001})).status_code == 401
    small = await client.get(EXPORT, params={"max_rows": 4})
    assert small.status_code == 200
    assert len(parse_csv(small.content)) == 4
    for params in (
        {"format": "xml", "max_rows": 5},
        {"max_rows": 0},
        {"min_views": 10, "max_views": 5, "max_rows": 5},
        {"sort": "loudest", "max_rows": 5},
    ):
        bad = await client.get(EXPORT, params=params)
        assert bad.status_code == 422, params
        assert bad.headers["content-type"] == PROBLEM
    assert (
        await client.get(EXPORT, params={"favourite": "true", "max_rows": 5})
    ).status_code == 401


async def test_each_block_of_rows_counts_as_a_request(
    settings: Settings,
    engine: AsyncEngine,
    cache: CacheManager,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The export itself is one request and each BLOCK rows one more: with a limit of 3 a
    minute, an export of two blocks spends the minute."""
    _, alice = await make_user(sessionmaker, "alice")
    await store_clips(sessionmaker, [helix_clip() for _ in range(2 * BLOCK)])
    tight = settings.model_copy(update={"rate_limit_user": "3/minute"})
    async with app_client(tight, cache=cache) as client:
        answer = await client.get(EXPORT, headers=bearer(alice))
        assert answer.status_code == 200, answer.text
        assert len(parse_csv(answer.content)) == 2 * BLOCK
        after = await client.get("/api/v1/me", headers=bearer(alice))
        assert after.status_code == 429


async def test_csv_and_jsonl_say_the_same_cell_for_cell(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """On PostgreSQL the CSV is COPY's own text and the JSON Lines are written here: each
    cell must read the same (SQLite writes both here)."""
    _, alice = await make_user(sessionmaker, "alice")
    odd = [
        helix_clip(title='quotes " and, commas', duration=30.0, vod_offset=None),
        helix_clip(title="-dash first", duration=12.345, game_id=""),
        helix_clip(title="ünïcødé クリップ", duration=60, view_count=2**40),
        helix_clip(title="+plus", created_at="2026-01-02T03:04:05Z"),
    ]
    await store_clips(sessionmaker, odd)
    params = {"sort": "views"}
    csv_rows = parse_csv((await client.get(EXPORT, params=params, headers=bearer(alice))).content)
    jsonl = await client.get(EXPORT, params={**params, "format": "jsonl"}, headers=bearer(alice))
    json_rows = [orjson.loads(line) for line in jsonl.content.splitlines()]
    assert len(csv_rows) == len(json_rows) == len(odd)
    for from_csv, from_json in zip(csv_rows, json_rows, strict=True):
        assert from_csv == {k: str(_csv_safe(v)) for k, v in from_json.items()}

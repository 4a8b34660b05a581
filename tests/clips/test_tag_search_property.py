"""Search words and `tag=` against tags, over random archives, on both databases: the API's
answer equals what is computed here without it.

A word matches a clip when the clip's text has it, or a community tag on the clip has it
among its hyphen-separated words (the last word of a typed query also as a prefix); every
word must match. `tag=name` keeps the clips carrying a tag of that name the caller sees (the
community's, or their own private one). Private tags never match words.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipwatch.accounts import service
from clipwatch.api.app import create_app
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from tests.conftest import empty_tables
from tests.factories import helix_clip, store_clips

WORD = re.compile(r"[^\W_]+")
VOCAB = ["pog", "clutch", "fail", "win", "dance"]
TAGS = ["epic-fail", "pog-moment", "clutch", "lulz", "win-win"]
QUERIES = ["epic", "fail", "pog", "po", "moment", "clu", "lul", "fail win", "win ", "dance epic"]

archives = st.fixed_dictionaries(
    {
        "titles": st.lists(
            st.lists(st.sampled_from(VOCAB), min_size=1, max_size=3).map(" ".join),
            min_size=1,
            max_size=10,
        ),
        # Each tag: community (False) or alice's private tag (True).
        "private": st.lists(st.booleans(), min_size=len(TAGS), max_size=len(TAGS)),
        "on": st.lists(st.tuples(st.integers(0, 9), st.integers(0, len(TAGS) - 1)), max_size=15),
        "q": st.sampled_from([None, *QUERIES]),
        "tag": st.sampled_from([None, *TAGS]),
        "as_alice": st.booleans(),
    }
)


def word_matches(word: str, tokens: set[str], *, prefix: bool) -> bool:
    return any(t.startswith(word) for t in tokens) if prefix else word in tokens


def expected(case: dict[str, Any]) -> list[str]:
    titles = case["titles"]
    on: dict[int, set[int]] = {}
    for clip, tag in case["on"]:
        if clip < len(titles):
            on.setdefault(clip, set()).add(tag)
    found = []
    for i, title in enumerate(titles):
        tags = on.get(i, set())
        if case["q"] is not None:
            q = case["q"]
            words = list(dict.fromkeys(WORD.findall(q)))
            text = set(WORD.findall(f"{title} someone chan"))
            tag_words = {w for t in tags if not case["private"][t] for w in WORD.findall(TAGS[t])}
            last_prefix = not q[-1:].isspace() and len(words[-1]) >= 2
            ok = all(
                word_matches(w, text | tag_words, prefix=last_prefix and n == len(words) - 1)
                for n, w in enumerate(words)
            )
            if not ok:
                continue
        if case["tag"] is not None:
            wanted = TAGS.index(case["tag"])
            visible = not case["private"][wanted] or case["as_alice"]
            if not (visible and wanted in tags):
                continue
        found.append(f"P{i}")
    return sorted(found)


async def run(app_settings: Settings, case: dict[str, Any]) -> list[str]:
    engine = create_engine(app_settings)
    await empty_tables(engine)
    sessionmaker = create_sessionmaker(engine)
    await store_clips(
        sessionmaker,
        [
            helix_clip(
                id=f"P{i}",
                title=title,
                creator_name="Someone",
                broadcaster_name="Chan",
                created_at=f"2025-01-01T00:00:{i:02d}Z",
            )
            for i, title in enumerate(case["titles"])
        ],
    )
    async with session_scope(sessionmaker) as session:
        admin = await service.create_user(session, "admin", admin=True)
        _, admin_token = await service.create_token(
            session, admin, name="t", scopes=frozenset({"read", "write", "admin"})
        )
        alice = await service.create_user(session, "alice")
        _, alice_token = await service.create_token(
            session, alice, name="t", scopes=frozenset({"read", "write"})
        )
    app = create_app(app_settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ids = []
                for name, private in zip(TAGS, case["private"], strict=True):
                    token = alice_token if private else admin_token
                    made = await client.post(
                        "/api/v1/tags",
                        json={"name": name, "private": private},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert made.status_code == 201, made.text
                    ids.append(made.json()["id"])
                for clip, tag in case["on"]:
                    if clip < len(case["titles"]):
                        put = await client.put(
                            f"/api/v1/clips/P{clip}/tags/{ids[tag]}",
                            headers={"Authorization": f"Bearer {alice_token}"},
                        )
                        assert put.status_code == 200, put.text
                params: dict[str, Any] = {"limit": 100, "sort": "newest"}
                if case["q"] is not None:
                    params["q"] = case["q"]
                if case["tag"] is not None:
                    params["tag"] = case["tag"]
                headers = {"Authorization": f"Bearer {alice_token}"} if case["as_alice"] else {}
                answer = await client.get("/api/v1/clips", params=params, headers=headers)
                assert answer.status_code == 200, answer.text
                return sorted(c["id"] for c in answer.json()["data"])
    finally:
        await engine.dispose()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=archives)
def test_words_and_tag_filters_find_what_the_tags_say(
    settings: Settings, case: dict[str, Any]
) -> None:
    assert asyncio.run(run(settings, case)) == expected(case)

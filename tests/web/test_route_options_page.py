"""Issue 15's route options on the route form, in-process on both databases: every option
saved as the API stores it, shown again on the edit form, cleared by emptying its field;
their errors on their own fields; @here only where an admin allowed it."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import NotificationRoute
from tests.web.test_routes_page import Person, add_route, ann, app, every_field, field_error

__all__ = ["ann", "app"]  # fixtures, used here by name

ROLE_A, ROLE_B = "111111111111111111", "222222222222222222"
THREAD = "333333333333333333"
AVATAR = "https://cdn.discordapp.com/avatars/1/pic.png"
OPTIONS = {
    "kind": "digest",
    "digest_period": "week",
    "digest_weekday": "0",
    "digest_time": "18:30",
    "digest_time_zone": "Europe/Berlin",
    "digest_top": "5",
    "thread_id": THREAD,
    "role_ids": f"{ROLE_A}, {ROLE_B}",
    "username": "Clip Bot",
    "avatar_url": AVATAR,
    "trending_views_per_hour": "500",
    "on_deleted": "edit",
    "milestones": "1000, 10000",
}


async def test_every_option_is_saved_shown_and_cleared(app: httpx.AsyncClient, ann: Person) -> None:
    form = await ann.get("/routes/new")
    for label in ("What it posts", "Thread id", "Roles to ping", "Post as (name)"):
        assert re.search(rf'<label for="[a-z_]+">{re.escape(label)}</label>', form.text), label
    assert 'id="ping_here"' not in form.text  # no admin allowed @here on a new route

    route_id = await add_route(ann, **OPTIONS)
    stored = (await ann.api(f"/routes/{route_id}")).json()
    assert stored["kind"] == "digest"
    assert stored["digest"] == {
        "period": "week",
        "weekday": 0,
        "time": "18:30",
        "time_zone": "Europe/Berlin",
        "top": 5,
    }
    assert stored["thread_id"] == THREAD
    assert stored["role_ids"] == [ROLE_A, ROLE_B]
    assert (stored["username"], stored["avatar_url"]) == ("Clip Bot", AVATAR)
    assert stored["trending_views_per_hour"] == 500
    assert stored["on_deleted"] == "edit"
    assert stored["milestones"] == [1000, 10000]

    page = (await ann.get(f"/routes/{route_id}")).text
    assert "A digest of the top 5 clips, every week on Monday at 18:30 (Europe/Berlin)" in page
    assert "a clip once when it gains 500 views an hour" in page
    assert f"Thread {THREAD}" in page
    assert f"role {ROLE_A}, role {ROLE_B}" in page
    assert "Clip Bot, with its own picture" in page
    assert "Its message is edited to say so; views updated at 1000, 10000" in page

    edit = await ann.get(f"/routes/{route_id}/edit")
    assert '<option value="digest" selected>' in edit.text
    assert '<option value="edit" selected>' in edit.text
    assert f'value="{ROLE_A}, {ROLE_B}"' in edit.text
    assert 'value="Europe/Berlin"' in edit.text
    assert 'value="1000, 10000"' in edit.text

    cleared = {**OPTIONS, "kind": "clips", "thread_id": "", "role_ids": "", "username": ""}
    cleared |= {"avatar_url": "", "trending_views_per_hour": "", "milestones": ""}
    saved = await ann.post(f"/routes/{route_id}/edit", every_field(webhook_url="", **cleared))
    assert saved.status_code == 303, saved.text
    after = (await ann.api(f"/routes/{route_id}")).json()
    assert after["kind"] == "clips"
    assert after["digest"] is None
    assert after["thread_id"] is None
    assert after["role_ids"] == []
    assert (after["username"], after["avatar_url"]) == (None, None)
    assert after["trending_views_per_hour"] is None
    assert after["milestones"] == []
    assert after["on_deleted"] == "edit"


async def test_option_errors_are_on_their_fields(app: httpx.AsyncClient, ann: Person) -> None:
    for field, value in (
        ("digest_time", "25:00"),
        ("digest_time_zone", "Mars/Olympus"),
        ("digest_top", "99"),
        ("role_ids", "not-a-role"),
        ("thread_id", "12"),
        ("avatar_url", "https://example.com/pic.png"),
        ("username", "Discord Bot"),
        ("trending_views_per_hour", "lots"),
        ("milestones", "0"),
    ):
        answer = await ann.post("/routes/new", every_field(**{**OPTIONS, field: value}))
        assert answer.status_code == 422, (field, answer.status_code)
        assert field_error(answer.text, field), field
        assert f'href="#{field}"' in answer.text, field


async def test_here_is_offered_only_where_an_admin_allowed_it(
    app: httpx.AsyncClient, ann: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    route_id = await add_route(ann)
    assert 'id="ping_here"' not in (await ann.get(f"/routes/{route_id}/edit")).text
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(NotificationRoute)
            .where(NotificationRoute.id == route_id)
            .values(here_allowed=True)
        )
    assert 'id="ping_here"' in (await ann.get(f"/routes/{route_id}/edit")).text
    fields = every_field(webhook_url="", ping_here="on")
    assert (await ann.post(f"/routes/{route_id}/edit", fields)).status_code == 303
    assert (await ann.api(f"/routes/{route_id}")).json()["ping_here"] is True
    fields = every_field(webhook_url="")
    assert (await ann.post(f"/routes/{route_id}/edit", fields)).status_code == 303
    assert (await ann.api(f"/routes/{route_id}")).json()["ping_here"] is False

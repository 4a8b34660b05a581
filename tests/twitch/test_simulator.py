"""The simulator is as strict as Twitch: cap, windows, cursors, bucket, tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET
from tests.twitch.conftest import Sim


async def _token(http: httpx.AsyncClient) -> dict[str, str]:
    answer = await http.post(
        "/oauth2/token",
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "client_credentials",
        },
    )
    assert answer.status_code == 200
    return {"Authorization": f"Bearer {answer.json()['access_token']}", "Client-Id": CLIENT_ID}


async def test_get_clips_caps_sorts_and_pages(sim: Sim) -> None:
    channel = sim.twitch.add_channel("busy", clips=1_500, hot_days=1, clips_per_hot_day=1_500)
    async with httpx.AsyncClient(base_url=sim.base) as http:
        auth = await _token(http)
        seen: list[dict[str, object]] = []
        after = None
        while True:
            params = {
                "broadcaster_id": channel.id,
                "first": "100",
                **({"after": after} if after else {}),
            }
            answer = await http.get("/helix/clips", params=params, headers=auth)
            assert answer.status_code == 200
            body = answer.json()
            seen += body["data"]
            after = body["pagination"].get("cursor")
            if not after:
                break
        assert len(seen) == 1_000  # 1,500 match; one query yields 1,000
        views = [c["view_count"] for c in seen]
        assert views == sorted(views, reverse=True)
        # A cursor belongs to its query.
        first = await http.get("/helix/clips", params={"broadcaster_id": channel.id}, headers=auth)
        cursor = first.json()["pagination"]["cursor"]
        other = await http.get(
            "/helix/clips",
            params={"broadcaster_id": channel.id, "is_featured": "false", "after": cursor},
            headers=auth,
        )
        assert other.status_code == 400


async def test_started_at_alone_means_seven_days(sim: Sim) -> None:
    now = datetime.now(UTC)
    channel = sim.twitch.add_channel("quiet")
    clips = {
        days: sim.twitch.add_clip(channel.id, created_at=now - timedelta(days=days), visible_at=now)
        for days in (1, 5, 9)
    }
    start = (now - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with httpx.AsyncClient(base_url=sim.base) as http:
        auth = await _token(http)
        answer = await http.get(
            "/helix/clips", params={"broadcaster_id": channel.id, "started_at": start}, headers=auth
        )
        # The window is 10 to 3 days ago: the clip of yesterday is outside it.
        assert {c["id"] for c in answer.json()["data"]} == {clips[5].id, clips[9].id}
        both = await http.get(
            "/helix/clips", params={"broadcaster_id": channel.id, "game_id": "1"}, headers=auth
        )
        assert both.status_code == 400


async def test_new_clips_appear_late_and_deleted_ones_vanish(sim: Sim) -> None:
    channel = sim.twitch.add_channel("fresh")
    late = sim.twitch.add_clip(channel.id)  # visible only after the appear delay
    old = sim.twitch.add_clip(channel.id, created_at=datetime.now(UTC) - timedelta(days=1))
    assert [c.id for c in sim.twitch.visible_clips(channel.id)] == [old.id]
    sim.twitch.delete_clip(old.id)
    async with httpx.AsyncClient(base_url=sim.base) as http:
        auth = await _token(http)
        answer = await http.get(
            "/helix/clips", params=[("id", late.id), ("id", old.id)], headers=auth
        )
        assert answer.json()["data"] == []


async def test_tokens_expire_and_validate(sim: Sim) -> None:
    async with httpx.AsyncClient(base_url=sim.base) as http:
        auth = await _token(http)
        token = auth["Authorization"].split()[1]
        valid = await http.get("/oauth2/validate", headers={"Authorization": f"OAuth {token}"})
        assert valid.status_code == 200
        assert valid.json()["client_id"] == CLIENT_ID
        sim.twitch.expire_tokens()
        assert (
            await http.get("/helix/users", params={"login": "x"}, headers=auth)
        ).status_code == 401
        invalid = await http.get("/oauth2/validate", headers={"Authorization": f"OAuth {token}"})
        assert invalid.status_code == 401
        assert invalid.content == b""
        no_client = {"Authorization": auth["Authorization"]}
        assert (
            await http.get("/helix/users", params={"login": "x"}, headers=no_client)
        ).status_code == 401


async def test_points_bucket_runs_dry_with_headers(sim: Sim) -> None:
    sim.twitch.bucket.limit = 5
    sim.twitch.bucket.points = 5
    async with httpx.AsyncClient(base_url=sim.base) as http:
        auth = await _token(http)
        answers = [
            await http.get("/helix/users", params={"login": "x"}, headers=auth) for _ in range(6)
        ]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert answers[5].status_code == 429
    assert answers[5].headers["ratelimit-remaining"] == "0"
    assert int(answers[5].headers["ratelimit-reset"]) > datetime.now(UTC).timestamp()
    assert answers[5].json()["status"] == 429


async def test_streams_show_only_live_channels_and_videos_resolve(sim: Sim) -> None:
    live = sim.twitch.add_channel("live_one")
    sim.twitch.add_channel("offline_one")
    sim.twitch.live[live.id] = datetime.now(UTC) - timedelta(hours=1)
    clip = sim.twitch.add_clip(live.id, created_at=datetime.now(UTC) - timedelta(days=1))
    while not clip.video_id:  # some clips have no VOD
        clip = sim.twitch.add_clip(live.id, created_at=datetime.now(UTC) - timedelta(days=1))
    async with httpx.AsyncClient(base_url=sim.base) as http:
        auth = await _token(http)
        streams = await http.get(
            "/helix/streams",
            params=[("user_login", "live_one"), ("user_login", "offline_one")],
            headers=auth,
        )
        assert [s["user_login"] for s in streams.json()["data"]] == ["live_one"]
        videos = await http.get("/helix/videos", params={"id": clip.video_id}, headers=auth)
        assert videos.json()["data"][0]["user_id"] == live.id
        assert (
            await http.get("/helix/videos", params={"id": "1"}, headers=auth)
        ).status_code == 404


async def _all_ids(http: httpx.AsyncClient, auth: dict[str, str], **params: str) -> set[str]:
    ids: set[str] = set()
    after = None
    while True:
        page = await http.get(
            "/helix/clips",
            params={**params, "first": "100", **({"after": after} if after else {})},
            headers=auth,
        )
        assert page.status_code == 200
        ids |= {c["id"] for c in page.json()["data"]}
        after = page.json()["pagination"].get("cursor")
        if not after:
            return ids


async def test_wide_windows_omit_clips_that_narrow_ones_return(sim: Sim) -> None:
    channel = sim.twitch.add_channel("steady", clips=600, years=0.5)
    start = channel.created_at
    async with httpx.AsyncClient(base_url=sim.base) as http:
        auth = await _token(http)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        end = datetime.now(UTC) + timedelta(days=1)
        wide = await _all_ids(
            http,
            auth,
            broadcaster_id=channel.id,
            started_at=start.strftime(stamp),
            ended_at=end.strftime(stamp),
        )
        narrow: set[str] = set()
        at = start
        while at < end:
            narrow |= await _all_ids(
                http,
                auth,
                broadcaster_id=channel.id,
                started_at=at.strftime(stamp),
                ended_at=(at + timedelta(days=30)).strftime(stamp),
            )
            at += timedelta(days=30)
    truth = {c.id for c in sim.twitch.visible_clips(channel.id)}
    assert narrow == truth
    assert wide < truth
    assert 10 <= len(truth - wide) <= 60  # about one in twenty


def test_views_grow_for_three_days_when_asked_to() -> None:
    from clipwatch.twitch.simulator import GROWTH_HOURS, TwitchSimulator

    twitch = TwitchSimulator(views_grow=True)
    channel = twitch.add_channel("growing")
    now = datetime.now(UTC)
    young = twitch.add_clip(channel.id, created_at=now - timedelta(hours=10))
    old = twitch.add_clip(channel.id, created_at=now - timedelta(days=30))
    assert young.views_per_hour > 0
    assert young.views(now) == young.view_count + int(young.views_per_hour * 10)
    assert young.views(now + timedelta(hours=5)) > young.views(now)
    # Past three days a clip keeps what it gained.
    assert old.views(now) == old.view_count + int(old.views_per_hour * GROWTH_HOURS)
    assert old.views(now + timedelta(days=1)) == old.views(now)
    assert young.helix()["view_count"] >= young.views(now)
    # Without the option, views change only when a test says so.
    still = TwitchSimulator()
    flat = still.add_clip(still.add_channel("flat").id, created_at=now - timedelta(hours=10))
    assert flat.views(now + timedelta(hours=5)) == flat.view_count

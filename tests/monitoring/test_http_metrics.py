"""`/metrics` on the app, on both databases: bounded labels (route templates, never raw
paths), the access rule, and the switch that turns instrumentation off."""

from __future__ import annotations

import httpx
import pytest

from clipwatch.config import Settings
from clipwatch.monitoring.metrics import exposition
from tests.conftest import app_client
from tests.monitoring.metrics_text import families, samples, value

REQUESTS = "clipwatch_http_requests_total"
CLIP_ROUTE = "/api/v1/clips/{clip_id}"


async def scrape(client: httpx.AsyncClient) -> str:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


async def test_paths_of_one_route_count_under_its_template(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for clip_id in ("abc", "def"):
        assert (await client.get(f"/api/v1/clips/{clip_id}")).status_code == 404
    after = await scrape(client)
    labels = {"method": "GET", "route": CLIP_ROUTE, "status_class": "4xx"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 2
    count = "clipwatch_http_request_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == 2
    # No label anywhere holds a raw path.
    values = {v for _, pairs in samples(after) for _, v in pairs}
    assert not {"abc", "def", "/api/v1/clips/abc", "/api/v1/clips/def"} & values


async def test_unmatched_paths_share_one_label_value(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for path in ("/nothing/here-1", "/nothing/here-2", "/wp-login.php"):
        assert (await client.get(path)).status_code == 404
    after = await scrape(client)
    labels = {"method": "GET", "route": "unmatched", "status_class": "4xx"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 3
    assert "here-1" not in after
    assert "wp-login" not in after
    # Methods outside HTTP's usual set are one value too.
    await client.request("BREW", "/api/v1/clips")
    assert 'method="BREW"' not in await scrape(client)


async def test_answers_from_the_cached_fast_path_count_under_their_template(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    first = await client.get("/api/v1/clips", params={"sort": "newest"})
    again = await client.get("/api/v1/clips", params={"sort": "newest"})
    assert first.status_code == again.status_code == 200
    assert again.headers.get("x-cache") == "hit"
    after = await scrape(client)
    labels = {"method": "GET", "route": "/api/v1/clips", "status_class": "2xx"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 2
    hits = "clipwatch_cache_hits_total"
    assert value(after, hits, tier="local") > value(before, hits, tier="local")


async def test_the_registry_holds_the_issues_metrics(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = await scrape(client)
    wanted = {
        "clipwatch_http_requests",
        "clipwatch_http_request_duration_seconds",
        "clipwatch_db_pool_connections",
        "clipwatch_db_pool_waits",
        "clipwatch_cache_hits",
        "clipwatch_cache_misses",
        "clipwatch_cache_bytes",
        "clipwatch_cache_evictions",
        "clipwatch_twitch_requests",
        "clipwatch_twitch_budget_remaining",
        "clipwatch_twitch_rate_limited",
        "clipwatch_twitch_token_renewals",
        "clipwatch_channel_sync_lag_seconds",
        "clipwatch_channel_last_success_timestamp_seconds",
        "clipwatch_channel_sync_failures",
        "clipwatch_channel_clips",
        "clipwatch_channel_backfill_progress_ratio",
        "clipwatch_quarantined_clips",
        "clipwatch_outbox_pending",
        "clipwatch_outbox_oldest_pending_age_seconds",
        "clipwatch_deliveries",
        "clipwatch_discord_rate_limited",
        "clipwatch_dead_letters",
        "clipwatch_worker_task_state",
        "clipwatch_worker_task_restarts",
        "clipwatch_incidents_open",
    }
    assert wanted <= families(text)


async def test_metrics_are_left_out_of_the_openapi_document(client: httpx.AsyncClient) -> None:
    assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


# --- who may read them ------------------------------------------------------------------------


async def test_loopback_reads_metrics_without_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200


async def test_others_get_404_when_no_token_is_set(settings: Settings) -> None:
    async with app_client(settings, client_ip="203.0.113.9") as remote:
        answer = await remote.get("/metrics")
        assert answer.status_code == 404
        assert "clipwatch_" not in answer.text
        forged = await remote.get("/metrics", headers={"Authorization": "Bearer anything"})
        assert forged.status_code == 404


async def test_others_need_the_token_when_one_is_set(settings: Settings) -> None:
    token = "metrics-token-for-tests-123"
    with_token = settings.model_copy(update={"metrics_token": token})
    async with app_client(with_token, client_ip="203.0.113.9") as remote:
        missing = await remote.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.headers["content-type"] == "application/problem+json"
        wrong = await remote.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await remote.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200
        assert "clipwatch_http_requests_total" in right.text


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded"])
async def test_a_request_forwarded_by_a_local_proxy_is_not_local(
    settings: Settings, header: str
) -> None:
    async with app_client(settings, client_ip="127.0.0.1") as local:
        answer = await local.get("/metrics", headers={header: "for=198.51.100.7"})
        assert answer.status_code == 404


async def test_instrumentation_can_be_turned_off(settings: Settings) -> None:
    off = settings.model_copy(update={"metrics_enabled": False})
    before = exposition().decode()
    async with app_client(off) as client:
        for _ in range(3):
            await client.get("/api/v1/clips/xyz")
        assert (await client.get("/metrics")).status_code == 404
    after = exposition().decode()
    labels = {"method": "GET", "route": CLIP_ROUTE, "status_class": "4xx"}
    assert value(after, REQUESTS, **labels) == value(before, REQUESTS, **labels)


def test_the_route_table_is_fastapis_effective_routes(settings: Settings) -> None:
    """The telemetry's route table (walked cheaply) says what FastAPI's effective route
    contexts say: every route's template, regex and methods, in routing order."""
    from clipwatch.api.app import create_app
    from clipwatch.api.telemetry import RouteTemplates

    app = create_app(settings)
    table = RouteTemplates(lambda: app.router.routes)
    table.prepare()
    expected = []
    for route in app.router.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for entry in contexts() if contexts is not None else [route]:
            template = getattr(entry, "path_format", None)
            if getattr(entry, "path_regex", None) is None or not template:
                continue
            methods = getattr(entry, "methods", None)
            expected.append(
                (entry.path_regex.pattern, template, frozenset(methods) if methods else None)
            )
    got = [(regex.pattern, template, methods) for regex, template, methods in table._table]
    assert len(got) > 100
    assert got == expected
    assert table.template("/api/v1/clips/abc", "GET") == CLIP_ROUTE
    assert table.template("/api/v1/clips/abc", "DELETE") == CLIP_ROUTE  # a 405: the path's
    assert table.template("/nothing/here", "GET") == "unmatched"

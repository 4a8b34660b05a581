"""`clipwatch routes test` as an operator runs it: marked, through the shared sender; a gone
webhook disables the route and then nothing more reaches Discord."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cli.test_commands import run
from tests.processes import simulator


def test_routes_test_disables_a_gone_webhooks_route(tmp_path: Path) -> None:
    with simulator("discord", "--webhooks", "0") as (base, _process):
        hook = httpx.post(f"{base}/_sim/webhooks").json()
        env = {"CLIPWATCH_DISCORD_API_URL": f"{base}/api/v10"}
        url = f"https://discord.com/api/webhooks/{hook['id']}/{hook['token']}"
        assert run(tmp_path, "users", "create", "owner").returncode == 0
        added = run(tmp_path, "routes", "add", "owner", "highlights", url, **env)
        assert added.returncode == 0, added.stderr

        sent = run(tmp_path, "routes", "test", "1", **env)
        assert sent.returncode == 0, sent.stderr
        assert "the sample clip (none matches)" in sent.stdout
        [message] = httpx.get(f"{base}/_sim/messages").json()["messages"]
        assert message["payload"]["content"].startswith(
            "Test message from clipwatch for route “highlights”"
        )

        httpx.post(f"{base}/_sim/delete-webhook", params={"id": hook["id"]})
        gone = run(tmp_path, "routes", "test", "1", **env)
        assert gone.returncode == 1
        assert "Unknown Webhook (code 10015); the route is now disabled" in gone.stderr
        again = run(tmp_path, "routes", "test", "1", **env)
        assert again.returncode == 1
        assert "disabled" in again.stderr
        assert "Traceback" not in gone.stderr + again.stderr
        listed = run(tmp_path, "routes", "list", COLUMNS="250", **env)
        assert "Unknown Webhook" in listed.stdout
        statuses = [r["status"] for r in httpx.get(f"{base}/_sim/requests").json()["requests"]]
    assert statuses == [200, 200, 404]  # the webhook checked at `routes add`, the test, gone

"""The real processes: `clipwatch worker --metrics-port` serves its clipwatch_* series (both
databases), and `clipwatch serve` writes JSON access lines with request ids, in demo mode
too, holding no secret of its settings."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TEST_SECRET, free_port
from tests.monitoring.metrics_text import samples, value
from tests.processes import CLIPWATCH, serving, twitch_simulator
from tests.twitch.test_kill_resume import empty

DEADLINE_S = 90.0
BOT_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"


def read(path: Path) -> str:
    return path.read_text()


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_worker_serves_its_metrics(database_url: str, tmp_path: Path) -> None:
    empty(database_url)
    with twitch_simulator(
        "--seed",
        "5",
        "--years",
        "0.1",
        "--channel",
        "metricsolo:60",
        "--points-per-minute",
        "100000",
    ) as twitch:
        env = twitch.env(
            database_url, CLIPWATCH_LOG_FORMAT="json", CLIPWATCH_METRICS_REFRESH_SECONDS="1"
        )
        run: dict[str, Any] = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True}
        added = subprocess.run([CLIPWATCH, "channels", "add", "metricsolo"], check=False, **run)
        assert added.returncode == 0, added.stderr
        port = free_port()
        log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen(
            [CLIPWATCH, "worker", "--interval", "10", "--metrics-port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + DEADLINE_S
            while True:
                assert worker.poll() is None, read(tmp_path / "worker.log")[-3000:]
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.TransportError:
                    text = ""
                backfilled = {
                    dict(labels)["channel_id"]
                    for (name, labels), figure in samples(text).items()
                    if name == "clipwatch_channel_backfill_progress_ratio" and figure == 1.0
                }
                if backfilled:
                    break
                assert time.monotonic() < deadline, f"no channel figures in time:\n{text[-3000:]}"
                time.sleep(0.2)  # polling interval while the worker's first pass runs
            (channel_id,) = backfilled
            assert value(text, "clipwatch_channel_info", channel_id=channel_id, login="metricsolo")
            assert value(text, "clipwatch_channel_clips", channel_id=channel_id) > 0
            assert value(text, "clipwatch_worker_task_restarts_total", task="sync") == 0
            assert "clipwatch_worker_task_state{" in text
            requests = value(
                text, "clipwatch_twitch_requests_total", endpoint="/clips", status="200"
            )
            assert requests > 0
            assert "clipwatch_db_pool_connections" in text
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            log.close()
    lines = json_lines((tmp_path / "worker.log").read_text())
    output = (tmp_path / "worker.log").read_text()
    assert TEST_SECRET not in output
    pass_lines = [
        line for line in lines if line["event"] in ("sync_channel_done", "sync_pass_done")
    ]
    assert pass_lines
    assert all(line.get("job_id", "").startswith("sync-") for line in pass_lines), pass_lines


def test_worker_metrics_port_is_refused_when_metrics_are_off(
    tmp_path: Path, sqlite_url: str
) -> None:
    env = {**os.environ, "CLIPWATCH_DATABASE_URL": sqlite_url, "CLIPWATCH_METRICS_ENABLED": "false"}
    done = subprocess.run(
        [CLIPWATCH, "worker", "--metrics-port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "CLIPWATCH_METRICS_ENABLED" in done.stderr


def _demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPWATCH_")}
    env["CLIPWATCH_SECRET_KEY"] = TEST_SECRET
    env["CLIPWATCH_LOG_FORMAT"] = "json"
    return env


def test_demo_mode_writes_one_access_line_per_request(tmp_path: Path) -> None:
    with serving(tmp_path, _demo_env()) as (base, _process):
        answer = httpx.get(f"{base}/api/v1/clips/missing", headers={"X-Request-ID": "demo-req-1"})
        assert answer.headers["x-request-id"] == "demo-req-1"
        scraped = httpx.get(f"{base}/metrics")
        assert scraped.status_code == 200
        assert "clipwatch_http_requests_total{" in scraped.text

        def access_lines() -> list[dict[str, Any]]:
            text = (tmp_path / "serve.log").read_text()
            return [
                json.loads(line)
                for line in text.splitlines()
                if '"clipwatch.access"' in line and '"demo-req-1"' in line
            ]

        deadline = time.monotonic() + 10
        while not access_lines():
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.05)  # polling until the log line is flushed
    (line,) = access_lines()
    assert line["route"] == "/api/v1/clips/{clip_id}"
    assert line["path"] == "/api/v1/clips/missing"
    assert line["status"] == 404
    assert line["method"] == "GET"
    text = (tmp_path / "serve.log").read_text()
    json_lines(text)
    assert TEST_SECRET not in text


def test_serve_logs_hold_no_secret_of_its_settings(database_url: str, tmp_path: Path) -> None:
    empty(database_url)
    secrets = {
        "CLIPWATCH_DISCORD_BOT_TOKEN": BOT_TOKEN,
        "CLIPWATCH_METRICS_TOKEN": "metrics-token-Lk93bb",
        "CLIPWATCH_LOG_FILE": str(tmp_path / "clipwatch.log"),
        "CLIPWATCH_LOG_LEVEL": "debug",
    }
    with twitch_simulator("--seed", "6", "--years", "0.1", "--channel", "quiet:20") as twitch:
        env = twitch.env(database_url, CLIPWATCH_LOG_FORMAT="json", **secrets)
        with serving(tmp_path, env) as (base, _process):
            httpx.get(f"{base}/api/v1/clips", params={"token": "cw_0123456789abcdefgh"})
            httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong-token-1"})
            httpx.get(
                f"{base}/auth/callback",
                params={"code": "oauth-code-77aa11", "state": "x"},
                headers={"Cookie": "cw_session=sessionvalue-7d3f0c9b2a"},
            )
            httpx.get(f"{base}/healthz", headers={"X-Request-ID": "last-one"})
            deadline = time.monotonic() + 10
            while '"last-one"' not in (tmp_path / "clipwatch.log").read_text():
                assert time.monotonic() < deadline
                time.sleep(0.05)  # polling until the log line is flushed
    for name in ("serve.log", "clipwatch.log"):
        text = (tmp_path / name).read_text()
        lines = json_lines(text)
        assert any(line.get("logger") == "clipwatch.access" for line in lines)
        for secret in [
            TEST_SECRET,
            env["CLIPWATCH_TWITCH_CLIENT_SECRET"],
            *(secrets[k] for k in ("CLIPWATCH_DISCORD_BOT_TOKEN", "CLIPWATCH_METRICS_TOKEN")),
            "cw_0123456789abcdefgh",
            "oauth-code-77aa11",
            "sessionvalue-7d3f0c9b2a",
        ]:
            assert secret not in text, (name, secret)

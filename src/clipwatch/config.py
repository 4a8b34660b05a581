"""Settings, read from CLIPWATCH_* environment variables and a `.env` file."""

from __future__ import annotations

import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

import limits
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clipwatch.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/clipwatch.db"
# Demo mode's own database, wiped at every demo start (docs/demo.md); a database the operator
# configured is never used for demo data.
DEMO_DATABASE_PATH = "./var/demo.db"
DEMO_DATABASE_URL = f"sqlite+aiosqlite:///{DEMO_DATABASE_PATH}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLIPWATCH_", env_file=".env", extra="ignore", frozen=True
    )

    # Database
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="The database: sqlite+aiosqlite:///PATH or "
        "postgresql+asyncpg://USER:PASSWORD@HOST/NAME (without Twitch credentials and without "
        "this set, demo mode uses ./var/demo.db)",
    )
    db_pool_size: int = Field(
        default=10, ge=1, le=200, description="PostgreSQL connections each process keeps open"
    )
    db_max_overflow: int = Field(
        default=10,
        ge=0,
        le=200,
        description="Connections a process may open beyond the pool size under load",
    )
    db_pool_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a request waits for a free pool connection before failing",
    )
    db_statement_timeout_ms: int = Field(
        default=15_000,
        ge=0,
        le=600_000,
        description="PostgreSQL statement_timeout for the service's queries (0: none)",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        le=600_000,
        description="How long SQLite waits for another process's write lock",
    )

    # Redis
    redis_url: str = Field(
        default="",
        description="Redis (redis://, rediss:// or unix://) for the shared cache, rate limits "
        "and Twitch's points bucket across processes; empty: each process on its own",
    )

    # Twitch
    twitch_client_id: str = Field(
        default="", description="The Twitch application's client id (empty: demo mode)"
    )
    twitch_client_secret: str = Field(
        default="",
        repr=False,
        description="The Twitch application's client secret (empty: demo mode)",
    )
    twitch_api_url: str = Field(
        default="https://api.twitch.tv/helix", description="Twitch's Helix API base URL"
    )
    twitch_auth_url: str = Field(
        default="https://id.twitch.tv/oauth2", description="Twitch's OAuth base URL"
    )
    twitch_eventsub_ws_url: str = Field(
        default="wss://eventsub.wss.twitch.tv/ws", description="Twitch's EventSub WebSocket URL"
    )
    twitch_eventsub_api_url: str = Field(
        default="",
        description="EventSub's subscriptions endpoint (empty: "
        "CLIPWATCH_TWITCH_API_URL/eventsub/subscriptions)",
    )
    sync_interval_seconds: int = Field(
        default=300,
        ge=10,
        le=86_400,
        description="Seconds between the worker's sync passes (`serve` and `worker`)",
    )
    twitch_points_per_minute: int = Field(
        default=800,
        ge=1,
        le=100_000,
        description="Twitch's points bucket (800 a minute for an app token); shared through Redis",
    )
    live_poll_seconds: int = Field(
        default=60,
        ge=10,
        le=3600,
        description="Seconds between polls of Get Streams (100 channels a request; docs/live.md)",
    )
    live_sync_seconds: int = Field(
        default=60,
        ge=10,
        le=3600,
        description="Seconds between reads of a live channel's recent clips",
    )
    offline_sync_seconds: int = Field(
        default=900,
        ge=10,
        le=86_400,
        description="Seconds between reads of an offline channel's recent clips",
    )
    stream_end_pass_seconds: int = Field(
        default=180,
        ge=0,
        le=3600,
        description="One more read of a channel's clips this long after its stream ended "
        "(clips made at the end)",
    )
    eventsub_enabled: bool = Field(
        default=True,
        description="EventSub over WebSocket (twitch/eventsub.py) once a user token is connected",
    )
    eventsub_keepalive_seconds: int = Field(
        default=30, ge=10, le=600, description="The keepalive EventSub is asked for (seconds)"
    )
    sse_heartbeat_seconds: float = Field(
        default=15.0,
        ge=0.5,
        le=300,
        description="Seconds between heartbeats on GET /api/v1/stream (Server-Sent Events)",
    )
    sse_queue_size: int = Field(
        default=256,
        ge=8,
        le=100_000,
        description="Events queued for one stream client before it is dropped as too slow",
    )
    sse_max_clients: int = Field(
        default=5000,
        ge=1,
        le=1_000_000,
        description="Stream clients one process serves at once (more answer 503)",
    )
    deletion_confirm_minutes: int = Field(
        default=5,
        ge=0,
        le=7 * 24 * 60,
        description="Minutes between the lookups (of one clip alone) that must answer empty "
        "before a clip missing from a batch lookup is marked deleted (docs/twitch.md, "
        "Deletions)",
    )

    # Discord
    discord_api_url: str = Field(
        default="https://discord.com/api/v10", description="Discord's API base URL"
    )
    discord_application_id: str = Field(
        default="", description="The Discord application's id (slash commands)"
    )
    discord_public_key: str = Field(
        default="",
        description="The Discord application's public key: interactions are verified with it",
    )
    discord_bot_token: str = Field(
        default="",
        repr=False,
        description="The bot's token (registering slash commands, threads, forums, setup from "
        "Discord); empty: those are off",
    )
    webhook_allowed_hosts: str = Field(
        default="discord.com,discordapp.com,ptb.discord.com,canary.discord.com",
        description="Comma-separated hosts a route's webhook URL may name",
    )
    avatar_allowed_hosts: str = Field(
        default="cdn.discordapp.com,media.discordapp.net,static-cdn.jtvnw.net",
        description="Route identity: avatars only from these image hosts (https)",
    )
    webhook_check: bool = Field(
        default=True,
        description="GET the webhook before a route is saved (a wrong token is a 422 at "
        "once); off only where no Discord is reachable on purpose (the test suite's offline "
        "settings)",
    )
    delivery_claim_seconds: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="How long a delivery worker holds the deliveries it claimed; a killed "
        "worker's claims come due again after this (longer than a pass's sends, rate-limit "
        "waits included)",
    )

    # Service
    secret_key: str = Field(
        default="",
        repr=False,
        description="Signs sessions and cursors and seals webhook tokens; empty: generated "
        "into var/secret.key on first use (every process of a scaled setup needs the same)",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The URL people reach the service at (links, OAuth redirects)",
    )
    var_dir: Path = Field(
        default=Path("./var"), description="Where the service keeps its files (secret.key, ...)"
    )
    demo: bool = Field(
        default=False,
        description="Demo mode even with Twitch credentials: simulated data in ./var/demo.db",
    )

    # Accounts and access
    session_idle_minutes: int = Field(
        default=7 * 24 * 60,
        ge=5,
        le=365 * 24 * 60,
        description="A login session unused this long ends",
    )
    session_max_days: int = Field(
        default=30, ge=1, le=365, description="A login session ends this long after login"
    )
    rate_limit_anonymous: str = Field(
        default="120/minute", description="Requests per address without credentials"
    )
    rate_limit_token: str = Field(default="600/minute", description="Requests per API token")
    rate_limit_user: str = Field(
        default="1200/minute", description="Requests per signed-in user (web session)"
    )
    rate_limit_auth: str = Field(
        default="10/minute", description="Login and OAuth attempts per address"
    )
    rate_limit_route_test: str = Field(
        default="5/minute",
        description="Test messages through a route (POST /routes/{id}/test), per user: each is "
        "a real post",
    )
    rate_limit_interactions: str = Field(
        default="300/minute",
        description="Discord interactions per address, counted before the signature check: "
        "forged floods cost no Ed25519 work",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=1_073_741_824,
        description="Request bodies (Content-Length or counted as received): larger ones "
        "answer 413 unread",
    )
    max_interaction_body_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=1_073_741_824,
        description="POST /discord/interactions body limit: Discord's own payloads are a few KB",
    )
    redis_key_prefix: str = Field(
        default="clipwatch",
        min_length=1,
        max_length=64,
        description="Prefix of every Redis key (several deployments can share one Redis)",
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins (http(s)://..., or *) allowed to call the API from "
        "a browser; empty: none",
    )
    trusted_proxies: str = Field(
        default="",
        description="Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed: "
        "comma-separated addresses or networks (10.0.0.0/8), or * for any. The client address "
        "(rate limits, logs) is then the one the proxy forwarded. Empty: none is, and every "
        "request counts as coming from the address it came from (behind a proxy: all from it)",
    )

    # Cache (docs/cache.md)
    cache_ttl_seconds: int = Field(
        default=60, ge=1, le=86_400, description="How long a cached answer is kept at most"
    )
    cache_staleness_seconds: float = Field(
        default=5.0,
        ge=0.5,
        le=3600,
        description="No answer older than this after a write (docs/cache.md)",
    )
    cache_max_entries: int = Field(
        default=20_000, ge=0, le=10_000_000, description="Entries in a process's own cache"
    )
    cache_max_mb: int = Field(
        default=64, ge=0, le=65_536, description="Size of a process's own cache (MiB)"
    )

    # Search
    search_relevance_candidates: int = Field(
        default=100,
        ge=20,
        le=5000,
        description="sort=relevance ranks this many most viewed matches (docs/search.md, "
        "Relevance)",
    )
    search_max_query_length: int = Field(
        default=200, ge=10, le=2000, description="Longest search query accepted (characters)"
    )

    # Logging and monitoring
    log_format: Literal["", "console", "json"] = Field(
        default="", description="Log lines' format; empty: console in a terminal, else JSON"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="The least level logged"
    )
    log_file: str = Field(
        default="", description="Also write the log to this file (rotated); empty: stderr only"
    )
    sentry_dsn: str = Field(
        default="",
        repr=False,
        description="Errors are also reported to this Sentry DSN; empty: off",
    )
    log_file_max_mb: int = Field(
        default=20, ge=1, le=10_240, description="CLIPWATCH_LOG_FILE rotates at this size (MiB)"
    )
    log_file_backups: int = Field(
        default=5, ge=0, le=1000, description="Rotated log files kept (clipwatch.log.1, .2, ...)"
    )
    metrics_enabled: bool = Field(
        default=True,
        description="Prometheus instrumentation (HTTP, pool, worker snapshot) and /metrics",
    )
    metrics_token: str = Field(
        default="",
        repr=False,
        description="Bearer token for /metrics from other than loopback; empty: those get 404",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address `clipwatch worker --metrics-port` listens on",
    )
    metrics_refresh_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="How often the worker reads the database's figures for the metrics",
    )
    alertmanager_token: str = Field(
        default="",
        repr=False,
        description="The bearer token Alertmanager's webhook sends to POST "
        "/api/v1/alerts/alertmanager (its alerts become incidents); empty: that endpoint "
        "is off and answers 404",
    )

    # Alerts and incidents (docs/monitoring.md, "Alerts and incidents")
    alert_rules_file: str = Field(
        default="",
        description="A YAML file of alert rules, receivers and routes replacing the shipped "
        "set (monitoring/alerts/default_rules.yaml); checked at start",
    )
    alert_evaluation_seconds: float = Field(
        default=15.0, ge=0.5, le=3600, description="Seconds between two rule evaluations"
    )
    alert_lease_seconds: float = Field(
        default=20.0,
        ge=1,
        le=3600,
        description="How long the evaluating process's lease lasts without renewal: a dead "
        "evaluator is replaced within this plus 5 s",
    )
    alert_discord_webhook_url: str = Field(
        default="",
        repr=False,
        description="The Discord webhook the shipped rules' `discord` receiver posts to "
        "(critical and warning incidents); empty: off",
    )
    alert_webhook_url: str = Field(
        default="",
        repr=False,
        description="The URL the shipped rules' `webhook` receiver posts JSON to; its host "
        "must be in CLIPWATCH_ALERT_WEBHOOK_HOSTS; empty: off",
    )
    alert_webhook_hosts: str = Field(
        default="",
        description="Comma-separated hosts an alert webhook URL may name (empty: none)",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty or start with redis://, rediss:// or unix://")
        return value

    @field_validator("base_url", "twitch_api_url", "twitch_auth_url", "discord_api_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator(
        "rate_limit_anonymous",
        "rate_limit_token",
        "rate_limit_user",
        "rate_limit_auth",
        "rate_limit_route_test",
        "rate_limit_interactions",
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError("must look like '60/minute' or '1000 per hour'") from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for entry in filter(None, (e.strip() for e in value.split(","))):
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or a network") from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [e.strip() for e in self.trusted_proxies.split(",") if e.strip()]

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for origin in filter(None, (o.strip() for o in value.split(","))):
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an http(s) origin")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def demo_mode(self) -> bool:
        """No Twitch credentials (or --demo): simulated data in a separate database."""
        return self.demo or not (self.twitch_client_id and self.twitch_client_secret)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def eventsub_api_url(self) -> str:
        return self.twitch_eventsub_api_url or f"{self.twitch_api_url}/eventsub/subscriptions"

    @cached_property
    def signing_key(self) -> bytes:
        """The secret key, generated into var/secret.key on first use when not set."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.var_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()


def load_settings(**overrides: object) -> Settings:
    """Read settings; a bad value raises ConfigError naming the setting in one line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "CLIPWATCH_" + "_".join(str(p) for p in first["loc"]).upper()
        raise ConfigError(f"{name}: {first['msg']}") from None

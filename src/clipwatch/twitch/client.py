"""The Helix client: app token, rate-limit budget, retries, tolerant parsing.

Rules it follows (reference/twitch-api.md §1-2):
- App token by client credentials, validated at start and hourly; on a 401 it gets a new
  token and retries once, then gives up with TwitchAuthError.
- The points bucket: `Ratelimit-Remaining`/`-Reset` are read from every answer, and the
  client waits for the reset *before* the bucket runs dry. A 429 waits for the reset (or a
  backoff when the headers are missing) and is not a failed attempt.
- 5xx, timeouts, dropped connections and unparseable bodies are retried with exponential
  backoff and jitter, up to `max_attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
import structlog
from redis.exceptions import RedisError

from clipwatch.cache.token_bucket import SharedTokenBucket
from clipwatch.config import Settings
from clipwatch.errors import UpstreamUnavailable
from clipwatch.monitoring import metrics
from clipwatch.outbound import http_client

log = structlog.get_logger(__name__)
VALIDATE_EVERY = 3_600.0
# 100 ids are at most 100 live streams: one page of 100; more only if Twitch pages oddly.
STREAM_PAGES_MAX = 5


class TwitchError(UpstreamUnavailable):
    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class TwitchAuthError(TwitchError):
    pass


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to `base`, then doubles."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


@dataclass
class Budget:
    """What the last answer said of the points bucket; waits before it runs dry."""

    reserve: int = 2  # leave a few points for other callers and retries
    remaining: int | None = None
    reset_at: float | None = None  # epoch seconds
    waited: float = 0.0  # seconds spent waiting on the bucket (for progress displays)
    limit: int | None = None

    def update(self, headers: httpx.Headers) -> None:
        try:
            self.remaining = int(headers["ratelimit-remaining"])
            self.reset_at = float(headers["ratelimit-reset"])
            self.limit = int(headers["ratelimit-limit"])
        except (KeyError, ValueError):
            pass  # headers missing (mocks, proxies): keep what we knew

    def delay_before_request(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        if self.remaining is None or self.reset_at is None or self.remaining > self.reserve:
            return 0.0
        # The bucket refills continuously; waiting for one point's worth is enough.
        if self.limit:
            return max(0.0, min(self.reset_at - now, 60.0 / self.limit * (self.reserve + 1)))
        return max(0.0, self.reset_at - now)

    def delay_after_429(self, headers: httpx.Headers, attempt: int) -> float:
        self.update(headers)
        if "ratelimit-reset" in headers and self.reset_at is not None:
            return max(0.05, self.reset_at - time.time()) + random.uniform(0, 0.25)
        return backoff_delay(attempt, base=1.0, cap=10.0)  # no headers: back off blind


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    token_renewals: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class HelixClient:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        api_url: str,
        auth_url: str,
        timeout: float = 10.0,
        max_attempts: int = 6,
        http: httpx.AsyncClient | None = None,
        shared_budget: SharedTokenBucket | None = None,
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.api_url = api_url.rstrip("/")
        self.auth_url = auth_url.rstrip("/")
        self.max_attempts = max_attempts
        self._http = http or http_client(timeout=timeout)
        self._token: str | None = None
        self._validated_at = 0.0
        # Why Twitch last refused our app credentials (None once a token is granted): the
        # worker reports it, and the "Twitch auth failing" alert watches it.
        self.auth_error: str | None = None
        self._token_lock = asyncio.Lock()
        self.budget = Budget()
        # With Redis, every process draws from one bucket the size of Twitch's: together
        # they never spend faster than it refills. Without it, the headers alone guide us.
        self.shared_budget = shared_budget
        self.stats = RequestStats()

    async def __aenter__(self) -> HelixClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        if self.shared_budget is not None:
            await self.shared_budget.aclose()

    # --- the token ----------------------------------------------------------------------------

    async def _new_token(self) -> str:
        for attempt in range(1, self.max_attempts + 1):
            try:
                answer = await self._http.post(
                    f"{self.auth_url}/token",
                    data={
                        "client_id": self.client_id,
                        "client_secret": self._secret,
                        "grant_type": "client_credentials",
                    },
                )
            except httpx.TransportError:
                metrics.count_twitch_request("/token", None)
                await asyncio.sleep(backoff_delay(attempt))
                continue
            metrics.count_twitch_request("/token", answer.status_code)
            if answer.status_code >= 500:
                await asyncio.sleep(backoff_delay(attempt))
                continue
            if answer.status_code != 200:
                self.auth_error = f"Twitch refused the client credentials ({answer.status_code})"
                metrics.TWITCH_AUTH_FAILURES.inc()
                raise TwitchAuthError(self.auth_error, status=answer.status_code)
            token = _json(answer).get("access_token")
            if not isinstance(token, str):
                self.auth_error = "Twitch sent no access token"
                metrics.TWITCH_AUTH_FAILURES.inc()
                raise TwitchAuthError(self.auth_error)
            self.auth_error = None
            self._validated_at = time.monotonic()
            return token
        raise TwitchError("could not reach Twitch's token endpoint")

    async def _validate(self, token: str) -> bool:
        try:
            answer = await self._http.get(
                f"{self.auth_url}/validate", headers={"Authorization": f"OAuth {token}"}
            )
        except httpx.TransportError:
            return True  # cannot tell now; Helix answers will say
        return answer.status_code == 200

    async def token(self, *, renew: bool = False) -> str:
        async with self._token_lock:
            stale = time.monotonic() - self._validated_at >= VALIDATE_EVERY
            if self._token is not None and not renew and stale:
                if await self._validate(self._token):
                    self._validated_at = time.monotonic()
                else:
                    renew = True
            if self._token is None or renew:
                if self._token is not None:
                    self.stats.token_renewals += 1
                    metrics.TWITCH_TOKEN_RENEWALS.inc()
                self._token = await self._new_token()
            return self._token

    async def start(self) -> None:
        """Get a token and validate it (Twitch asks apps to validate at start)."""
        token = await self.token()
        if not await self._validate(token):
            await self.token(renew=True)

    # --- requests -----------------------------------------------------------------------------

    async def get(self, path: str, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        renewed = False
        failures = 0
        while True:
            delay = self.budget.delay_before_request()
            if self.shared_budget is not None:
                delay = max(delay, await self._draw_shared())
            if delay > 0:
                self.budget.waited += delay
                await asyncio.sleep(delay)
            token = await self.token()
            self.stats.requests += 1
            try:
                answer = await self._http.get(
                    f"{self.api_url}{path}",
                    params=list(params),
                    headers={"Authorization": f"Bearer {token}", "Client-Id": self.client_id},
                )
            except httpx.TransportError as exc:  # timeouts, refused and dropped connections
                metrics.count_twitch_request(path, None)
                failures = await self._failed(failures, f"{type(exc).__name__} on {path}")
                continue
            status = answer.status_code
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            metrics.count_twitch_request(path, status)
            self.budget.update(answer.headers)
            if self.budget.remaining is not None:
                metrics.TWITCH_BUDGET.set(self.budget.remaining)
            if self.shared_budget is not None and "ratelimit-remaining" in answer.headers:
                await self._observe_shared()
            if status == 429:
                self.stats.rate_limited += 1
                metrics.TWITCH_RATE_LIMITED.inc()
                wait = self.budget.delay_after_429(answer.headers, self.stats.rate_limited)
                log.info("twitch_rate_limited", wait_s=round(wait, 2))
                self.budget.waited += wait
                await asyncio.sleep(wait)
                continue
            if status == 401:
                if renewed:
                    self.auth_error = "Twitch rejected a fresh app token"
                    metrics.TWITCH_AUTH_FAILURES.inc()
                    raise TwitchAuthError(self.auth_error, status=401)
                renewed = True
                await self.token(renew=True)
                continue
            if status >= 500:
                failures = await self._failed(failures, f"{status} on {path}")
                continue
            if status >= 400:
                message = _json(answer).get("message", answer.reason_phrase)
                raise TwitchError(f"Twitch answered {status}: {message}", status=status)
            try:
                body = _loads(answer.content)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError:
                failures = await self._failed(failures, f"unparseable answer on {path}")
                continue
            return body

    async def _draw_shared(self) -> float:
        assert self.shared_budget is not None
        try:
            return await self.shared_budget.draw()
        except (RedisError, OSError):
            return 0.0  # Redis is an accelerator: fall back on the headers alone

    async def _observe_shared(self) -> None:
        assert self.shared_budget is not None
        if self.budget.remaining is None:
            return
        with contextlib.suppress(RedisError, OSError):
            await self.shared_budget.observe(self.budget.remaining)

    async def _failed(self, failures: int, what: str) -> int:
        failures += 1
        if failures >= self.max_attempts:
            raise TwitchError(f"Twitch kept failing: {what}")
        self.stats.retries += 1
        log.info("twitch_retry", reason=what, attempt=failures)
        await asyncio.sleep(backoff_delay(failures))
        return failures

    # --- log in with Twitch --------------------------------------------------------------------

    def authorize_url(self, *, redirect_uri: str, state: str) -> str:
        query = httpx.QueryParams(
            response_type="code",
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scope="",
            state=state,
        )
        return f"{self.auth_url}/authorize?{query}"

    async def identify_login(self, *, code: str, redirect_uri: str) -> tuple[str, str]:
        """Exchange an authorization code; the Twitch user (id, login) who consented."""
        try:
            answer = await self._http.post(
                f"{self.auth_url}/token",
                data={
                    "client_id": self.client_id,
                    "client_secret": self._secret,
                    "code": code,
                    "grant_type": "authorization_code",
                    "redirect_uri": redirect_uri,
                },
            )
            if answer.status_code != 200:
                raise TwitchAuthError("Twitch refused the login code", status=answer.status_code)
            token = _json(answer).get("access_token")
            who = await self._http.get(
                f"{self.auth_url}/validate", headers={"Authorization": f"OAuth {token}"}
            )
        except httpx.TransportError as exc:
            raise TwitchError(f"Twitch did not answer ({type(exc).__name__})") from None
        body = _json(who)
        if who.status_code != 200 or not body.get("user_id") or not body.get("login"):
            raise TwitchAuthError("Twitch did not say who logged in", status=who.status_code)
        # The user token is not kept: we only needed to know who this is.
        with contextlib.suppress(httpx.TransportError):
            await self._http.post(
                f"{self.auth_url}/revoke", data={"client_id": self.client_id, "token": token}
            )
        return str(body["user_id"]), str(body["login"])

    # --- endpoints ----------------------------------------------------------------------------

    async def get_clips_page(
        self,
        broadcaster_id: str,
        *,
        started_at: datetime,
        ended_at: datetime,
        after: str | None = None,
        first: int = 100,
    ) -> tuple[list[dict[str, Any]], str | None]:
        params = [
            ("broadcaster_id", broadcaster_id),
            ("started_at", _rfc3339(started_at)),
            ("ended_at", _rfc3339(ended_at)),
            ("first", str(first)),
        ]
        if after:
            params.append(("after", after))
        body = await self.get("/clips", params)
        cursor = (body.get("pagination") or {}).get("cursor") or None
        return list(body.get("data") or []), cursor

    async def get_clips_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        if len(ids) > 100:
            raise ValueError("at most 100 ids per call")
        body = await self.get("/clips", [("id", i) for i in ids])
        return list(body.get("data") or [])

    async def get_users(self, logins: Sequence[str]) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        for start in range(0, len(logins), 100):
            chunk = logins[start : start + 100]
            body = await self.get("/users", [("login", login) for login in chunk])
            users.extend(body.get("data") or [])
        return users

    async def get_games(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        games: list[dict[str, Any]] = []
        for start in range(0, len(ids), 100):
            body = await self.get("/games", [("id", i) for i in ids[start : start + 100]])
            games.extend(body.get("data") or [])
        return games

    async def get_streams(self, user_ids: Sequence[str]) -> list[Any]:
        """Get Streams for up to 100 channels (app token, 1 point a page): the live ones'
        stream objects as sent, odd ones too (twitch/helix.HelixStream reads them). Every
        page or an error: a caller that saw no exception saw the whole answer."""
        if len(user_ids) > 100:
            raise ValueError("at most 100 user ids per call")
        if not user_ids:
            return []
        query = [("user_id", i) for i in user_ids] + [("first", "100")]
        streams: list[Any] = []
        after: str | None = None
        for _ in range(STREAM_PAGES_MAX):
            body = await self.get("/streams", query + ([("after", after)] if after else []))
            data = body.get("data")
            if not isinstance(data, list):
                raise TwitchError("Get Streams answered without a data list")
            streams.extend(data)
            pagination = body.get("pagination")
            cursor = pagination.get("cursor") if isinstance(pagination, dict) else None
            if not cursor or not isinstance(cursor, str) or cursor == after:
                return streams
            after = cursor
        raise TwitchError("Get Streams kept paging")


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _loads(content: bytes) -> Any:
    """JSON as Twitch (or a proxy before it) may send it. orjson refuses escaped lone
    surrogates ("\\ud800"), which are valid JSON: one such title would make its whole page
    unreadable, so the standard parser gets a second look (HelixClip cleans the text)."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = _loads(answer.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# A person waits on the API's calls (tracking a channel, logging in): a few quick attempts,
# about 2 s of backoff at most, then a clear 503; the worker's client keeps the long tail.
INTERACTIVE_ATTEMPTS = 3


def client_from_settings(settings: Settings, *, max_attempts: int = 6) -> HelixClient | None:
    """The configured client (its budget shared through Redis when there is one), or None
    without Twitch credentials."""
    if not (settings.twitch_client_id and settings.twitch_client_secret):
        return None
    shared = None
    if settings.redis_url:
        points = settings.twitch_points_per_minute
        shared = SharedTokenBucket(
            settings.redis_url,
            f"{settings.redis_key_prefix}:twitch-budget:{settings.twitch_client_id}",
            capacity=points,
            per_second=points / 60,
        )
    return HelixClient(
        client_id=settings.twitch_client_id,
        client_secret=settings.twitch_client_secret,
        api_url=settings.twitch_api_url,
        auth_url=settings.twitch_auth_url,
        shared_budget=shared,
        max_attempts=max_attempts,
    )

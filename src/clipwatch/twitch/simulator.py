"""A Twitch simulator: Helix and the OAuth host as reference/twitch-api.md describes them.

Tests, benchmarks and demo mode talk to it over HTTP on loopback. It must never be kinder
than Twitch:

- Get Clips sorts by views, pages with opaque cursors tied to the query, defaults to a 7-day
  window after `started_at`, and a query yields at most `cap` (1,000) clips however many
  match: the rest are silently missing, as on Twitch.
- Wide windows omit clips that narrow windows return (the reference's field reports): a
  window longer than `WIDE_WINDOW` (31 days), or none at all, leaves out one clip in
  `WIDE_OMITS` (20), always the same ones.
- Clips appear only some minutes after their `created_at`; deleted clips vanish; with
  `views_grow` (demo mode) views keep rising for a clip's first three days.
- App tokens come from client credentials, expire (401), and `/validate` answers for them.
- One points bucket per client id (800 a minute by default) with `Ratelimit-*` headers;
  an empty bucket answers 429.
- Faults can be switched on: 5xx, slow answers, dropped connections, malformed JSON, a
  cursor that repeats itself, a 429 without headers, lookups by several ids that answer for
  a random half of them (`partial_lookup`; a lookup of one id stays truthful).

It is a plain ASGI application (only `api` may use FastAPI), served by uvicorn:
`clipwatch simulate twitch --port N`. `/_sim/*` endpoints let tests steer it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import secrets
import string
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from clipwatch.simhttp import Receive, Scope, Send, http_body
from clipwatch.simhttp import answer as _answer
from clipwatch.simhttp import raw as _raw
from clipwatch.twitch.eventsub_sim import Broadcaster, EventSubSim
from clipwatch.twitch.synthetic import CLIP_WORDS, LANGUAGES, World

CLIENT_ID = "simclientid0000000000000000000"
CLIENT_SECRET = "simclientsecret000000000000000"
DEFAULT_CAP = 1_000
WIDE_WINDOW = timedelta(days=31)
WIDE_OMITS = 20
GROWTH_HOURS = 72.0  # with `views_grow`, a clip gains views for its first three days
FAULT_MODES = (
    "5xx",
    "slow",
    "drop",
    "malformed",
    "repeat_cursor",
    "429_no_headers",
    "partial_lookup",
)


@dataclass
class SimClip:
    id: str
    broadcaster_id: str
    broadcaster_name: str
    creator_id: str
    creator_name: str
    video_id: str
    game_id: str
    language: str
    title: str
    view_count: int
    created_at: datetime
    visible_at: datetime
    duration: float
    vod_offset: int | None
    is_featured: bool
    deleted: bool = False
    views_per_hour: float = 0.0  # growth over its first GROWTH_HOURS (`views_grow`)
    # What a broken or hostile server sends instead: fields replaced as given (any JSON
    # value, NUL and control characters included) and keys left out, in Get Clips answers.
    raw: dict[str, Any] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)

    def views(self, now: datetime | None = None) -> int:
        if not self.views_per_hour:
            return self.view_count
        age = ((now or datetime.now(UTC)) - self.created_at).total_seconds() / 3600
        return self.view_count + int(self.views_per_hour * min(max(age, 0.0), GROWTH_HOURS))

    def helix(self) -> dict[str, Any]:
        data = self._helix()
        data.update(self.raw)
        for key in self.drop:
            data.pop(key, None)
        return data

    def _helix(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": f"https://clips.twitch.tv/{self.id}",
            "embed_url": f"https://clips.twitch.tv/embed?clip={self.id}",
            "broadcaster_id": self.broadcaster_id,
            "broadcaster_name": self.broadcaster_name,
            "creator_id": self.creator_id,
            "creator_name": self.creator_name,
            "video_id": self.video_id,
            "game_id": self.game_id,
            "language": self.language,
            "title": self.title,
            "view_count": self.views(),
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "thumbnail_url": f"https://clips-media-assets2.twitch.tv/{self.id}-preview-480x272.jpg",
            "duration": self.duration,
            "vod_offset": self.vod_offset,
            "is_featured": self.is_featured,
        }


@dataclass
class SimChannel:
    id: str
    login: str
    display_name: str
    created_at: datetime
    clips: list[SimClip] = field(default_factory=list)


@dataclass
class SimStream:
    """A live stream: what Get Streams answers and stream.online said."""

    id: str
    started_at: datetime
    type: str = "live"
    viewer_count: int = 0


@dataclass
class ChannelInfo:
    """The channel's title, category and language (Get Streams and channel.update)."""

    title: str
    game_id: str
    game_name: str
    language: str = "en"


@dataclass
class UserToken:
    login: str
    user_id: str
    expires: float  # monotonic
    refresh: str


@dataclass
class Bucket:
    """Twitch's points bucket: `limit` points, refilled continuously over `period` seconds."""

    limit: int
    period: float = 60.0
    points: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.points = float(self.limit)

    def take(self) -> bool:
        now = time.monotonic()
        self.points = min(self.limit, self.points + (now - self.updated) * self.limit / self.period)
        self.updated = now
        if self.points < 1:
            return False
        self.points -= 1
        return True

    def headers(self) -> dict[str, str]:
        missing = self.limit - self.points
        reset = time.time() + missing * self.period / self.limit
        return {
            "Ratelimit-Limit": str(self.limit),
            "Ratelimit-Remaining": str(int(self.points)),
            "Ratelimit-Reset": str(int(reset) + 1),
        }


@dataclass
class Fault:
    mode: str
    remaining: int  # how many more requests it hits
    seconds: float = 0.0  # for "slow"


class TwitchSimulator:
    """The simulated Twitch: its world, tokens, bucket, faults, and what it was asked."""

    def __init__(
        self,
        *,
        seed: int = 1,
        points_per_minute: int = 800,
        bucket_period: float = 60.0,
        token_lifetime: int = 5_011_271,
        cap: int = DEFAULT_CAP,
        appear_delay: timedelta = timedelta(minutes=2),
        views_grow: bool = False,
    ) -> None:
        self.seed = seed
        self.views_grow = views_grow
        self.rng = random.Random(seed)
        self.fault_rng = random.Random(f"faults:{seed}")  # apart: faults leave the world as is
        self.world = World(seed=seed, channels=50, games=40, vocabulary=2_000, creators=5_000)
        self.channels: dict[str, SimChannel] = {}
        self.clips_by_id: dict[str, SimClip] = {}
        self.tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self.bucket = Bucket(points_per_minute, bucket_period)
        self.token_lifetime = token_lifetime
        self.cap = cap
        self.appear_delay = appear_delay
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (path, query) of every Helix request
        self.rate_limited = 0
        self._serial = 0
        # "Log in with Twitch": who is signed in at the consent page, and issued codes.
        self.consenting_login: str | None = None
        self.live: dict[str, datetime] = {}  # channel id -> stream start, for Get Streams
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (login, redirect_uri)
        self.user_tokens: dict[str, str] = {}  # user access token -> login
        # User tokens: access token -> its grant; refresh token -> access token it last made.
        self.user_grants: dict[str, UserToken] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.user_ids: dict[str, str] = {}  # logins of users who are not channels -> id
        self.user_buckets: dict[str, Bucket] = {}  # a bucket per client id + user
        self.user_token_lifetime = 14_124
        # Live state: `live` (channel id -> stream start) is what Get Streams reads; `streams`
        # and `info` add the details go_live/update_channel set (defaults when a test only
        # sets `live`).
        self.streams: dict[str, SimStream] = {}
        self.info: dict[str, ChannelInfo] = {}
        self.eventsub = EventSubSim(self._broadcaster)

    # --- the world ----------------------------------------------------------------------------

    def add_channel(
        self,
        login: str,
        *,
        clips: int = 0,
        years: float = 3.0,
        hot_days: int = 0,
        clips_per_hot_day: int = 1_500,
        now: datetime | None = None,
    ) -> SimChannel:
        """A channel with `clips` clips over `years`, `hot_days` of them packed into single
        days (more than the 1,000 one query can return)."""
        now = now or datetime.now(UTC)
        index = len(self.channels)
        channel = SimChannel(
            id=str(70_000_000 + index * 101),
            login=login,
            display_name=login.title().replace("_", ""),
            created_at=now - timedelta(days=365 * years + 30),
        )
        self.channels[channel.id] = channel
        span = int(365 * years * 86_400)
        hot = [now - timedelta(seconds=self.rng.randint(86_400 * 2, span)) for _ in range(hot_days)]
        for i in range(clips):
            if i < hot_days * clips_per_hot_day:
                day = hot[i // clips_per_hot_day]
                created = day - timedelta(seconds=self.rng.randint(0, 86_399))
            else:
                created = now - timedelta(seconds=self.rng.randint(3_600, span))
            self.add_clip(channel.id, created_at=created, visible_at=created)
        return channel

    def add_clip(
        self,
        broadcaster_id: str,
        *,
        created_at: datetime | None = None,
        visible_at: datetime | None = None,
        view_count: int | None = None,
        title: str | None = None,
    ) -> SimClip:
        """A new clip; by default created now and visible after `appear_delay`."""
        channel = self.channels[broadcaster_id]
        created = created_at or datetime.now(UTC)
        rng = self.rng
        self._serial += 1
        suffix = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))
        slug = "".join(rng.choice(CLIP_WORDS) for _ in range(4)) + f"-{suffix}{self._serial}"
        creator_id, creator_name = self.world.creators[rng.randrange(len(self.world.creators))]
        words = self.world.vocabulary
        has_vod = rng.random() < 0.7
        clip = SimClip(
            id=slug,
            broadcaster_id=channel.id,
            broadcaster_name=channel.display_name,
            creator_id=creator_id,
            creator_name=creator_name,
            video_id=str(2_000_000_000 + rng.randint(0, 10**8)) if has_vod else "",
            game_id=self.world.games[rng.randrange(len(self.world.games))].id,
            language=rng.choice(LANGUAGES),
            title=title
            or " ".join(words[min(int(rng.paretovariate(0.8)), len(words) - 1)] for _ in range(3)),
            view_count=view_count if view_count is not None else int(rng.paretovariate(1.1)) - 1,
            created_at=created.replace(microsecond=0),
            visible_at=visible_at or created + self.appear_delay,
            duration=round(rng.uniform(5.0, 60.0), 1),
            vod_offset=rng.randint(0, 40_000) if has_vod else None,
            is_featured=rng.random() < 0.02,
        )
        if self.views_grow and view_count is None:
            clip.views_per_hour = rng.paretovariate(1.2)
        channel.clips.append(clip)
        self.clips_by_id[clip.id] = clip
        return clip

    def visible_clips(self, broadcaster_id: str, now: datetime | None = None) -> list[SimClip]:
        """The truth: what a complete archive of this channel holds now."""
        now = now or datetime.now(UTC)
        channel = self.channels[broadcaster_id]
        return [c for c in channel.clips if not c.deleted and c.visible_at <= now]

    def delete_clip(self, clip_id: str) -> None:
        self.clips_by_id[clip_id].deleted = True

    def add_fault(self, mode: str, count: int = 1, seconds: float = 0.0) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        self.faults.append(Fault(mode, count, seconds))

    def expire_tokens(self) -> None:
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    # --- users and user tokens ----------------------------------------------------------------

    def user_id(self, login: str) -> str:
        """A channel's id, or a stable id for a user who has no channel here."""
        login = login.lower()
        for channel in self.channels.values():
            if channel.login == login:
                return channel.id
        if login not in self.user_ids:
            self.user_ids[login] = str(80_000_000 + len(self.user_ids) * 7)
        return self.user_ids[login]

    def issue_user_token(self, login: str, *, lifetime_s: int | None = None) -> tuple[str, str]:
        """A user access token and its refresh token, as the code exchange gives them."""
        lifetime = self.user_token_lifetime if lifetime_s is None else lifetime_s
        access, refresh = secrets.token_hex(15), secrets.token_hex(25)
        self.user_tokens[access] = login.lower()
        self.user_grants[access] = UserToken(
            login=login.lower(),
            user_id=self.user_id(login),
            expires=time.monotonic() + lifetime,
            refresh=refresh,
        )
        self.refresh_tokens[refresh] = access
        return access, refresh

    def expire_user_token(self, access_token: str) -> None:
        """401 for it from now on (Helix and /validate); its refresh token still works."""
        self.user_grants[access_token].expires = 0.0

    def _user_grant(self, access_token: str) -> UserToken | None:
        grant = self.user_grants.get(access_token)
        if grant is None or grant.expires <= time.monotonic():
            return None
        return grant

    def _refresh(self, refresh_token: str) -> tuple[str, str] | None:
        """New access and refresh tokens; the old refresh token is spent."""
        access = self.refresh_tokens.pop(refresh_token, None)
        if access is None:
            return None
        grant = self.user_grants[access]
        return self.issue_user_token(grant.login)

    # --- live state ---------------------------------------------------------------------------

    def _broadcaster(self, user_id: str) -> Broadcaster | None:
        channel = self.channels.get(user_id)
        if channel is not None:
            return Broadcaster(channel.id, channel.login, channel.display_name)
        for login, uid in self.user_ids.items():
            if uid == user_id:
                return Broadcaster(uid, login, login.title().replace("_", ""))
        return None

    def _info(self, channel_id: str) -> ChannelInfo:
        if channel_id not in self.info:
            channel = self.channels[channel_id]
            game = self.world.games[int(channel.id) % len(self.world.games)]
            self.info[channel_id] = ChannelInfo(f"{channel.display_name} live", game.id, game.name)
        return self.info[channel_id]

    def _stream(self, channel_id: str) -> SimStream:
        stream = self.streams.get(channel_id)
        started = self.live[channel_id]
        if stream is None or stream.started_at != started:
            # A test set `live` by hand: a stream with default details.
            stream = SimStream(str(90_000_000 + int(channel_id) % 1_000_000), started, "live", 100)
            self.streams[channel_id] = stream
        return stream

    def go_live(
        self,
        channel_id: str,
        *,
        title: str = "...",
        game_id: str | None = None,
        game_name: str | None = None,
        viewer_count: int = 0,
        stream_type: str = "live",
        started_at: datetime | None = None,
    ) -> str:
        """The channel goes live: Get Streams lists it and stream.online goes out. Returns the
        stream id (the current one if it is live already: nothing is sent then)."""
        channel = self.channels[channel_id]
        if channel_id in self.live:
            return self._stream(channel_id).id
        info = self._info(channel_id)
        info.title = title
        if game_id is not None:
            info.game_id = game_id
            info.game_name = game_name or next(
                (g.name for g in self.world.games if g.id == game_id), ""
            )
        elif game_name is not None:
            info.game_name = game_name
        self._serial += 1
        started = started_at or datetime.now(UTC)
        stream = SimStream(str(40_000_000_000 + self._serial), started, stream_type, viewer_count)
        self.streams[channel_id] = stream
        self.live[channel_id] = started
        self.eventsub.notify(
            "stream.online",
            channel_id,
            {
                "id": stream.id,
                "broadcaster_user_id": channel.id,
                "broadcaster_user_login": channel.login,
                "broadcaster_user_name": channel.display_name,
                "type": stream_type,
                "started_at": _event_time(started),
            },
        )
        return stream.id

    def go_offline(self, channel_id: str) -> None:
        """Get Streams stops listing it and stream.offline goes out (if it was live)."""
        channel = self.channels[channel_id]
        if self.live.pop(channel_id, None) is None:
            return
        self.streams.pop(channel_id, None)
        self.eventsub.notify(
            "stream.offline",
            channel_id,
            {
                "broadcaster_user_id": channel.id,
                "broadcaster_user_login": channel.login,
                "broadcaster_user_name": channel.display_name,
            },
        )

    def update_channel(
        self,
        channel_id: str,
        *,
        title: str | None = None,
        game_id: str | None = None,
        game_name: str | None = None,
        language: str | None = None,
    ) -> None:
        """New title/category/language (live or not): Get Streams shows it, channel.update v2
        goes out."""
        channel = self.channels[channel_id]
        info = self._info(channel_id)
        if title is not None:
            info.title = title
        if game_id is not None:
            info.game_id = game_id
            info.game_name = game_name or next(
                (g.name for g in self.world.games if g.id == game_id), ""
            )
        elif game_name is not None:
            info.game_name = game_name
        if language is not None:
            info.language = language
        self.eventsub.notify(
            "channel.update",
            channel_id,
            {
                "broadcaster_user_id": channel.id,
                "broadcaster_user_login": channel.login,
                "broadcaster_user_name": channel.display_name,
                "title": info.title,
                "language": info.language,
                "category_id": info.game_id,
                "category_name": info.game_name,
                "content_classification_labels": [],
            },
        )

    # --- HTTP ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if scope["path"] == "/ws":
                await self.eventsub.serve(scope, receive, send)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            return
        body = await http_body(scope, receive, send)
        if body is None:
            return
        query = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        path: str = scope["path"]
        form = "application/json" not in headers.get("content-type", "")
        if scope["method"] == "POST" and body and form and not path.startswith("/helix/"):
            query.update(parse_qs(body.decode(errors="replace"), keep_blank_values=True))
        if path.startswith("/oauth2/"):
            await self._oauth(path, scope["method"], query, headers, send)
        elif path.startswith("/helix/"):
            await self._helix(path, scope, query, headers, send, body)
        elif path.startswith("/_sim/"):
            await self._control(path, query, send, body)
        else:
            await _answer(send, 404, {"error": "Not Found", "status": 404, "message": "no route"})

    async def _oauth(
        self,
        path: str,
        method: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        send: Send,
    ) -> None:
        if path == "/oauth2/authorize":
            await self._authorize(query, send)
            return
        bearer = headers.get("authorization", "").partition(" ")[2]
        code_grant = _one(query, "grant_type") == "authorization_code"
        if path == "/oauth2/token" and method == "POST" and code_grant:
            await self._exchange_code(query, send)
            return
        if path == "/oauth2/validate" and bearer in self.user_grants:
            grant = self._user_grant(bearer)
            if grant is None:
                await _raw(send, 401, b"", {})  # expired: like an app token, no JSON promised
                return
            await _answer(
                send,
                200,
                {
                    "client_id": CLIENT_ID,
                    "login": grant.login,
                    "user_id": grant.user_id,
                    "scopes": [],
                    "expires_in": int(grant.expires - time.monotonic()),
                },
            )
            return
        if (
            path == "/oauth2/token"
            and method == "POST"
            and _one(query, "grant_type") == "refresh_token"
        ):
            await self._refresh_grant(query, send)
            return
        if path == "/oauth2/token" and method == "POST":
            if (
                _one(query, "grant_type") != "client_credentials"
                or _one(query, "client_id") != CLIENT_ID
                or _one(query, "client_secret") != CLIENT_SECRET
            ):
                await _answer(send, 400, {"status": 400, "message": "invalid client secret"})
                return
            token = secrets.token_hex(15)
            self.tokens[token] = time.monotonic() + self.token_lifetime
            await _answer(
                send,
                200,
                {"access_token": token, "expires_in": self.token_lifetime, "token_type": "bearer"},
            )
        elif path == "/oauth2/validate":
            token = headers.get("authorization", "").partition(" ")[2]
            left = self.tokens.get(token, 0.0) - time.monotonic()
            if left <= 0:
                await _raw(send, 401, b"", {})  # the mock's empty body: not always JSON
                return
            await _answer(
                send, 200, {"client_id": CLIENT_ID, "scopes": [], "expires_in": int(left)}
            )
        elif path == "/oauth2/revoke" and method == "POST":
            revoked = _one(query, "token") or ""
            self.tokens.pop(revoked, None)
            if revoked in self.user_grants:
                self.expire_user_token(revoked)
            await _raw(send, 200, b"", {})
        else:
            await _answer(send, 404, {"status": 404, "message": "no route"})

    async def _authorize(self, query: dict[str, list[str]], send: Send) -> None:
        """The consent page, answered at once for `consenting_login` (or refused)."""
        redirect = _one(query, "redirect_uri") or ""
        if _one(query, "client_id") != CLIENT_ID or _one(query, "response_type") != "code":
            await _answer(send, 400, {"status": 400, "message": "invalid client or response type"})
            return
        state = _one(query, "state") or ""
        if self.consenting_login is None:
            params = {
                "error": "access_denied",
                "error_description": "The user denied you access",
                "state": state,
            }
        else:
            code = secrets.token_hex(15)
            self.codes[code] = (self.consenting_login, redirect)
            params = {"code": code, "scope": _one(query, "scope") or "", "state": state}
        location = f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(params)}"
        await _raw(send, 302, b"", {"location": location}, "text/plain")

    async def _exchange_code(self, query: dict[str, list[str]], send: Send) -> None:
        grant = self.codes.pop(_one(query, "code") or "", None)
        if (
            grant is None
            or grant[1] != _one(query, "redirect_uri")
            or _one(query, "client_secret") != CLIENT_SECRET
        ):
            await _answer(send, 400, {"status": 400, "message": "Invalid authorization code"})
            return
        token, refresh = self.issue_user_token(grant[0])
        await _answer(
            send,
            200,
            {
                "access_token": token,
                "refresh_token": refresh,
                "expires_in": self.user_token_lifetime,
                "scope": [],
                "token_type": "bearer",
            },
        )

    async def _refresh_grant(self, query: dict[str, list[str]], send: Send) -> None:
        if _one(query, "client_id") != CLIENT_ID or _one(query, "client_secret") != CLIENT_SECRET:
            await _answer(send, 400, {"status": 400, "message": "invalid client secret"})
            return
        tokens = self._refresh(_one(query, "refresh_token") or "")
        if tokens is None:
            await _answer(
                send,
                400,
                {"error": "Bad Request", "status": 400, "message": "Invalid refresh token"},
            )
            return
        await _answer(
            send,
            200,
            {
                "access_token": tokens[0],
                "refresh_token": tokens[1],
                "expires_in": self.user_token_lifetime,
                "scope": [],
                "token_type": "bearer",
            },
        )

    async def _helix(
        self,
        path: str,
        scope: Scope,
        query: dict[str, list[str]],
        headers: dict[str, str],
        send: Send,
        body: bytes = b"",
    ) -> None:
        self.requests.append((path, scope.get("query_string", b"").decode()))
        lookup = path == "/helix/clips" and len(set(query.get("id", []))) > 1
        fault = self._next_fault(paging="after" in query, lookup=lookup)
        if fault == "drop":
            # Headers out, then the connection dies mid-body.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionResetError("simulated dropped connection")
        if fault == "slow":
            await asyncio.sleep(self._slow_seconds)
        token = headers.get("authorization", "")
        scheme, _, value = token.partition(" ")
        if scheme.lower() != "bearer" or headers.get("client-id") != CLIENT_ID:
            await _error(send, 401, "Missing Client ID or OAuth token", {})
            return
        user = self._user_grant(value)
        app = self.tokens.get(value, 0.0) > time.monotonic()
        if user is None and not app:
            await _error(send, 401, "Invalid OAuth token", {})
            return
        eventsub = path == "/helix/eventsub/subscriptions"
        if eventsub and user is None:
            # Reference §5.4: the websocket transport needs a user token; app tokens get 401.
            await _error(send, 401, "invalid transport and auth combination", {})
            return
        if fault == "429_no_headers":
            self.rate_limited += 1
            await _error(send, 429, "Too Many Requests", {})
            return
        bucket = self.bucket
        if user is not None:  # a bucket per client id + user (reference §2.1)
            bucket = self.user_buckets.setdefault(
                user.user_id, Bucket(self.bucket.limit, self.bucket.period)
            )
        if not bucket.take():
            self.rate_limited += 1
            await _error(send, 429, "Too Many Requests", bucket.headers())
            return
        limit_headers = bucket.headers()
        if fault == "5xx":
            await _error(send, 503, "Service Unavailable", limit_headers)
            return
        if eventsub and user is not None:
            code, answer = self.eventsub.helix(
                scope["method"],
                query,
                body,
                user.user_id,
                headers.get("content-type", ""),
            )
            if answer is None:
                await _raw(send, code, b"", limit_headers)
            else:
                await _answer(send, code, answer, limit_headers)
            return
        try:
            if path == "/helix/clips":
                status, payload = self._get_clips(
                    query,
                    repeat_cursor=fault == "repeat_cursor",
                    partial=fault == "partial_lookup",
                )
            elif path == "/helix/users":
                status, payload = self._get_users(query, user.login if user else None)
            elif path == "/helix/games":
                status, payload = self._get_games(query)
            elif path == "/helix/streams":
                status, payload = self._get_streams(query)
            elif path == "/helix/videos":
                status, payload = self._get_videos(query)
            else:
                status, payload = 404, _error_body(404, "no such endpoint")
        except _BadRequest as exc:
            status, payload = 400, _error_body(400, str(exc))
        if fault == "malformed":
            await _raw(send, 200, b'{"data": [{"id": "trunc', limit_headers)
            return
        await _answer(send, status, payload, limit_headers)

    _slow_seconds = 0.0

    async def _control(
        self, path: str, query: dict[str, list[str]], send: Send, body: bytes = b""
    ) -> None:
        """Steering for tests that run the simulator in another process."""
        try:
            if path.startswith(("/_sim/live/", "/_sim/eventsub/", "/_sim/users/")):
                await _answer(send, 200, self._live_control(path, query, body))
            elif path == "/_sim/truth":
                ids = sorted(c.id for c in self.visible_clips(_one(query, "broadcaster_id") or ""))
                await _answer(send, 200, {"ids": ids})
            elif path == "/_sim/channels":
                await _answer(
                    send,
                    200,
                    {
                        "data": [
                            {"id": c.id, "login": c.login, "clips": len(c.clips)}
                            for c in self.channels.values()
                        ]
                    },
                )
            elif path == "/_sim/requests":
                await _answer(
                    send, 200, {"requests": self.requests, "rate_limited": self.rate_limited}
                )
            elif path == "/_sim/clip":
                clip = self.add_clip(
                    _one(query, "broadcaster_id") or "",
                    visible_at=datetime.now(UTC) if _one(query, "visible") == "now" else None,
                )
                await _answer(send, 200, clip.helix())
            elif path == "/_sim/delete":
                self.delete_clip(_one(query, "id") or "")
                await _answer(send, 200, {})
            elif path == "/_sim/views":
                clip = self.clips_by_id[_one(query, "id") or ""]
                clip.view_count = _int(query, "view_count", clip.views())
                clip.views_per_hour = 0.0  # from now on exactly what the test said
                await _answer(send, 200, clip.helix())
            elif path == "/_sim/fault":
                self.add_fault(
                    _one(query, "mode") or "",
                    _int(query, "count", 1),
                    float(_one(query, "seconds") or 0),
                )
                await _answer(send, 200, {})
            elif path == "/_sim/faults/clear":
                self.faults.clear()
                await _answer(send, 200, {})
            elif path == "/_sim/raw":
                # ?id=CLIP&fields={"title": "a\u0000b"}&drop=created_at,id
                clip = self.clips_by_id[_one(query, "id") or ""]
                fields = json.loads(_one(query, "fields") or "{}")
                if not isinstance(fields, dict):
                    raise ValueError("fields must be a JSON object")
                clip.raw.update(fields)
                clip.drop.update(k for k in (_one(query, "drop") or "").split(",") if k)
                await _answer(send, 200, clip.helix())
            elif path == "/_sim/expire-tokens":
                self.expire_tokens()
                await _answer(send, 200, {})
            else:
                await _answer(send, 404, _error_body(404, "no such control"))
        except (KeyError, ValueError, _BadRequest) as exc:
            await _answer(send, 400, _error_body(400, f"bad control request: {exc}"))

    def _live_control(self, path: str, query: dict[str, list[str]], body: bytes) -> Any:
        """/_sim/live/*, /_sim/users/*, /_sim/eventsub/*: the Python controls over HTTP
        (docs/twitch.md, "EventSub simulator")."""
        es = self.eventsub
        channel = _one(query, "channel_id") or ""
        session = _one(query, "session_id")
        if path == "/_sim/live/online":
            viewers = _int(query, "viewer_count", 0)
            stream_id = self.go_live(
                channel,
                title=_one(query, "title") or "...",
                game_id=_one(query, "game_id"),
                game_name=_one(query, "game_name"),
                viewer_count=viewers,
                stream_type=_one(query, "type") or "live",
            )
            return {"stream_id": stream_id}
        if path == "/_sim/live/offline":
            self.go_offline(channel)
            return {}
        if path == "/_sim/live/update":
            self.update_channel(
                channel,
                title=_one(query, "title"),
                game_id=_one(query, "game_id"),
                game_name=_one(query, "game_name"),
                language=_one(query, "language"),
            )
            return {}
        if path == "/_sim/live/viewers":
            self._stream(channel).viewer_count = _int(query, "viewer_count", 0)
            return {}
        if path == "/_sim/users/token":
            lifetime = _one(query, "lifetime_s")
            access, refresh = self.issue_user_token(
                _one(query, "login") or "", lifetime_s=int(lifetime) if lifetime else None
            )
            return {"access_token": access, "refresh_token": refresh}
        if path == "/_sim/users/expire":
            self.expire_user_token(_one(query, "access_token") or "")
            return {}
        if path == "/_sim/eventsub/sessions":
            return {"data": [asdict(v) for v in es.sessions()]}
        if path == "/_sim/eventsub/subscriptions":
            return {"data": [s.view() | {"user_id": s.user_id} for s in es.subscriptions.values()]}
        if path == "/_sim/eventsub/messages":
            return {
                "notifications_sent": es.notifications_sent,
                "data": [{"session_id": m.session_id, "message": m.message} for m in es.messages],
            }
        if path == "/_sim/eventsub/config":
            for name in ("max_total_cost", "max_connections", "max_subscriptions_per_connection"):
                if _one(query, name) is not None:
                    setattr(es, name, _int(query, name, 0))
            for name in ("min_keepalive_s", "grace_s"):
                if _one(query, name) is not None:
                    setattr(es, name, float(_one(query, name) or 0))
            return {
                "min_keepalive_s": es.min_keepalive_s,
                "grace_s": es.grace_s,
                "max_total_cost": es.max_total_cost,
                "max_connections": es.max_connections,
                "max_subscriptions_per_connection": es.max_subscriptions_per_connection,
            }
        if path == "/_sim/eventsub/reconnect":
            return {"reconnect_url": es.reconnect(session)}
        if path == "/_sim/eventsub/expire-grace":
            es.expire_grace(session)
            return {}
        if path == "/_sim/eventsub/close":
            es.close(_int(query, "code", 4000), session)
            return {}
        if path == "/_sim/eventsub/revoke":
            es.revoke(_one(query, "id") or "", _one(query, "status") or "authorization_revoked")
            return {}
        if path == "/_sim/eventsub/duplicate":
            es.duplicate_next(_int(query, "n", 1))
            return {}
        if path == "/_sim/eventsub/silence":
            es.silence(session)
            return {}
        if path == "/_sim/eventsub/unsilence":
            es.unsilence(session)
            return {}
        if path == "/_sim/eventsub/inject":
            # The request body is sent as it is (any text); or ?message= for short ones.
            es.inject(body.decode(errors="replace") or _one(query, "message") or "", session)
            return {}
        raise KeyError(path)

    def _next_fault(self, *, paging: bool, lookup: bool = False) -> str | None:
        while self.faults and self.faults[0].remaining <= 0:
            self.faults.pop(0)
        if not self.faults:
            return None
        fault = self.faults[0]
        if fault.mode == "repeat_cursor" and not paging:
            return None  # only a request for a next page can get its cursor back
        if fault.mode == "partial_lookup" and not lookup:
            return None  # only a lookup of several ids can be answered in part
        fault.remaining -= 1
        self._slow_seconds = fault.seconds
        return fault.mode

    # --- endpoints ----------------------------------------------------------------------------

    def _get_clips(
        self,
        query: dict[str, list[str]],
        *,
        repeat_cursor: bool = False,
        partial: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        selectors = [k for k in ("broadcaster_id", "game_id", "id") if query.get(k)]
        if len(selectors) != 1:
            raise _BadRequest("one of broadcaster_id, game_id or id is required")
        now = datetime.now(UTC)
        if selectors[0] == "id":
            ids = query["id"]
            if len(ids) > 100:
                raise _BadRequest("too many ids: at most 100")
            asked = list(dict.fromkeys(ids))
            if partial:  # a random half of the ids, the rest silently left out
                kept = set(self.fault_rng.sample(asked, len(asked) // 2))
                asked = [i for i in asked if i in kept]
            found = [self.clips_by_id.get(i) for i in asked]
            data = [c.helix() for c in found if c and not c.deleted and c.visible_at <= now]
            return 200, {"data": data, "pagination": {}}
        first = _int(query, "first", 20)
        if not 1 <= first <= 100:
            raise _BadRequest("first must be 1-100")
        started = _time(query, "started_at")
        ended = _time(query, "ended_at")
        if ended is not None and started is None:
            raise _BadRequest("ended_at needs started_at")
        if started is not None and ended is None:
            ended = started + timedelta(days=7)
        if selectors[0] == "broadcaster_id":
            channel = self.channels.get(query["broadcaster_id"][0])
            pool = channel.clips if channel else []
        else:
            game = query["game_id"][0]
            pool = [c for c in self.clips_by_id.values() if c.game_id == game]
        featured = _one(query, "is_featured")
        matches = [
            c
            for c in pool
            if not c.deleted
            and c.visible_at <= now
            and (started is None or c.created_at >= started)
            and (ended is None or c.created_at < ended)
            and (featured is None or c.is_featured == (featured == "true"))
        ]
        if started is None or ended is None or ended - started > WIDE_WINDOW:
            matches = [c for c in matches if not _omitted_when_wide(c.id)]
        matches.sort(key=lambda c: (-c.views(now), c.id))
        matches = matches[: self.cap]  # however many match, one query yields at most this
        fingerprint = _fingerprint(query)
        offset = 0
        after = _one(query, "after")
        if after:
            offset = _decode_cursor(after, fingerprint)
        page = matches[offset : offset + first]
        pagination: dict[str, str] = {}
        if offset + first < len(matches):
            pagination["cursor"] = (
                after if repeat_cursor and after else _cursor(fingerprint, offset + first)
            )
        return 200, {"data": [c.helix() for c in page], "pagination": pagination}

    def _get_users(
        self, query: dict[str, list[str]], token_login: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        ids, logins = query.get("id", []), [x.lower() for x in query.get("login", [])]
        if len(ids) + len(logins) > 100:
            raise _BadRequest("at most 100 ids and logins")
        if not ids and not logins and token_login is not None:
            logins = [token_login]  # a user token and no parameters: the token's user
        if not ids and not logins:
            raise _BadRequest("an app token needs id or login")
        data = [
            {
                "id": c.id,
                "login": c.login,
                "display_name": c.display_name,
                "type": "",
                "broadcaster_type": "partner",
                "description": "",
                "profile_image_url": f"https://static-cdn.jtvnw.net/{c.login}-profile.png",
                "offline_image_url": "",
                "created_at": c.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            for c in self.channels.values()
            if c.id in ids or c.login in logins
        ]
        return 200, {"data": data}

    def _get_games(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        ids, names = query.get("id", []), query.get("name", [])
        if not ids and not names:
            raise _BadRequest("id or name is required")
        data = [
            {
                "id": g.id,
                "name": g.name,
                "box_art_url": f"https://static-cdn.jtvnw.net/ttv-boxart/{g.id}-{{width}}x{{height}}.jpg",
                "igdb_id": "",
            }
            for g in self.world.games
            if g.id in ids or g.name in names
        ]
        return 200, {"data": data}

    def _get_streams(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """Only live channels come back; an empty list means everyone asked is offline.
        Most viewers first; `first` 1-100 (default 20) a page, cursors tied to the query."""
        ids, logins = query.get("user_id", []), [x.lower() for x in query.get("user_login", [])]
        if len(ids) > 100 or len(logins) > 100:
            raise _BadRequest("at most 100 user_id and 100 user_login")
        first = _int(query, "first", 20)
        if not 1 <= first <= 100:
            raise _BadRequest("first must be 1-100")
        kind = _one(query, "type") or "all"
        if kind not in ("all", "live"):
            raise _BadRequest("type must be all or live")
        games, languages = query.get("game_id", []), query.get("language", [])
        rows: list[dict[str, Any]] = []
        for channel in self.channels.values():
            wanted = (not ids and not logins) or channel.id in ids or channel.login in logins
            if not wanted or channel.id not in self.live:
                continue
            stream, info = self._stream(channel.id), self._info(channel.id)
            if (games and info.game_id not in games) or (
                languages and info.language not in languages
            ):
                continue
            rows.append(
                {
                    "id": stream.id,
                    "user_id": channel.id,
                    "user_login": channel.login,
                    "user_name": channel.display_name,
                    "game_id": info.game_id,
                    "game_name": info.game_name,
                    "type": "live",  # Get Streams says "live" whatever stream.online's type
                    "title": info.title,
                    "viewer_count": stream.viewer_count,
                    "started_at": stream.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "language": info.language,
                    "thumbnail_url": "https://static-cdn.jtvnw.net/previews-ttv/live_user_"
                    f"{channel.login}-{{width}}x{{height}}.jpg",
                    "tags": [],
                    "tag_ids": [],
                    "is_mature": False,
                }
            )
        rows.sort(key=lambda r: (-int(r["viewer_count"]), str(r["user_id"])))
        fingerprint = _fingerprint(query)
        after = _one(query, "after")
        offset = _decode_cursor(after, fingerprint) if after else 0
        pagination: dict[str, str] = {}
        if offset + first < len(rows):
            pagination["cursor"] = _cursor(fingerprint, offset + first)
        return 200, {"data": rows[offset : offset + first], "pagination": pagination}

    def _get_videos(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """Videos by id: the VODs clips point at (`video_id`)."""
        selectors = [k for k in ("id", "user_id", "game_id") if query.get(k)]
        if len(selectors) != 1:
            raise _BadRequest("exactly one of id, user_id or game_id is required")
        if selectors[0] != "id":
            return 200, {"data": [], "pagination": {}}
        ids = query["id"]
        if len(ids) > 100:
            raise _BadRequest("at most 100 ids")
        vods = {c.video_id: c for c in self.clips_by_id.values() if c.video_id in ids}
        if not vods:
            return 404, _error_body(404, "videos not found")
        data = [
            {
                "id": video_id,
                "stream_id": None,
                "user_id": clip.broadcaster_id,
                "user_login": self.channels[clip.broadcaster_id].login,
                "user_name": clip.broadcaster_name,
                "title": f"VOD {video_id}",
                "description": "",
                "created_at": clip.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "published_at": clip.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "url": f"https://www.twitch.tv/videos/{video_id}",
                "thumbnail_url": "",
                "viewable": "public",
                "view_count": clip.views() * 10,
                "language": clip.language,
                "type": "archive",
                "duration": "3h2m1s",
                "muted_segments": None,
            }
            for video_id, clip in vods.items()
        ]
        return 200, {"data": data, "pagination": {}}


def _event_time(at: datetime) -> str:
    """EventSub's `started_at`: RFC3339 with a fraction (microseconds here)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _omitted_when_wide(clip_id: str) -> bool:
    digest = hashlib.blake2b(clip_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % WIDE_OMITS == 0


class _BadRequest(Exception):
    pass


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    value = _one(query, name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None


def _time(query: dict[str, list[str]], name: str) -> datetime | None:
    value = _one(query, name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _BadRequest(f"{name} must be RFC3339") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fingerprint(query: dict[str, list[str]]) -> str:
    stable = sorted((k, v) for k, vs in query.items() if k not in ("after", "first") for v in vs)
    return hashlib.sha256(urlencode(stable).encode()).hexdigest()[:16]


def _cursor(fingerprint: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{fingerprint}:{offset}".encode()).decode()


def _decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        owner, _, offset = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if owner != fingerprint:
            raise ValueError
        return int(offset)
    except ValueError:
        raise _BadRequest("invalid cursor") from None


def _error_body(status: int, message: str) -> dict[str, Any]:
    reasons = {
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        429: "Too Many Requests",
        503: "Service Unavailable",
    }
    return {"error": reasons.get(status, "Error"), "status": status, "message": message}


async def _error(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    await _answer(send, status, _error_body(status, message), headers)

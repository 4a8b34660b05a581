"""POST /discord/interactions: Discord's slash commands, signature first."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from clipwatch.api.auth import interactions_limit
from clipwatch.api.deps import AppState, State
from clipwatch.api.errors import problem, problem_responses
from clipwatch.clips.search import ClipSearch, search_clips
from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import catalog
from clipwatch.discord.bot_api import BotApi
from clipwatch.discord.delivery import view_of
from clipwatch.discord.interactions import (
    ANSWER_WITHIN_S,
    AUTOCOMPLETE,
    CHOICES,
    COMMAND,
    DEFERRED,
    EPHEMERAL,
    MESSAGE,
    PING,
    PONG,
    CommandRequest,
    Interaction,
    MalformedInteraction,
    ephemeral,
    focused_option,
    message_for,
    parse_command,
    parse_interaction,
    signed_recently,
    verify_signature,
)
from clipwatch.discord.messages import ClipView
from clipwatch.discord.setup import (
    SUBCOMMANDS,
    SetupCommand,
    SetupDeps,
    answer_error,
    focused_text,
    parse_setup,
    run_setup,
)
from clipwatch.monitoring.metrics import DISCORD_SETUP_COMMANDS
from clipwatch.outbound import http_client

router = APIRouter(tags=["discord"])
PATH = "/discord/interactions"
log = structlog.get_logger(__name__)
_background: set[asyncio.Task[None]] = set()


async def find_clips(state: AppState, request: CommandRequest) -> list[ClipView]:
    sort = {"search": "relevance", "top": "views", "latest": "newest", "random": "views"}
    search = ClipSearch(
        q=request.query,
        broadcaster=(request.channel,) if request.channel else (),
        game=(request.game,) if request.game else (),
        sort=sort[request.subcommand],  # type: ignore[arg-type]
        limit=25 if request.subcommand == "random" else 5,
    )
    async with session_scope(state.sessionmaker) as session:
        page = await search_clips(
            session,
            search,
            key=state.settings.signing_key,
            relevance_candidates=state.settings.search_relevance_candidates,
        )
    return [view_of(c, page.game_names.get(c.game_id or "")) for c in page.clips]


async def _edit_original(state: AppState, token: str, message: dict[str, Any]) -> None:
    url = (
        f"{state.settings.discord_api_url}/webhooks/"
        f"{state.settings.discord_application_id}/{quote(token, safe='')}/messages/@original"
    )
    try:
        async with http_client(timeout=10) as http:
            answer = await http.patch(url, json=message)
        if answer.status_code >= 400:
            log.warning("interaction_followup_failed", status=answer.status_code)
    except httpx.TransportError as exc:
        log.warning("interaction_followup_failed", error=type(exc).__name__)


async def _answer_later(
    state: AppState, token: str, work: asyncio.Task[list[ClipView]], request: CommandRequest
) -> None:
    try:
        message = message_for(await work, request)
    except Exception as exc:  # the user must hear something
        log.warning("interaction_search_failed", error=type(exc).__name__)
        message = ephemeral("The search failed; try again.")
    await _edit_original(state, token, message)


@router.post(
    PATH,
    summary="Discord slash commands (Ed25519-signed by Discord)",
    responses=problem_responses(
        {
            400: "Signed, but not an interaction of a shape Discord sends",
            401: "Missing or bad signature, or signed over 5 minutes from now",
            413: "Body over CLIPWATCH_MAX_INTERACTION_BODY_BYTES (64 KB): refused unread",
            429: "Too many requests from this address: see Retry-After",
        }
    ),
    dependencies=[Depends(interactions_limit)],
)
async def interactions(request: Request, state: State) -> JSONResponse:
    body = await request.body()
    key = state.settings.discord_public_key
    signature = request.headers.get("x-signature-ed25519", "")
    timestamp = request.headers.get("x-signature-timestamp", "")
    if not key or not verify_signature(key, signature, timestamp, body):
        return problem(401, "invalid request signature")
    if not signed_recently(timestamp, time.time()):
        return problem(401, "request signed more than 5 minutes away from now (a replay?)")
    try:
        interaction = parse_interaction(body)
        if interaction.type == PING:
            return JSONResponse({"type": PONG})
        setup = interaction.data.get("name") == "clipwatch"
        if interaction.type == AUTOCOMPLETE:
            focused = focused_text(interaction.data) if setup else focused_option(interaction.data)
            choices = await _choices(state, focused, tracked_only=setup)
            return JSONResponse({"type": CHOICES, "data": {"choices": choices}})
        if interaction.type != COMMAND:
            return JSONResponse({"type": MESSAGE, "data": ephemeral("That is not something I do.")})
        if setup:
            return await _setup(state, interaction, parse_setup(interaction))
        command = parse_command(interaction.data)
        if command is None:
            return JSONResponse({"type": MESSAGE, "data": ephemeral("Unknown command.")})
        if interaction.token is None:
            raise MalformedInteraction("a command without a `token` cannot be answered")
    except MalformedInteraction as exc:
        return problem(400, str(exc))
    work = asyncio.create_task(find_clips(state, command))
    done, _ = await asyncio.wait({work}, timeout=ANSWER_WITHIN_S)
    if done:
        try:
            return JSONResponse({"type": MESSAGE, "data": message_for(work.result(), command)})
        except Exception as exc:
            log.warning("interaction_search_failed", error=type(exc).__name__)
            return JSONResponse({"type": MESSAGE, "data": ephemeral("The search failed.")})
    # Too slow for Discord's 3 s: say "thinking…" now, edit the answer when it is ready.
    later = asyncio.create_task(_answer_later(state, interaction.token, work, command))
    _background.add(later)
    later.add_done_callback(_background.discard)
    return JSONResponse({"type": DEFERRED})


async def _setup(state: AppState, interaction: Interaction, command: SetupCommand) -> JSONResponse:
    """`/clipwatch …`: answered within 2 s, or deferred (ephemeral) and edited when done."""
    if interaction.token is None:
        raise MalformedInteraction("a command without a `token` cannot be answered")
    work = asyncio.create_task(_run_setup(state, command))
    done, _ = await asyncio.wait({work}, timeout=ANSWER_WITHIN_S)
    if done:
        return JSONResponse({"type": MESSAGE, "data": ephemeral(work.result())})
    # A slow bot API call: "thinking…" (only the member sees it), the answer edits it later.
    later = asyncio.create_task(_setup_later(state, interaction.token, work))
    _background.add(later)
    later.add_done_callback(_background.discard)
    return JSONResponse({"type": DEFERRED, "data": {"flags": EPHEMERAL}})


async def _run_setup(state: AppState, command: SetupCommand) -> str:
    settings = state.settings
    token = settings.discord_bot_token
    bot = BotApi(settings.discord_api_url, token) if token else None
    deps = SetupDeps(
        state.sessionmaker,
        settings.signing_key,
        [h.strip() for h in settings.webhook_allowed_hosts.split(",") if h.strip()],
        settings.discord_application_id,
        bot,
    )
    try:
        answer = await run_setup(command, deps)
    except Exception as exc:  # the member must hear something; the log says what
        log.warning(
            "discord_setup_failed", command=command.subcommand[:32], error=type(exc).__name__
        )
        answer = answer_error(exc)
    finally:
        if bot is not None:
            await bot.aclose()
    name = command.subcommand if command.subcommand in SUBCOMMANDS else "other"
    DISCORD_SETUP_COMMANDS.labels(name, answer.outcome).inc()
    return answer.text


async def _setup_later(state: AppState, token: str, work: asyncio.Task[str]) -> None:
    await _edit_original(state, token, ephemeral(await work))


async def _choices(
    state: AppState, focused: tuple[str, str] | None, *, tracked_only: bool = False
) -> list[dict[str, str]]:
    """Channels or games whose name holds what is typed (`/clipwatch follow`: tracked
    channels only, the ones it can follow)."""
    if focused is None:
        return []
    name, typed = focused
    async with session_scope(state.sessionmaker) as session:
        if name == "channel":
            rows = await catalog.list_channels(session, limit=200)
            options = [
                (c.display_name, c.login or c.id) for c in rows if c.tracked or not tracked_only
            ]
        else:
            games = await catalog.list_games(session, limit=200)
            options = [(g.name or g.id, g.id) for g in games]
    wanted = typed.lower()
    return [
        {"name": label[:100], "value": value[:100]}
        for label, value in options
        if wanted in label.lower()
    ][:25]

"""Setup from Discord: `/clipwatch link|follow|unfollow|list` (docs/discord.md).

A server is linked to one clipwatch account by a one-time code that account made
(link_codes.py), given to `/clipwatch link` by a member with Manage Server. Members with
Manage Webhooks then follow tracked channels: the bot makes (or reuses) a webhook named
"clipwatch" in the channel, and a route owned by the linked account is saved through the
same service as the API's. Permissions are read from the
interaction's `member.permissions` (the member's, in that channel). Every answer is one line
of ephemeral text; nothing here raises for what a user typed.

Relinking a server to another account needs that account's code; the routes already set up
from the server stay their owner's (no account gains another's webhooks), keep posting, and
remain listed and removable from the server: the server's managers decide what posts there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.service import Principal
from clipwatch.db.engine import session_scope
from clipwatch.db.models import DiscordGuildLink, NotificationRoute
from clipwatch.db.repositories import accounts as users
from clipwatch.db.repositories import catalog
from clipwatch.db.repositories import discord_links as repo
from clipwatch.discord import routes
from clipwatch.discord.bot_api import (
    MAX_WEBHOOKS,
    MISSING_PERMISSIONS,
    BotApi,
    BotRefused,
    BotUnavailable,
    BotWebhook,
)
from clipwatch.discord.interactions import Interaction, MalformedInteraction
from clipwatch.discord.link_codes import code_hash, normalize_code
from clipwatch.discord.messages import escape
from clipwatch.errors import ClipwatchError

log = structlog.get_logger("clipwatch.discord")

ADMINISTRATOR, MANAGE_GUILD, MANAGE_WEBHOOKS = 1 << 3, 1 << 5, 1 << 29
SUBCOMMANDS = ("link", "follow", "unfollow", "list")
MAX_MIN_VIEWS = 10**12  # as the API's route filters
LOGIN = re.compile(r"^[a-z0-9_]{1,25}$")
TEMPLATES = ("card", "compact", "link")
HOW_TO_LINK = (
    "a clipwatch user makes a code (`clipwatch discord link-code USER`, or "
    "POST /api/v1/me/discord-link) and someone with Manage Server runs `/clipwatch link code:…`"
)


# --- the command ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupCommand:
    subcommand: str
    options: dict[str, object]
    guild_id: str | None
    channel_id: str | None
    user_id: str | None
    permissions: int | None
    app_permissions: int | None


def parse_setup(interaction: Interaction) -> SetupCommand:
    """`/clipwatch <sub> [options]` from a command interaction. The options' values are kept
    as sent (each subcommand reads its own and answers odd ones in words); only a shape Discord
    never sends is MalformedInteraction."""
    subs = interaction.data.get("options")
    if not isinstance(subs, list) or not subs or not isinstance(subs[0], dict):
        raise MalformedInteraction("`/clipwatch` came without a subcommand")
    sub = subs[0]
    name, given = sub.get("name"), sub.get("options", [])
    if not isinstance(name, str) or not isinstance(given, list):
        raise MalformedInteraction("`/clipwatch`'s subcommand is not one Discord sends")
    options: dict[str, object] = {}
    for option in given:
        if not isinstance(option, dict) or not isinstance(option.get("name"), str):
            raise MalformedInteraction("`/clipwatch`'s options are not options")
        options[option["name"]] = option.get("value")
    return SetupCommand(
        name,
        options,
        interaction.guild_id,
        interaction.channel_id,
        interaction.user_id,
        interaction.permissions,
        interaction.app_permissions,
    )


def focused_text(data: dict[str, Any]) -> tuple[str, str] | None:
    """The option being typed in an autocomplete of `/clipwatch` (never raises)."""
    subs = data.get("options")
    for sub in subs if isinstance(subs, list) else []:
        given = sub.get("options") if isinstance(sub, dict) else None
        for option in given if isinstance(given, list) else []:
            if isinstance(option, dict) and option.get("focused") is True:
                name, value = option.get("name"), option.get("value")
                if isinstance(name, str) and isinstance(value, str):
                    return name, value
    return None


@dataclass(frozen=True)
class SetupDeps:
    sessionmaker: async_sessionmaker[AsyncSession]
    key: bytes
    allowed_hosts: list[str]
    application_id: str
    bot: BotApi | None  # None: no CLIPWATCH_DISCORD_BOT_TOKEN


@dataclass(frozen=True)
class Answer:
    text: str
    outcome: str  # done | refused (the user must act) | failed (Discord or we failed)


def _allows(bits: int | None, permission: int) -> bool:
    return bits is not None and bool(bits & (permission | ADMINISTRATOR))


async def run_setup(command: SetupCommand, deps: SetupDeps) -> Answer:
    if command.subcommand not in SUBCOMMANDS:
        return Answer(
            "Unknown command: try `/clipwatch follow`, `unfollow`, `list` or `link`.", "refused"
        )
    if command.guild_id is None or command.channel_id is None or command.permissions is None:
        return Answer("Use `/clipwatch` in a server's text channel, not in a DM.", "refused")
    if command.subcommand == "link":
        if not _allows(command.permissions, MANAGE_GUILD):
            return Answer("Linking this server needs the Manage Server permission.", "refused")
        return await _link(command, deps)
    if not _allows(command.permissions, MANAGE_WEBHOOKS):
        return Answer(
            "You need the Manage Webhooks permission in this channel to manage clip posts.",
            "refused",
        )
    async with session_scope(deps.sessionmaker) as session:
        link = await repo.get_guild_link(session, command.guild_id)
        if link is None:
            return Answer(f"This server is not linked to clipwatch yet: {HOW_TO_LINK}.", "refused")
        if command.subcommand == "list":
            return _list(command, await repo.guild_routes(session, command.guild_id))
        if command.subcommand == "unfollow":
            return await _unfollow(session, command)
        checked = await _follow_checks(session, command, deps)
        if isinstance(checked, Answer):
            return checked
        owner_id = link.user_id
    return await _follow(command, deps, owner_id, checked)


async def _link(command: SetupCommand, deps: SetupDeps) -> Answer:
    assert command.guild_id is not None
    given = command.options.get("code")
    if not isinstance(given, str) or not normalize_code(given[:100]):
        return Answer("Give the code: `/clipwatch link code:ABCD-EFGH-JKMN`.", "refused")
    async with session_scope(deps.sessionmaker) as session:
        code = await repo.take_link_code(session, code_hash(deps.key, given[:100]))
        if code is None:
            return Answer(
                "That code is unknown or already used: make a new one "
                "(`clipwatch discord link-code USER` or POST /api/v1/me/discord-link).",
                "refused",
            )
        if code.expires_at <= datetime.now(UTC):
            return Answer("That code expired (codes last 10 minutes): make a new one.", "refused")
        user = await users.get_user(session, code.user_id)
        if user is None:
            return Answer("That code's account no longer exists.", "refused")
        link = await repo.get_guild_link(session, command.guild_id)
        before = link.user_id if link else None
        if link is None:
            link = DiscordGuildLink(guild_id=command.guild_id, user_id=user.id)
            session.add(link)
        link.user_id = user.id
        link.linked_at = datetime.now(UTC)
        link.linked_by_discord_user = command.user_id
        await session.flush()
    log.info("discord_guild_linked", guild_id=command.guild_id, user_id=user.id, before=before)
    moved = (
        " Routes set up before stay with the account that made them (still listed here)."
        if before not in (None, user.id)
        else ""
    )
    return Answer(
        f"This server is now linked to the clipwatch account “{escape(user.name)}”: members "
        f"with Manage Webhooks can `/clipwatch follow channel:<login>`.{moved}",
        "done",
    )


def _list(command: SetupCommand, found: Sequence[NotificationRoute]) -> Answer:
    if not found:
        return Answer(
            "This server follows no channels yet: `/clipwatch follow channel:<login>`.", "done"
        )
    lines = [f"This server's clip posts ({len(found)}):"]
    for route in found:
        lines.append(f"- {_describe(route)}")
    text = "\n".join(lines)
    if len(text) > 1900:  # Discord's 2,000 characters a message
        text = text[:1900].rsplit("\n", 1)[0] + "\n…"
    return Answer(text, "done")


def _describe(route: NotificationRoute) -> str:
    filters = route.filters or {}
    channels = ", ".join(f"**{escape(str(c))}**" for c in filters.get("channels") or []) or "all"
    where = f"<#{route.discord_channel_id}>" if route.discord_channel_id else "a channel"
    views = filters.get("min_views") or 0
    more = f", at least {views:,} views" if views else ""
    state = "" if route.enabled else f" (disabled: {escape(route.disabled_reason or 'off')})"
    template = (route.template or {}).get("name") or "custom"
    return f"{channels} in {where}{more}, {template} template{state}"


def _login(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    login = value.strip().lstrip("@").lower()
    return login if LOGIN.match(login) else None


async def _unfollow(session: AsyncSession, command: SetupCommand) -> Answer:
    assert command.guild_id is not None
    login = _login(command.options.get("channel"))
    if login is None:
        return Answer("Give a Twitch login: `/clipwatch unfollow channel:<login>`.", "refused")
    followed = [
        r
        for r in await repo.guild_routes(session, command.guild_id)
        if login in ((r.filters or {}).get("channels") or [])
    ]
    here = [r for r in followed if r.discord_channel_id == command.channel_id]
    if not here:
        if followed:
            return Answer(
                f"**{escape(login)}** is followed in <#{followed[0].discord_channel_id}>, not "
                "here: run `/clipwatch unfollow` there.",
                "refused",
            )
        return Answer(f"This server does not follow **{escape(login)}**.", "refused")
    for route in here:
        await session.delete(route)
    await session.flush()
    log.info("discord_unfollowed", guild_id=command.guild_id, routes=[r.id for r in here])
    return Answer(f"Stopped posting **{escape(login)}**'s clips here.", "done")


@dataclass(frozen=True)
class FollowPlan:
    login: str
    min_views: int
    template: str


async def _follow_checks(
    session: AsyncSession, command: SetupCommand, deps: SetupDeps
) -> FollowPlan | Answer:
    assert command.guild_id is not None
    if deps.bot is None:
        return Answer(
            "Following from Discord needs the bot: the operator of this clipwatch must set "
            "CLIPWATCH_DISCORD_BOT_TOKEN.",
            "refused",
        )
    options = command.options
    login = _login(options.get("channel"))
    if login is None:
        return Answer("Give a Twitch login: `/clipwatch follow channel:<login>`.", "refused")
    views = options.get("min_views", 0)
    if views is None:
        views = 0
    if type(views) is not int or not 0 <= views <= MAX_MIN_VIEWS:
        return Answer(f"min_views is a whole number from 0 to {MAX_MIN_VIEWS:,}.", "refused")
    template = options.get("template") or "card"
    if template not in TEMPLATES:
        return Answer("template is one of card, compact, link.", "refused")
    channel = await catalog.get_channel(session, login)
    if channel is None or not channel.tracked or not channel.login:
        return Answer(
            f"clipwatch does not track **{escape(login)}**: an admin of this clipwatch must "
            "track it first (`clipwatch channels add LOGIN`).",
            "refused",
        )
    already = await _already(session, command, channel.login)
    if already is not None:
        return already
    if command.app_permissions is not None and not _allows(
        command.app_permissions, MANAGE_WEBHOOKS
    ):
        return Answer(BOT_NEEDS_PERMISSION, "refused")
    return FollowPlan(channel.login, views, str(template))


async def _already(session: AsyncSession, command: SetupCommand, login: str) -> Answer | None:
    assert command.guild_id is not None
    for route in await repo.guild_routes(session, command.guild_id):
        same = (route.filters or {}).get("channels") == [login]
        if same and route.discord_channel_id == command.channel_id:
            return Answer(f"This channel already follows **{escape(login)}**.", "refused")
    return None


BOT_NEEDS_PERMISSION = (
    "The clipwatch bot needs the Manage Webhooks permission in this channel: give it that, "
    "then follow again."
)


async def _follow(
    command: SetupCommand, deps: SetupDeps, owner_id: int, plan: FollowPlan
) -> Answer:
    assert deps.bot is not None
    assert command.channel_id is not None
    assert command.guild_id is not None
    hook, created = await deps.bot.webhook_for(command.channel_id, deps.application_id)
    if not isinstance(hook, BotWebhook):
        return _bot_problem(command, hook)
    host = deps.allowed_hosts[0] if deps.allowed_hosts else "discord.com"
    async with session_scope(deps.sessionmaker) as session:
        # Checked again: another /clipwatch follow may have saved it while Discord answered.
        already = await _already(session, command, plan.login)
        if already is not None:
            return already
        owner = Principal(
            owner_id,
            f"discord:{command.guild_id}",
            "member",
            frozenset({"read", "write"}),
            "token",
            0,
        )
        route = await routes.create_route(
            session,
            owner,
            {
                "name": f"{plan.login} (Discord)",
                "webhook_url": f"https://{host}/api/webhooks/{hook.id}/{hook.token}",
                "filters": {"channels": [plan.login], "min_views": plan.min_views},
                "template": {"name": plan.template},
            },
            key=deps.key,
            allowed_hosts=deps.allowed_hosts,
        )
        route.created_via = "discord"
        route.discord_channel_id = command.channel_id
        route.webhook_channel_id = hook.channel_id
        route.webhook_guild_id = command.guild_id
        route.webhook_name = hook.name
        route.webhook_checked_at = datetime.now(UTC)
        await session.flush()
        route_id = route.id
    log.info(
        "discord_followed",
        guild_id=command.guild_id,
        route_id=route_id,
        webhook_id=hook.id,
        webhook_created=created,
    )
    views = f" with at least {plan.min_views:,} views" if plan.min_views else ""
    return Answer(
        f"Following **{escape(plan.login)}** here: new clips{views} are posted in this channel "
        f"({plan.template} template, route {route_id}).",
        "done",
    )


def _bot_problem(command: SetupCommand, problem: BotRefused | BotUnavailable) -> Answer:
    log.warning(
        "discord_bot_call_failed",
        guild_id=command.guild_id,
        channel_id=command.channel_id,
        reason=problem.reason if isinstance(problem, BotUnavailable) else problem.message,
        status=problem.status if isinstance(problem, BotRefused) else None,
        code=problem.code if isinstance(problem, BotRefused) else None,
    )
    if isinstance(problem, BotUnavailable):
        return Answer(
            f"Discord did not make the webhook ({problem.reason}): try again soon.", "failed"
        )
    if problem.status == 403 or problem.code == MISSING_PERMISSIONS:
        return Answer(BOT_NEEDS_PERMISSION, "refused")
    if problem.code == MAX_WEBHOOKS:
        return Answer(
            "This channel has as many webhooks as Discord allows: delete one, then follow again.",
            "refused",
        )
    if problem.status == 401:
        return Answer("Discord refused the bot's token: the operator must check it.", "failed")
    return Answer(
        f"Discord refused to make a webhook here ({escape(problem.message)[:150]}).", "failed"
    )


def answer_error(exc: BaseException) -> Answer:
    """What the user reads when a command failed unexpectedly (logged by the caller)."""
    if isinstance(exc, ClipwatchError):
        return Answer(f"That did not work: {escape(str(exc))[:300]}", "failed")
    return Answer("Something went wrong on clipwatch's side; try again.", "failed")

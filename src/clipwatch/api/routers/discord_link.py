"""POST /me/discord-link: a one-time code that links a Discord server to my account."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from clipwatch.api.auth import Writer, auth_endpoint_limit
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.discord.link_codes import new_link_code

router = APIRouter(prefix="/me", tags=["me"])


class DiscordLinkCode(BaseModel):
    code: str = Field(description="Give it to `/clipwatch link code:` in the server. Shown once")
    expires_at: datetime = Field(description="10 minutes from now; a new code replaces this one")


@router.post(
    "/discord-link",
    response_model=DiscordLinkCode,
    status_code=201,
    dependencies=[Depends(auth_endpoint_limit)],
    responses=problem_responses(
        {401: "No valid credentials", 403: "Scope or CSRF proof missing", 429: "Rate limited"}
    ),
    summary="A one-time code that links a Discord server to my account",
)
async def create_discord_link_code(
    session: Session, state: State, principal: Writer
) -> DiscordLinkCode:
    made = await new_link_code(session, principal.user_id, key=state.settings.signing_key)
    return DiscordLinkCode(code=made.code, expires_at=made.expires_at)

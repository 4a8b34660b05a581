"""Request and response shapes of users, tokens, sessions and preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, WithJsonSchema

from clipwatch.api.params import Key, Language
from clipwatch.api.schemas import StrictBody
from clipwatch.db.models import ApiToken, Preferences, User, UserSession

ScopeName = Literal["read", "write", "admin"]
SortName = Literal["relevance", "newest", "oldest", "views"]
UserName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
TokenName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class UserRead(BaseModel):
    id: int
    name: str
    role: str
    created_at: datetime

    @classmethod
    def from_user(cls, user: User) -> UserRead:
        return cls.model_validate(user, from_attributes=True)


class MeRead(UserRead):
    via: Literal["token", "session"]
    scopes: list[ScopeName]
    csrf_token: str | None = Field(
        description="Send it as `X-CSRF-Token` with every cookie-authenticated write"
    )


class UserUpdate(StrictBody):
    name: UserName


class TokenCreate(StrictBody):
    name: TokenName = Field(examples=["grafana"])
    scopes: list[ScopeName] = Field(min_length=1, max_length=3, examples=[["read"]])
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenRead(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The public start of the token, to recognise it")
    scopes: list[ScopeName]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_token(cls, token: ApiToken) -> TokenRead:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            scopes=token.scopes.split(),
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreated(TokenRead):
    token: str = Field(description="The token itself. Shown this once; only a hash is kept.")


class SessionRead(BaseModel):
    id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str
    ip: str
    current: bool

    @classmethod
    def from_session(cls, row: UserSession, *, current_id: int | None) -> SessionRead:
        return cls(
            id=row.id,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            user_agent=row.user_agent,
            ip=row.ip,
            current=row.id == current_id,
        )


class LoginRead(BaseModel):
    user: UserRead
    session: SessionRead
    csrf_token: str


ZONES = sorted(available_timezones())


def _check_zone(value: str) -> str:
    if value not in ZONES:
        raise ValueError(f"{value!r} is not an IANA time zone")
    return value


TimeZone = Annotated[
    str,
    AfterValidator(_check_zone),
    WithJsonSchema({"type": "string", "enum": ZONES, "examples": ["Europe/Berlin"]}),
]


class PreferencesFields(BaseModel):
    channels: list[Key] = Field(max_length=200, description="Channel ids or logins")
    games: list[Key] = Field(max_length=200, description="Game ids or names")
    languages: list[Language] = Field(max_length=50)
    min_views: int | None = Field(ge=0, le=10**12)
    default_sort: SortName | None
    time_zone: TimeZone


class PreferencesPut(PreferencesFields, StrictBody):
    channels: list[Key] = Field(default_factory=list, max_length=200)
    games: list[Key] = Field(default_factory=list, max_length=200)
    languages: list[Language] = Field(default_factory=list, max_length=50)
    min_views: int | None = Field(default=None, ge=0, le=10**12)
    default_sort: SortName | None = None
    time_zone: TimeZone = "UTC"


class PreferencesPatch(StrictBody):
    channels: list[Key] | None = Field(default=None, max_length=200)
    games: list[Key] | None = Field(default=None, max_length=200)
    languages: list[Language] | None = Field(default=None, max_length=50)
    min_views: int | None = Field(default=None, ge=0, le=10**12)
    default_sort: SortName | None = None
    time_zone: TimeZone | None = None


class PreferencesRead(PreferencesFields):
    user_id: int

    @classmethod
    def from_row(cls, row: Preferences) -> PreferencesRead:
        return cls.model_validate(row, from_attributes=True)

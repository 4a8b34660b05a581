"""Domain errors. They carry no HTTP status; `api/errors.py` maps them once.

ClipwatchError
 ├── ConfigError          a setting is missing or malformed
 ├── InvalidInput         a caller sent something we cannot use (bad cursor, bad filter)
 ├── BadRequest           a request that cannot be taken as it stands (a login state mismatch)
 ├── NotFound             the thing asked for does not exist (or is not yours)
 ├── Conflict             the change collides with existing state
 ├── PreconditionFailed   the caller's copy is stale (If-Match names an older version)
 ├── Unauthenticated      no credentials, or credentials that are invalid, expired or revoked
 ├── Forbidden            authenticated, but not allowed (scope, CSRF proof)
 ├── RateLimited          too many requests; try again after `retry_after` seconds
 └── UpstreamUnavailable  Twitch, Discord or Redis did not answer usefully
"""


class ClipwatchError(Exception):
    """Base of every error clipwatch raises on purpose."""


class ConfigError(ClipwatchError):
    pass


class InvalidInput(ClipwatchError):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BadRequest(ClipwatchError):
    pass


class NotFound(ClipwatchError):
    pass


class Conflict(ClipwatchError):
    pass


class PreconditionFailed(ClipwatchError):
    pass


class Unauthenticated(ClipwatchError):
    pass


class Forbidden(ClipwatchError):
    pass


class RateLimited(ClipwatchError):
    def __init__(self, message: str, *, retry_after: int, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers


class UpstreamUnavailable(ClipwatchError):
    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds, when it is known when to ask again

"""Headers every answer carries: security policy, and the caller's rate-limit state."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clipwatch.accounts.ratelimit import Decision

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# JSON answers need nothing; the API docs page loads Swagger UI from this app's own files.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
DOCS_PATHS = ("/docs",)
# HTML pages (docs/web.md): no inline script or style; images from Twitch's CDNs, and the
# only frame is Twitch's clip player.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' https://clips-media-assets2.twitch.tv https://static-cdn.jtvnw.net data:; "
    "frame-src https://clips.twitch.tv; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
# Answers under these paths carry a credential, a CSRF proof or a person's own data: no
# cache (a browser's, a proxy's) may keep them. So may no answer that sets a cookie.
PRIVATE_PATHS = ("/auth/", "/api/v1/me")


class ResponseHeaders:
    """Pure ASGI (no BaseHTTPMiddleware): adds headers as the response starts."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"].startswith(DOCS_PATHS) else API_CSP
        private = scope["path"].startswith(PRIVATE_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                html = headers.get("content-type", "").startswith("text/html")
                headers.setdefault(
                    "Content-Security-Policy", PAGE_CSP if html and csp == API_CSP else csp
                )
                if private or "set-cookie" in headers:
                    headers["Cache-Control"] = "no-store"
                if self.https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
                decision = scope.get("state", {}).get("rate_limit")
                if isinstance(decision, Decision):
                    for name, value in decision.headers().items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)

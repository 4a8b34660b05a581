"""The OpenAPI document and the app agree, on both databases: unknown query parameters,
`Allow`, plain-language 422s, strict types, and the status codes and content types documented.
test_fuzz runs schemathesis over all of it; these say each rule once, fast.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from clipwatch.accounts import service
from clipwatch.db.engine import session_scope
from clipwatch.db.models import NotificationRoute
from clipwatch.discord.webhook_url import (
    EXAMPLE_WEBHOOK_URL,
    WEBHOOK_URL_PATTERN,
    parse_webhook_url,
)

PROBLEM = "application/problem+json"
METHODS = ("get", "post", "put", "patch", "delete")
# What a regular expression looks like in a message: anchors, classes, quantifiers.
REGEX = re.compile(r"\^|\$'|\[[^\]]*-[^\]]*\]|\{\d+,\d*\}|\\[dwsx]|\(\?:")


@pytest.fixture
async def admin(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, "truthadmin", admin=True)
        _, token = await service.create_token(
            session, user, name="t", scopes=frozenset({"read", "write", "admin"})
        )
    return {"Authorization": f"Bearer {token}"}


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def concrete(path: str) -> str:
    return re.sub(r"\{[^/]+\}", "1", path)


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def assert_plain(problem: dict[str, Any]) -> None:
    texts = [problem["detail"], *(e["message"] for e in problem.get("errors", []))]
    for message in texts:
        assert not REGEX.search(message), f"a regular expression in a message: {message!r}"


async def test_every_operation_refuses_unknown_query_parameters_by_name(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for path, method, _operation in operations(await document(client)):
        answer = await client.request(
            method, concrete(path), params={"colour": "red"}, headers=admin
        )
        assert answer.status_code == 422, (method, path, answer.text)
        assert answer.headers["content-type"] == PROBLEM
        problem = answer.json()
        assert problem["errors"][0]["field"] == "colour", (method, path, problem)
        assert "not a parameter" in problem["detail"], problem
    # The example: /clips answered unfiltered; now it names the parameter.
    answer = await client.get("/api/v1/clips", params={"period": "week", "q": "x"})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("period: is not a parameter of this endpoint")


async def test_every_declared_query_parameter_is_known(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Parameters routers add (the /clips filters) are picked up with no list to keep."""
    for path, method, operation in operations(await document(client)):
        if "text/event-stream" in operation["responses"].get("200", {}).get("content", {}):
            continue  # a valid request opens a stream that never ends (see test_stream.py)
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            name = parameter["name"]
            answer = await client.request(method, concrete(path), params={name: "x"}, headers=admin)
            # An export answers in CSV: only a problem answer can name an unknown parameter.
            problem = "json" in answer.headers.get("content-type", "")
            errors = answer.json().get("errors", []) if problem else []
            unknown = [e for e in errors if "not a parameter" in e["message"]]
            assert not unknown, (method, path, name, answer.text)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"featured": "0"}, "featured"),
        ({"featured": "yes"}, "featured"),
        ({"include_deleted": "1"}, "include_deleted"),
        ({"limit": "1.0"}, "limit"),
        ({"limit": "+5"}, "limit"),
        ({"min_views": " 5"}, "min_views"),
        ({"created_after": "0.5"}, "created_after"),
        ({"created_before": "2025-01-01"}, "created_before"),
    ],
)
async def test_query_scalars_are_read_as_the_document_spells_them(
    client: httpx.AsyncClient, query: dict[str, str], field: str
) -> None:
    answer = await client.get("/api/v1/clips", params=query)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field
    assert_plain(answer.json())


async def test_query_scalars_in_their_spelling_are_taken(client: httpx.AsyncClient) -> None:
    query = {
        "featured": "false",
        "include_deleted": "true",
        "limit": "5",
        "min_views": "0",
        "created_after": "2025-01-01T00:00:00Z",
        "created_before": "2025-02-01T00:00:00.5+02:00",
    }
    answer = await client.get("/api/v1/clips", params=query)
    assert answer.status_code == 200, answer.text


async def test_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    doc = await document(client)
    for path, item in doc["paths"].items():
        documented = {m.upper() for m in item if m in METHODS}
        options = await client.options(concrete(path), headers=admin)
        assert options.status_code == 204, (path, options.text)
        allow = {m.strip() for m in options.headers["allow"].split(",")}
        assert allow == documented | {"OPTIONS"}, path
        undeclared = next(m for m in ("PUT", "DELETE", "PATCH", "POST") if m not in documented)
        refused = await client.request(undeclared, concrete(path), headers=admin)
        assert refused.status_code == 405, (undeclared, path)
        assert refused.headers["content-type"] == PROBLEM
        assert {m.strip() for m in refused.headers["allow"].split(",")} == allow, path


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"language": "english!"}, "language code"),
        ({"path": "/api/v1/clips/a%20b"}, "Twitch clip id"),
        ({"q": "a\x00b"}, "control characters"),
        ({"sort": "loudest"}, "must be"),
    ],
)
async def test_422_messages_are_in_words(
    client: httpx.AsyncClient, params: dict[str, Any], words: str
) -> None:
    query = {k: v for k, v in params.items() if k != "path"}
    answer = await client.get(params.get("path", "/api/v1/clips"), params=query)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert words in answer.json()["detail"], answer.json()
    assert_plain(answer.json())


async def test_request_bodies_are_strictly_typed_and_worded(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    route = {"name": "r", "webhook_url": EXAMPLE_WEBHOOK_URL}
    refused = [
        ({**route, "webhook_url": "https://example.com/hook"}, "Discord webhook URL"),
        ({**route, "delay_seconds": False}, "whole number"),
        ({**route, "batching": 0}, "true or false"),
        ({**route, "delay_seconds": "5"}, "whole number"),
        ({**route, "filters": {"featured_only": "true"}}, "true or false"),
    ]
    for body, words in refused:
        answer = await client.post("/api/v1/routes", json=body, headers=admin)
        assert answer.status_code == 422, (body, answer.text)
        assert words in answer.json()["detail"], answer.json()
        assert_plain(answer.json())
    # JSON Schema's integers include 5.0; the schema's own example URL is taken.
    taken = await client.post("/api/v1/routes", json={**route, "delay_seconds": 5.0}, headers=admin)
    assert taken.status_code == 201, taken.text
    assert taken.json()["delay_seconds"] == 5
    token = await client.post(
        "/api/v1/me/tokens",
        json={"name": "t", "scopes": ["read"], "expires_in_days": True},
        headers=admin,
    )
    assert token.status_code == 422, token.text


async def test_made_up_cursor_is_400_and_missing_login_state_is_422(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/api/v1/clips", "/api/v1/channels", "/api/v1/games"):
        answer = await client.get(path, params={"cursor": "0"})
        assert answer.status_code == 400, (path, answer.text)
        assert answer.headers["content-type"] == PROBLEM
    callback = await client.get("/auth/callback", params={"code": "abc"})
    assert callback.status_code == 422, callback.text
    assert callback.json()["errors"][0]["field"] == "state"


async def test_unparseable_body_is_documented(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    answer = await client.post(
        "/api/v1/routes",
        content=b"\xff\xfe{",
        headers={**admin, "Content-Type": "application/json"},
    )
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"] == PROBLEM
    doc = await document(client)
    assert str(answer.status_code) in doc["paths"]["/api/v1/routes"]["post"]["responses"]
    cut_short = await client.post(
        "/api/v1/routes",
        content=b'{"name": ',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert cut_short.status_code == 422, cut_short.text
    assert cut_short.json()["detail"] == "body: is not valid JSON (at character 9)"


async def test_document_says_what_errors_look_like(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    assert "HTTPValidationError" not in str(doc)
    for path, method, operation in operations(doc):
        responses = operation["responses"]
        assert "422" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith("4"):
                assert list(response.get("content", {})) == [PROBLEM], (method, path, status)
        if "requestBody" in operation:
            assert {"400", "413"} <= set(responses), (method, path)
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if "cursor" in names:
            assert "400" in responses, (method, path)
        if path.startswith(("/api/v1/", "/auth/")):
            assert "429" in responses, (method, path)


def test_example_webhook_url_fits_its_own_pattern() -> None:
    assert re.fullmatch(WEBHOOK_URL_PATTERN, EXAMPLE_WEBHOOK_URL)
    assert parse_webhook_url(EXAMPLE_WEBHOOK_URL, ["discord.com"]).webhook_id


async def test_operations_that_need_credentials_say_so_and_refuse_without(
    client: httpx.AsyncClient,
) -> None:
    doc = await document(client)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/api/v1/clips"]["get"]["security"] == [{}, {"bearer": []}]
    required = [
        (path, method)
        for path, method, operation in operations(doc)
        if operation.get("security") == [{"bearer": []}]
    ]
    assert ("get", "/api/v1/me") in [(m, p) for p, m in required]
    for path, method in required:
        answer = await client.request(method, concrete(path))
        assert answer.status_code == 401, (method, path, answer.text)
    # A wrong token is refused by the one `caller` every operation shares (and each try
    # counts against the strict rate for failed credentials, so once is enough).
    wrong = await client.get("/api/v1/me", headers={"Authorization": "Bearer cw_not_a_token"})
    assert wrong.status_code == 401, wrong.text


async def test_a_route_removed_while_it_is_changed_is_404_not_500(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Schemathesis's two workers found it: PATCH read the route, a DELETE removed it, the
    UPDATE matched no row. The removal is replayed here inside the PATCH's own flush."""
    created = await client.post(
        "/api/v1/routes", json={"name": "r", "webhook_url": EXAMPLE_WEBHOOK_URL}, headers=admin
    )
    route_id = created.json()["id"]

    def remove_first(session: Session, _context: object, _instances: object) -> None:
        if any(isinstance(row, NotificationRoute) for row in session.dirty):
            # Plain SQL: the session must not learn of it, as it would not of another request.
            session.execute(text("DELETE FROM notification_route WHERE id = :id"), {"id": route_id})

    event.listen(Session, "before_flush", remove_first)
    try:
        answer = await client.patch(
            f"/api/v1/routes/{route_id}", json={"name": "renamed"}, headers=admin
        )
    finally:
        event.remove(Session, "before_flush", remove_first)
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"] == PROBLEM

"""Checks on JSON request bodies before FastAPI parses them: size, strict JSON, and authentication first.

FastAPI reads a route's whole body into memory and parses it with the
standard json module, which accepts NaN, Infinity and lone UTF-16
surrogates. Such values pass pydantic and fail later (PostgreSQL and orjson
reject them), as a 500. FastAPI also parses the body before it runs the
route's dependencies, so an anonymous caller with a malformed body would
get the body's error (422) instead of the request to authenticate (401).

RequestBodyGuard checks only the bodies of routes whose body FastAPI parses
(routes with a body model). Routes that read `request.stream()` or
`request.body()` themselves keep their own limits; the catalog's streamed
upload is one.
"""

from email.message import Message

import orjson
from fastapi import HTTPException, params, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Message as AsgiMessage, Receive, Scope, Send

from medgov_shared.utf8 import utf8_problem
from medgov_shared.web.auth import current_principal

# The standard json module that FastAPI parses with, and FastAPI's error
# handling, recurse once per level and fail near 1,000 levels. The bound is a
# choice far above the nesting of FHIR resources and the services' request models.
MAX_JSON_DEPTH = 128


def json_depth(value: object) -> int:
    """Return the nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict):
            children = list(current.values())
        elif isinstance(current, list):
            children = current
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _media_type(content_type: str) -> str:
    message = Message()
    message["content-type"] = content_type
    return message.get_content_type()


def is_json_media_type(content_type: str | None) -> bool:
    """Return True for application/json and */*+json; FastAPI parses no other body as JSON."""
    if not content_type:
        return False
    media_type = _media_type(content_type)
    return media_type == "application/json" or media_type.endswith("+json")


def _needs_authentication(dependant: Dependant) -> bool:
    pending = [dependant]
    while pending:
        current = pending.pop()
        if current.call is current_principal:
            return True
        pending.extend(current.dependencies)
    return False


class RequestBodyGuard:
    """ASGI middleware: 413 over the body limit, 415 for a non-JSON body, 401 before 422 for bad JSON.

    The limit is the route's `max_body_size` (a FastAPI route option) when
    set, else `max_body_bytes`.

    The checks run when the route first reads the body, because only then
    has routing put the matched route into the scope. They raise
    HTTPException, which FastAPI turns into the response.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._authenticated_routes: dict[tuple[str, str], bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        checked = False

        async def guarded_receive() -> AsgiMessage:
            nonlocal checked
            route = scope.get("route")
            if checked or not _parses_json_body(route):
                return await receive()
            checked = True
            try:
                body = await self._read(Request(scope), receive, _limit(route, self.max_body_bytes))
            except HTTPException as error:
                if error.status_code == status.HTTP_413_CONTENT_TOO_LARGE:
                    # As for a malformed body, a caller without a valid token gets 401 first.
                    self._authenticate(route, Request(scope))
                raise
            self._check(route, Request(scope), body)
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, guarded_receive, send)

    async def _read(self, request: Request, receive: Receive, limit: int) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit, declared=int(declared))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _check(self, route: APIRoute, request: Request, body: bytes) -> None:
        if not body:
            return  # FastAPI reports a missing required body itself
        problem = _body_problem(request.headers.get("content-type"), body)
        if problem is not None:
            self._authenticate(route, request)
            raise problem

    def _authenticate(self, route: APIRoute, request: Request) -> None:
        """Raise the 401 that the route's own dependencies would raise, so the body is not judged first."""
        key = (route.path, ",".join(sorted(route.methods or ())))
        if key not in self._authenticated_routes:
            self._authenticated_routes[key] = _needs_authentication(route.dependant)
        if not self._authenticated_routes[key]:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        request.app.state.token_verifier.verify(token.strip())


def _limit(route: APIRoute, default: int) -> int:
    """Return the route's own FastAPI `max_body_size` when it sets one, else the service-wide limit."""
    own = getattr(route, "max_body_size", None)
    return own if own is not None else default


def _too_large(limit: int, *, declared: int | None = None) -> HTTPException:
    size = f"{declared} bytes declared, " if declared is not None else ""
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                         f"request body too large: {size}more than the limit of {limit} bytes")


def _parses_json_body(route: object) -> bool:
    if not isinstance(route, APIRoute) or route.body_field is None:
        return False
    return not isinstance(route.body_field.field_info, params.Form | params.File)


def _body_problem(content_type: str | None, body: bytes) -> HTTPException | None:
    if not is_json_media_type(content_type):
        return HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                             f"unsupported content type {content_type!r}; send the body as application/json")
    problem = utf8_problem(body)
    if problem is not None:
        # orjson's own message for this names a surrogate and line 1, column 1, wherever the byte is.
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid JSON body: {problem}; send JSON as UTF-8")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        # orjson rejects NaN, Infinity, lone surrogates and invalid UTF-8, and names the position.
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid JSON body: {error}")
    if json_depth(value) > MAX_JSON_DEPTH:
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                             f"invalid JSON body: nested deeper than {MAX_JSON_DEPTH} levels")
    return None

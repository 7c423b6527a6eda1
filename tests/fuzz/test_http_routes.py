"""Malformed requests to every HTTP route of every service, enumerated from each app's OpenAPI document.

Each service runs in this process on the real PostgreSQL server and Kafka
broker (see services.py). The caller has every role, so requests get past
authorization and reach validation and the domain. Every response must be
below 500, and every 4xx must carry a message that names the field or the
problem.
"""

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import given, settings

from .budget import CASES_RUN, examples_for, fuzz_settings
from .http_strategies import FuzzRequest, Operation, operations, requests_for
from .services import all_roles_headers, openapi_documents

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]

# Framework messages that name neither a field nor a cause.
GENERIC_DETAILS = {"Not Found", "Bad Request", "Unprocessable Entity", "Internal Server Error", "Method Not Allowed"}
ERROR_LOCATIONS = {"body", "query", "path", "header"}

DOCUMENTS = openapi_documents()
CASES = [(name, operation) for name, document in DOCUMENTS.items() for operation in operations(document)]


def describe(request: FuzzRequest, response: httpx.Response) -> str:
    body = (request.content or b"")[:300]
    return (
        f"{request.method} {request.url[:300]} params={list(request.params)[:5]} content-type={request.content_type} "
        f"defects={request.defects} body={body!r} -> {response.status_code} {response.text[:500]}"
    )


def check_response(request: FuzzRequest, response: httpx.Response) -> None:
    """Assert no server error, and that a client error names its field or cause."""
    assert response.status_code < 500, describe(request, response)
    if response.status_code < 400:
        return

    assert response.headers.get("content-type", "").startswith("application/json"), describe(request, response)
    detail = response.json().get("detail")
    if request.may_miss_route and response.status_code in (404, 405) and str(detail) in GENERIC_DETAILS:
        return  # the generated path parameter left no route to match
    if isinstance(detail, list):
        assert detail, describe(request, response)
        for item in detail:
            assert item.get("msg"), describe(request, response)
            assert item.get("loc"), describe(request, response)
            assert item["loc"][0] in ERROR_LOCATIONS, describe(request, response)
    elif isinstance(detail, dict):
        assert str(detail.get("message") or detail.get("msg") or "").strip(), describe(request, response)
    else:
        assert isinstance(detail, str) and detail.strip(), describe(request, response)
        assert detail not in GENERIC_DETAILS, describe(request, response)


async def fuzz_operation(client: httpx.AsyncClient, operation: Operation, components: dict[str, Any],
                         headers: dict[str, str], examples: int) -> None:
    """Run hypothesis in a worker thread; each example's request runs on this event loop, where the service lives."""
    loop = asyncio.get_running_loop()

    def send(request: FuzzRequest) -> httpx.Response:
        request_headers = dict(headers)
        if request.content_type is not None:
            request_headers["Content-Type"] = request.content_type
        call = client.request(request.method, request.url, params=request.params, content=request.content,
                              headers=request_headers)
        CASES_RUN["HTTP requests"] += 1
        return asyncio.run_coroutine_threadsafe(call, loop).result(timeout=120)

    # No example database: every operation shares this inner function's source, so hypothesis would
    # replay one route's saved failures against the others.
    @settings(fuzz_settings(examples), database=None)
    @given(requests_for(operation, components))
    def property_holds(request: FuzzRequest) -> None:
        check_response(request, send(request))

    await asyncio.to_thread(property_holds)


# The services' own tasks use the random module on the event loop while hypothesis draws in its
# worker thread, which hypothesis reports as a strategy touching global random state.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize(("service_name", "operation"), CASES, ids=[f"{name}:{op.label}" for name, op in CASES])
async def test_route_rejects_malformed_requests(service_name: str, operation: Operation, service_clients, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients(service_name)
    components = DOCUMENTS[service_name].get("components", {}).get("schemas", {})
    examples = examples_for(quick=25, share=0.23 / len(CASES))

    await fuzz_operation(client, operation, components, all_roles_headers(jwt_secret), examples)

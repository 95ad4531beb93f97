"""The API keeps the promises of its OpenAPI document, for any request the document allows.

Schemathesis generates requests from the document — valid and invalid ones,
single calls and sequences of them — and checks every answer: no 5xx, only
documented statuses and bodies, valid data accepted, invalid data refused.
The application runs in uvicorn on the test database; the examples per
operation are bounded in ``schemathesis.toml``. Every run tries the same examples
(derandomized), so a result never depends on luck; ``make fuzz`` searches anew with
ten times as many, and each failure it finds becomes a fixed example in a test.
"""

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit
{% if cookiecutter.idempotency_keys %}
from uuid import uuid4
{% endif %}

import pytest
import schemathesis
from hypothesis import settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from {{ cookiecutter.package_name }}.db.engine import build_engine
{% if cookiecutter.idempotency_keys %}
from {{ cookiecutter.package_name }}.idempotency.middleware import HEADER
{% endif %}
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .support import empty_tables, settings_for, start_server

# The document as the application publishes it at /openapi.json.
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())
SEARCH = os.environ.get("CONTRACT_SEARCH") == "1"  # make fuzz
EXAMPLES = settings(derandomize=True) if not SEARCH else settings(max_examples=200)
# An answer as the document declares it, for a request that is meant to be refused.
DECLARED = [status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, port = start_server(database_url, tmp_path_factory.mktemp("contract") / "server.log")
    yield f"http://127.0.0.1:{port}"
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    asyncio.run(forget_what_was_written(database_url))


async def forget_what_was_written(database_url: str) -> None:
    engine = build_engine(settings_for(database_url))
    await empty_tables(engine)
    {{ cookiecutter.__await }}engine.dispose()


{% if cookiecutter.idempotency_keys %}
def as_a_client_would_send(case: schemathesis.Case[Any]) -> None:
    """What schemathesis makes up where a real client sends what the service gave it.

    A generated ``Idempotency-Key`` becomes one no other request used: the same key
    with another request is refused with 422, as documented, which the check of
    valid data would count as a valid request refused; ``test_idempotency.py``
    tests what a key does.
    """
    if case.headers and HEADER in case.headers:
        case.headers[HEADER] = str(uuid4())


{% endif %}
@schema.parametrize()
@EXAMPLES
def test_every_operation_keeps_its_promises(case: schemathesis.Case[Any], served: str) -> None:
{% if cookiecutter.idempotency_keys %}
    as_a_client_would_send(case)
{% endif %}
    case.call_and_validate(base_url=served)


def test_sequences_of_calls_keep_their_promises(served: str) -> None:
    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"base_url": served}
{% if cookiecutter.idempotency_keys %}

        def before_call(self, case: schemathesis.Case[Any]) -> None:
            as_a_client_would_send(case)
{% endif %}

    steps = settings(EXAMPLES, max_examples=200 if SEARCH else 10, stateful_step_count=6)
    Workflow.run(settings=settings(steps, deadline=None))


def test_next_links_and_made_up_ones_get_declared_answers(served: str) -> None:
    """The pages a client walks by their next links, and an ``after`` it makes up."""
    create, listing = schema["/items"]["POST"], schema["/items"]["GET"]
    for n in range(3):
        assert create.Case(body={"name": f"walked-{n}"}).call(base_url=served).status_code == 201
    query: dict[str, Any] | None = {"limit": 1}
    pages = 0
    while query is not None:
        case = listing.Case(query=query)
        response = case.call(base_url=served)
        case.validate_response(response)
        pages += 1
        link = response.json()["next"]
        query = dict(parse_qsl(urlsplit(link).query)) if link else None
    assert pages >= 3
    for after in ["-1", "1.5", "not-an-id", "9" * 30]:
        case = listing.Case(query={"after": after})
        response = case.call(base_url=served)
        assert response.status_code == 422
        case.validate_response(response, checks=DECLARED)
{% if cookiecutter.idempotency_keys %}


def test_a_key_sent_again_with_another_request_gets_the_declared_422(served: str) -> None:
    create = schema["/items"]["POST"]
    key = str(uuid4())
    first = create.Case(body={"name": f"first-{key}"}, headers={HEADER: key})
    assert first.call(base_url=served).status_code == 201

    again = create.Case(body={"name": f"again-{key}"}, headers={HEADER: key})
    response = again.call(base_url=served)

    assert response.status_code == 422
    again.validate_response(response, checks=DECLARED)
{% endif %}

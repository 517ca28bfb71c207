"""The whole OpenAPI document, fuzzed by schemathesis against the real add-on process.

Every operation gets generated requests, valid and invalid ones (schemathesis' positive
and negative modes, plus its coverage phase: edge values, unsupported methods, missing
parameters), each sent with the token and without it. Whatever comes back must be no
5xx and exactly what the document says: a documented status code, its content type and
a body valid against its schema (and a 405 carries Allow). It runs on a throwaway data
dir, so the destructive routes (restore, delete, retention runs) are fuzzed too.

HOMEIQ_FUZZ_EXAMPLES sets the examples per operation: the default keeps this run to
a couple of minutes in the test command; ``scripts/bench fuzz`` runs it long.
HOMEIQ_FUZZ_SEED fixes what is generated: the test command always sends the same cases
(a red CI run is then this change's doing, and reproducible); ``scripts/bench fuzz``
sets it to ``random`` to look further each time.
The WebSocket route is no HTTP exchange schemathesis can make; test_bad_input.py covers it.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
from typing import Any
import urllib.request

import orjson
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.addon.factory import batch, service_event, state_event
from tests.addon.module_addon import sockets_lifted
from tests.conftest import AddonProcess

EXAMPLES = int(os.environ.get("HOMEIQ_FUZZ_EXAMPLES", "100"))
_SEED = os.environ.get("HOMEIQ_FUZZ_SEED", "20261201")
SEED = None if _SEED == "random" else int(_SEED)
# All operations run inside one test item: its time grows with the examples.
pytestmark = pytest.mark.timeout(max(600, EXAMPLES * 6))
# Without the token every answer is a 401, an unsupported method's too: the token is
# checked before anything else is revealed.
CHECKS_ANONYMOUS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CHECKS = [*CHECKS_ANONYMOUS, unsupported_method, negative_data_rejection, ignored_auth]


def _fetch(server: AddonProcess, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=None if body is None else orjson.dumps(body),
        headers=server.headers,
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return orjson.loads(answer.read())


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AddonProcess, Any]]:
    """The add-on with some events, and its document (served with the token)."""
    with sockets_lifted():
        server = AddonProcess(Path(tmp_path_factory.mktemp("fuzz")) / "data")
        server.data_dir.mkdir()
        server.start()
        _fetch(server, "/api/v1/ingest", batch([state_event(i) for i in range(30)]))
        _fetch(server, "/api/v1/ingest", batch([service_event(i) for i in range(5)]))
        _fetch(server, "/api/v1/backups", {})
        document = _fetch(server, "/api/openapi.json")
    try:
        yield server, document
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed: tuple[AddonProcess, Any]) -> BaseSchema:
    server, document = fuzzed
    config = schemathesis.Config.from_dict(
        {
            "base-url": server.url,
            # schemathesis refuses a null seed: without the key it draws one.
            **({} if SEED is None else {"seed": SEED}),
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                # The token is sent (or not) by the test itself.
                "with-security-parameters": False,
                # Unknown query parameters are ignored, as HTTP services commonly do.
                "allow-extra-parameters": False,
                "database": "none",
            },
            "suppress-health-check": ["all"],
            "operations": [
                # The coverage phase would build batches at the edges of maxItems: 5000
                # generated events, minutes each. The fuzzing phase covers ingest.
                {"include-path": "/api/v1/ingest", "phases": {"coverage": {"enabled": False}}}
            ],
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/v1/ws")


@schema.parametrize()
def test_every_answer_is_what_the_document_says(
    case: Case, fuzzed: tuple[AddonProcess, Any], socket_enabled: None
) -> None:
    server, _ = fuzzed
    answer = case.call(headers=server.headers)
    case.validate_response(
        answer, checks=CHECKS, headers=server.headers, transport_kwargs={"headers": server.headers}
    )
    # The query goes out as text: minimal=1 may be generated as the string or the number.
    open_route = case.path == "/api/v1/health" and str((case.query or {}).get("minimal")) == "1"
    for anonymous in ({}, {"Authorization": "Bearer not-the-token"}):
        answer = case.call(headers=anonymous)
        case.validate_response(answer, checks=CHECKS_ANONYMOUS, headers=anonymous)
        assert answer.status_code == 401 or open_route, (anonymous, answer.text)

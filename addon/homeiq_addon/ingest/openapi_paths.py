"""OpenAPI declaration of POST /api/v1/ingest: the contract's Batch in, its Ack out."""

from __future__ import annotations

from typing import Any, Final

from ..contract import Ack, Batch
from ..server.openapi import answer, error_answer, operation, ref

STRUCTS: Final = (Batch, Ack)
PATHS: Final[dict[str, dict[str, Any]]] = {
    "/api/v1/ingest": {
        "post": operation(
            "Store a batch of events (idempotent by batch_id)",
            {
                "200": answer("committed (or already committed: duplicate=true)", ref(Ack)),
                "400": error_answer("malformed JSON, or a damaged gzip/deflate body"),
                "413": error_answer("body (compressed or inflated) larger than max_body_mb"),
                "415": error_answer("a Content-Encoding other than gzip or deflate"),
                "422": error_answer("breaks the wire contract; message names the field path"),
            },
            body=ref(Batch),
        )
    },
}

"""What a hostile or broken client can send to the add-on's doors, and what it gets.

Against the real process on 127.0.0.1: compressed bodies (bombs, lies, unknown codings),
headers HTTP does not allow, and clients that stall. Raw sockets where aiohttp's client
would refuse to send the bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
import gzip
from pathlib import Path
import socket
import time
import urllib.request
import zlib

import aiohttp
import orjson
import pytest

from tests.addon.factory import batch, state_event
from tests.conftest import AddonProcess, running_addon

MiB = 1024 * 1024


def gzip_bomb(inflated_mib: int) -> bytes:
    """A gzip body of zeros that inflates to ``inflated_mib`` MiB (about 1/1000 of it)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    return b"".join(packer.compress(zeros) for _ in range(inflated_mib)) + packer.flush()


def peak_rss_kib(server: AddonProcess) -> int:
    """The add-on process's peak resident memory so far (VmHWM), in KiB."""
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def exchange(server: AddonProcess, request: bytes, *, then: bytes | None = None) -> bytes:
    """Send raw bytes (and ``then`` a moment later, or end the sending side if it is b""),
    then read until the add-on closes the connection (10 s at most)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        if then is not None:
            time.sleep(0.2)  # so the add-on reads the two parts separately
            if then:
                sock.sendall(then)
            else:
                sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def documented(server: AddonProcess, path: str, method: str = "post") -> set[int]:
    """The statuses the add-on's own OpenAPI document lists for an operation."""
    request = urllib.request.Request(f"{server.url}/api/openapi.json", headers=server.headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        responses = orjson.loads(answer.read())["paths"][path][method]["responses"]
    return {int(status) for status in responses}


def http_request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


def split_response(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), orjson.loads(body)


async def send(
    server: AddonProcess, body: bytes, headers: dict[str, str], path: str = "/api/v1/ingest"
) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}{path}", data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


@pytest.fixture
def stall_server(tmp_path: Path, socket_enabled: None) -> Iterator[AddonProcess]:
    """An add-on that waits only a second for a stalled client (hidden arguments)."""
    with running_addon(
        tmp_path / "data",
        extra_args=["--header-timeout", "1", "--idle-timeout", "1", "--body-timeout", "1"],
    ) as server:
        yield server


# --- compressed bodies -------------------------------------------------------------------


def test_gzip_bomb_without_token_is_401_and_never_inflated(addon_server: AddonProcess) -> None:
    bomb = gzip_bomb(512)
    assert len(bomb) < MiB
    before = peak_rss_kib(addon_server)
    head = (
        "POST /api/v1/ingest HTTP/1.1\nHost: x\nConnection: close\n"
        f"Content-Type: application/json\nContent-Encoding: gzip\nContent-Length: {len(bomb)}\n"
    )
    # The add-on closes the connection only once it has read the whole body.
    status, answer = split_response(exchange(addon_server, http_request(head, bomb)))
    assert (status, answer["error"]) == (401, "missing_token")
    # Inflating it would cost 512 MiB; the service's peak stays within a few MiB.
    assert peak_rss_kib(addon_server) - before < 8 * 1024


async def test_gzip_bomb_with_token_stops_at_the_limit(addon_server: AddonProcess) -> None:
    before = peak_rss_kib(addon_server)
    status, answer = await send(
        addon_server, gzip_bomb(512), {**addon_server.headers, "Content-Encoding": "gzip"}
    )
    assert status == 413
    assert answer == {
        "error": "body_too_large",
        "message": "body: larger than the 16 MB limit (max_body_mb)",
    }
    # Inflated only up to the 16 MiB limit, never the 512 MiB.
    assert peak_rss_kib(addon_server) - before < 32 * 1024
    assert addon_server.row_count() == 0


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "deflate-raw"])
async def test_compressed_batch_is_stored(addon_server: AddonProcess, coding: str) -> None:
    body = batch([state_event(i) for i in range(5)])
    plain = orjson.dumps(body)
    if coding == "deflate-raw":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data, coding = packer.compress(plain) + packer.flush(), "deflate"
    else:
        data = zlib.compress(plain) if coding == "deflate" else gzip.compress(plain)
    status, answer = await send(
        addon_server, data, {**addon_server.headers, "Content-Encoding": coding}
    )
    assert (status, answer["accepted"]) == (200, 5)
    assert addon_server.row_count() == 5


async def test_gzip_of_several_members_is_one_body(addon_server: AddonProcess) -> None:
    plain = orjson.dumps(batch([state_event(i) for i in range(3)]))
    data = gzip.compress(plain[:40]) + gzip.compress(plain[40:])
    headers = {**addon_server.headers, "Content-Encoding": "gzip"}
    assert (await send(addon_server, data, headers))[0] == 200
    assert addon_server.row_count() == 3


BAD_ENCODINGS = [
    pytest.param(
        "gzip", b'{"batch_id": "x", "events": []}', 400, "invalid_encoding", id="gzip-on-json"
    ),
    pytest.param("deflate", b"not deflate at all", 400, "invalid_encoding", id="deflate-junk"),
    pytest.param("gzip", gzip.compress(b"{}")[:-6], 400, "invalid_encoding", id="gzip-cut"),
    pytest.param("gzip", b"", 400, "invalid_encoding", id="gzip-empty"),
    pytest.param(
        "gzip", gzip.compress(b"{}") + b"trailing", 400, "invalid_encoding", id="gzip-trailing"
    ),
    pytest.param("br", b"{}", 415, "unsupported_encoding", id="brotli"),
    pytest.param("gzip, gzip", b"{}", 415, "unsupported_encoding", id="stacked"),
]


@pytest.mark.parametrize(("coding", "data", "status", "code"), BAD_ENCODINGS)
async def test_content_encoding_that_does_not_fit_is_a_clear_4xx(
    addon_server: AddonProcess, coding: str, data: bytes, status: int, code: str
) -> None:
    answer = await send(addon_server, data, {**addon_server.headers, "Content-Encoding": coding})
    assert answer[0] == status
    assert answer[1]["error"] == code
    assert "Content-Encoding" in str(answer[1]["message"])
    assert addon_server.row_count() == 0
    assert status in documented(addon_server, "/api/v1/ingest")


async def test_only_ingest_takes_a_compressed_body(addon_server: AddonProcess) -> None:
    status, answer = await send(
        addon_server,
        gzip.compress(b'{"name": "x"}'),
        {**addon_server.headers, "Content-Encoding": "gzip"},
        path="/api/v1/retention/policies",
    )
    assert (status, answer["error"]) == (415, "unsupported_encoding")
    assert "/api/v1/ingest" in str(answer["message"])
    assert status in documented(addon_server, "/api/v1/retention/policies")


# --- the Authorization header ------------------------------------------------------------


@pytest.mark.parametrize("bad", [b"\x01", b"\x7f", b"\x00", b"\r"])
def test_header_with_control_character_is_never_echoed(
    addon_server: AddonProcess, bad: bytes
) -> None:
    token = addon_server.token
    request = http_request(
        f"GET /api/v1/health HTTP/1.1\nHost: x\nAuthorization: Bearer {token}\n",
    ).replace(b"\r\n\r\n", bad + b"tail\r\n\r\n")
    response = exchange(addon_server, request)
    assert token.encode() not in response
    addon_server.stop()  # the log is complete
    assert token not in addon_server.log_path.read_text(errors="replace")
    status, answer = split_response(response)
    assert status == 400
    assert answer["error"] == "bad_request"
    assert str(answer["message"]).startswith("the request is not valid HTTP")


# A request head up to the Authorization header's value.
STATS_AUTHORIZATION = (
    b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"Bearer \xff\xfe\xfd", id="latin1-only"),
        pytest.param(b"Bearer TOKEN\xc3", id="token-then-broken-utf8"),
        pytest.param("Bearer TOKENé".encode(), id="token-then-utf8"),
        pytest.param(b"Bearer \x80" + b"a" * 40, id="continuation-byte"),
    ],
)
def test_authorization_that_is_not_utf8_or_ascii_is_401(
    addon_server: AddonProcess, value: bytes
) -> None:
    token = addon_server.token
    value = value.replace(b"TOKEN", token.encode())
    response = exchange(addon_server, STATS_AUTHORIZATION + value + b"\r\n\r\n")
    status, answer = split_response(response)
    assert (status, answer["error"]) == (401, "invalid_token")
    assert token.encode() not in response


@pytest.mark.parametrize("value", ["Bearer ", "Bearer", "Bearer    ", "bearer \t"])
def test_empty_bearer_token_is_401(addon_server: AddonProcess, value: str) -> None:
    request = STATS_AUTHORIZATION + value.encode() + b"\r\n\r\n"
    status, answer = split_response(exchange(addon_server, request))
    assert status == 401
    assert answer["error"] in ("missing_token", "invalid_token")


# --- stalled clients ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"GET /api/v1/health?minimal=1 HTTP/1.1\r\nHo", id="half-a-head"),
    ],
)
def test_connection_without_a_complete_request_is_closed(
    stall_server: AddonProcess, sent: bytes
) -> None:
    # exchange() reads until the server closes; it fails after 10 s if it never does.
    assert exchange(stall_server, sent) == b""


def test_stalled_body_is_answered_408_and_closed(stall_server: AddonProcess) -> None:
    head = (
        f"POST /api/v1/ingest HTTP/1.1\nHost: x\nAuthorization: Bearer {stall_server.token}\n"
        "Content-Type: application/json\nContent-Length: 1000\n"
    )
    status, answer = split_response(exchange(stall_server, http_request(head, b'{"batch_id"')))
    assert (status, answer["error"]) == (408, "request_timeout")
    assert stall_server.row_count() == 0
    assert status in documented(stall_server, "/api/v1/ingest")


def test_stalled_compressed_body_is_answered_408(stall_server: AddonProcess) -> None:
    data = gzip.compress(orjson.dumps(batch([state_event(1)])))
    head = (
        f"POST /api/v1/ingest HTTP/1.1\nHost: x\nAuthorization: Bearer {stall_server.token}\n"
        f"Content-Encoding: gzip\nContent-Length: {len(data)}\n"
    )
    status, _ = split_response(exchange(stall_server, http_request(head, data[:-5])))
    assert status == 408


def test_broken_chunk_in_a_body_is_400_at_once(addon_server: AddonProcess) -> None:
    head = (
        f"POST /api/v1/ingest HTTP/1.1\nHost: x\nAuthorization: Bearer {addon_server.token}\n"
        "Transfer-Encoding: chunked\n"
    )
    # The add-on waits 60 s for a stalled body; exchange() gives up after 10.
    response = exchange(addon_server, http_request(head, b'3\r\n{"b\r\n'), then=b"zz\r\n")
    status, answer = split_response(response)
    assert (status, answer["error"]) == (400, "bad_request")
    assert addon_server.row_count() == 0


def test_client_leaving_mid_body_is_no_error(addon_server: AddonProcess) -> None:
    head = (
        f"POST /api/v1/ingest HTTP/1.1\nHost: x\nAuthorization: Bearer {addon_server.token}\n"
        "Content-Length: 1000\n"
    )
    assert exchange(addon_server, http_request(head, b'{"batch_id"'), then=b"") == b""
    request = http_request("GET /api/v1/health?minimal=1 HTTP/1.1\nConnection: close\n")
    assert exchange(addon_server, request).startswith(b"HTTP/1.1 200 ")
    addon_server.stop()
    assert " ERROR " not in addon_server.log()


def test_idle_keep_alive_connection_is_closed(stall_server: AddonProcess) -> None:
    request = http_request("GET /api/v1/health?minimal=1 HTTP/1.1\nHost: x\n")
    response = exchange(stall_server, request)
    # One answer, then the connection stays idle, then the add-on closes it.
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.count(b"HTTP/1.1") == 1


def test_second_request_still_served_after_a_slow_first_one(stall_server: AddonProcess) -> None:
    # Timeouts bound stalls, not ordinary keep-alive use: two requests on one connection.
    one = http_request("GET /api/v1/health?minimal=1 HTTP/1.1\nHost: x\n")
    two = http_request("GET /api/v1/health?minimal=1 HTTP/1.1\nHost: x\nConnection: close\n")
    response = exchange(stall_server, one + two)
    assert response.count(b"HTTP/1.1 200 ") == 2

"""The writer against real engines: every answer classified, nothing lost, nothing twice.

victoria-metrics never refuses content and never sends Retry-After; what InfluxDB 2
answers in those cases is played by ``influx_answers``, a small HTTP server answering
with the statuses, bodies and headers InfluxDB 2 documents (no InfluxDB 2 runs here).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
import time
from typing import Any

from aiohttp import web
import pytest

from homeiq_addon.errors import HomeIQError
from homeiq_addon.mirror.errors import AccessRefused, ContentRefused, EngineUnavailable, MirrorError
from homeiq_addon.mirror.points import event_lines
from homeiq_addon.mirror.replay import ReplayWindow
from homeiq_addon.mirror.writer import (
    MAX_RETRY_AFTER_S,
    Backoff,
    Target,
    TargetWriter,
    retry_after_seconds,
)
from tests.conftest import free_port
from tests.mirror.conftest import TOKEN, Answer, influx_error
from tests.mirror.engines import VictoriaMetrics, VmAgent, VmAuth, samples, wait_until

T0_US = 1_795_341_600_000_000  # 2026-11-22T10:00:00Z


def sensor_lines(entities: int, per_entity: int, *, first: int = 0) -> list[str]:
    """Numeric state events, 1 ms apart: each line is two samples (events, value)."""
    lines = []
    for n in range(first, first + entities * per_entity):
        entity = n % entities
        event = {
            "event_type": "state_changed",
            "entity_id": f"sensor.s{entity}",
            "domain": "sensor",
            "state": str(n),
            "numeric_value": float(n),
        }
        lines += event_lines(event, strings=False, time_us=T0_US + n * 1000)
    return lines


def target(url: str, token: str = "", name: str = "vm") -> Target:
    return Target(name=name, url=url, token=token, org="home", bucket="homeiq")


def sample_counts(*servers: VictoriaMetrics) -> Counter[tuple[Any, ...]]:
    """How often each (series, millisecond) is stored across the servers."""
    counts: Counter[tuple[Any, ...]] = Counter()
    for key, values in samples(*servers).items():
        for t, _ in values:
            counts[(*key, t)] += 1
    return counts


# --- authentication through vmauth ---------------------------------------------------------


async def test_a_wrong_token_is_refused_access_and_the_right_one_writes(
    guarded: VmAuth, victoria: VictoriaMetrics
) -> None:
    lines = sensor_lines(3, 2)
    for token in ("wrong-token-0123", ""):
        async with TargetWriter(target(guarded.url, token, name="guarded")) as writer:
            with pytest.raises(AccessRefused) as refused:
                await writer.test_connection()
            # vmauth answers an unknown token 400 and quotes it: never in our message.
            message = refused.value.message
            assert message.startswith("guarded: HTTP 40")
            assert "check the token" in message
            assert "wrong-token-0123" not in message
            with pytest.raises(AccessRefused):
                await writer.write(lines)
    assert samples(victoria) == {}

    async with TargetWriter(target(guarded.url, TOKEN)) as writer:
        reachable = await writer.test_connection()
        outcome = await writer.write(lines)
    assert reachable.version == "1.8.0"  # what victoria-metrics says it speaks
    assert outcome.written == len(lines)
    assert sum(sample_counts(victoria).values()) == 2 * len(lines)


async def test_the_errors_are_the_add_ons_own(guarded: VmAuth) -> None:
    """A route that calls ``test_connection`` answers 502 with the error's code."""
    async with TargetWriter(target(guarded.url, "nope")) as writer:
        with pytest.raises(HomeIQError) as refused:
            await writer.test_connection()
    assert refused.value.status == 502
    assert refused.value.code == "target_refused_access"


# --- an engine that is not there -------------------------------------------------------------


async def test_nothing_listening_is_engine_unavailable(socket_enabled: None) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with TargetWriter(target(url)) as writer:
        with pytest.raises(EngineUnavailable) as down:
            await writer.test_connection()
        assert down.value.message.startswith(f"vm: cannot reach {url}")
        assert down.value.retry_after is None
        with pytest.raises(EngineUnavailable):
            await writer.write(sensor_lines(1, 1))


async def test_tls_to_a_plain_http_engine_is_refused_access(victoria: VictoriaMetrics) -> None:
    url = victoria.url.replace("http://", "https://")
    async with TargetWriter(target(url)) as writer:
        with pytest.raises(AccessRefused) as refused:
            await writer.write(sensor_lines(1, 1))
    assert "TLS" in refused.value.message


async def test_the_engine_killed_mid_stream_gets_everything_exactly_once(
    victoria: VictoriaMetrics,
) -> None:
    """A stream of batches; the engine SIGKILLed while they flow, started again. The
    writer reports the engine down and writes again until taken; the batches the engine
    acknowledged shortly before it died are written again from the replay window (it
    had not kept them); deduplication keeps every point once."""
    lines = sensor_lines(50, 400)  # 20,000 lines, 40,000 samples
    batches = [lines[first : first + 1000] for first in range(0, len(lines), 1000)]
    errors: list[MirrorError] = []
    window = ReplayWindow()
    acked = asyncio.Event()

    async def outbox() -> None:
        """What the add-on's outbox does for a target: batches from a cursor that moves
        on each acknowledgement, and goes back by the replay window after an outage."""
        cursor = 0
        outage_began: list[float] = []

        def failed(error: MirrorError) -> None:
            errors.append(error)
            if not outage_began:
                outage_began.append(time.monotonic())

        async with TargetWriter(target(victoria.url)) as writer:
            while cursor < len(batches):
                backoff = Backoff(first_s=0.05, max_s=0.3)
                outcome = await writer.deliver(batches[cursor], backoff, failed)
                assert outcome.refused == []
                window.acknowledged(cursor)
                cursor += 1
                acked.set()
                if outage_began:
                    rewind = window.replay_from(outage_began.pop())
                    cursor = cursor if rewind is None else min(cursor, rewind)
                await asyncio.sleep(0.01)

    stream = asyncio.create_task(outbox())
    for _ in range(5):
        await acked.wait()
        acked.clear()
    victoria.kill()
    await asyncio.to_thread(wait_until, lambda: bool(errors), 10, "the writer sees the kill")
    victoria.restart()
    await asyncio.wait_for(stream, 120)

    assert errors
    assert all(isinstance(error, EngineUnavailable) for error in errors)
    counts = sample_counts(victoria)
    assert len(counts) == 2 * len(lines)
    assert set(counts.values()) == {1}


# --- scale-out: vmagent in front of two nodes --------------------------------------------------


async def test_through_vmagent_each_point_is_on_exactly_one_node(
    sharding_agent: VmAgent, two_nodes: list[VictoriaMetrics]
) -> None:
    """Sharded by entity_id to two nodes; one node stopped in the middle of the stream
    and started again (vmagent queues for it meanwhile)."""
    lines = sensor_lines(40, 25)
    half = len(lines) // 2
    async with TargetWriter(target(sharding_agent.url, name="agent")) as writer:
        for first in range(0, half, 100):
            assert (await writer.write(lines[first : first + 100])).written == 100
        two_nodes[1].stop()
        for first in range(half, len(lines), 100):
            assert (await writer.write(lines[first : first + 100])).written == 100
    two_nodes[1].restart()

    expected = 2 * len(lines)
    await asyncio.to_thread(
        wait_until, lambda: sum(sample_counts(*two_nodes).values()) >= expected, 90,
        "vmagent delivers to both nodes",
    )  # fmt: skip
    counts = sample_counts(*two_nodes)
    assert len(counts) == expected
    assert set(counts.values()) == {1}
    # The sharding label is vmagent's own: the series arrive with the tags written.
    assert {key for _, labels, _ in counts for key, _ in labels} == {
        "domain", "entity_id", "event_type",
    }  # fmt: skip
    # Really sharded: each entity on one node, both nodes used.
    on_node = [{dict(labels)["entity_id"] for _, labels in samples(node)} for node in two_nodes]
    assert on_node[0] and on_node[1]
    assert not on_node[0] & on_node[1]
    assert on_node[0] | on_node[1] == {f"sensor.s{n}" for n in range(40)}


# --- what InfluxDB 2 answers ---------------------------------------------------------------------


async def test_refused_points_are_set_aside_and_the_rest_is_written(
    influx_answers: tuple[str, list[Answer], list[str]],
) -> None:
    url, answers, taken = influx_answers
    lines = sensor_lines(4, 10)
    bad = {lines[3], lines[28]}

    def refuse_bad(raw: bytes) -> web.Response:
        for line in raw.decode().split("\n"):
            if line in bad:
                return influx_error(400, "invalid", f"unable to parse '{line[:20]}': bad")
        return web.Response(status=204)

    answers.append(refuse_bad)
    async with TargetWriter(target(url, "t0k")) as writer:
        outcome = await writer.write(lines)
    assert outcome.written == len(lines) - 2
    assert {refused.line for refused in outcome.refused} == bad
    assert all("HTTP 400: unable to parse" in r.reason for r in outcome.refused)
    assert sorted(taken) == sorted(set(lines) - bad)


async def test_a_target_that_refuses_every_point_is_refusing_access(
    influx_answers: tuple[str, list[Answer], list[str]],
) -> None:
    url, answers, taken = influx_answers
    answers.append(lambda raw: influx_error(422, "unprocessable entity", "schema rejected"))
    async with TargetWriter(target(url)) as writer:
        with pytest.raises(AccessRefused) as refused:
            await writer.write(sensor_lines(4, 5))
        # One point alone is still set aside.
        outcome = await writer.write(sensor_lines(1, 1))
    assert "refused all 20 points" in refused.value.message
    assert [r.reason for r in outcome.refused] == ["vm: HTTP 422: schema rejected"]
    assert taken == []


@pytest.mark.parametrize(
    ("answer", "kind", "retry_after"),
    [
        (lambda: influx_error(429, "too many requests", "slow down", **{"Retry-After": "7"}),
         EngineUnavailable, 7.0),
        (lambda: influx_error(503, "unavailable", "service unavailable"), EngineUnavailable, None),
        (lambda: web.Response(status=502, text="bad gateway"), EngineUnavailable, None),
        (lambda: influx_error(401, "unauthorized", "unauthorized access"), AccessRefused, None),
        (lambda: influx_error(403, "forbidden", "insufficient permissions"), AccessRefused, None),
        (lambda: influx_error(404, "not found", 'bucket "homeiq" not found'), AccessRefused, None),
        (lambda: influx_error(413, "request too large", "too large"), ContentRefused, None),
    ],
)  # fmt: skip
async def test_each_answer_has_its_kind(
    influx_answers: tuple[str, list[Answer], list[str]],
    answer: Callable[[], web.Response],
    kind: type[MirrorError],
    retry_after: float | None,
) -> None:
    url, answers, _ = influx_answers
    answers.append(lambda raw: answer())
    async with TargetWriter(target(url)) as writer:
        if kind is ContentRefused:
            outcome = await writer.write(sensor_lines(1, 1))
            assert outcome.written == 0
            assert outcome.refused[0].reason == "vm: HTTP 413: too large"
            return
        with pytest.raises(kind) as error:
            await writer.write(sensor_lines(1, 1))
    if isinstance(error.value, EngineUnavailable):
        assert error.value.retry_after == retry_after
        delay = Backoff().next_delay(error.value)
        assert delay == retry_after if retry_after else 0.5 <= delay <= 1.0


async def test_test_connection_takes_influxdb_2s_answer_to_an_empty_write(
    influx_answers: tuple[str, list[Answer], list[str]],
) -> None:
    url, answers, taken = influx_answers
    answers.append(lambda raw: influx_error(
        400, "invalid", "writing requires points",
        **{"X-Influxdb-Build": "OSS", "X-Influxdb-Version": "v2.7.11"},
    ))  # fmt: skip
    async with TargetWriter(target(url)) as writer:
        reachable = await writer.test_connection()
    assert (reachable.build, reachable.version) == ("OSS", "v2.7.11")
    assert taken == []


# --- waiting between tries --------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds("120", now) == 120
    in_90_s = format_datetime(datetime(2026, 11, 22, 10, 1, 30, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(in_90_s, now) == 90
    assert retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT", now) == 0
    assert retry_after_seconds("999999", now) == MAX_RETRY_AFTER_S
    for unreadable in (None, "", "soon", "-5", "1.5"):
        assert retry_after_seconds(unreadable, now) is None


def test_backoff_doubles_to_its_ceiling_and_starts_over_after_a_success() -> None:
    backoff = Backoff(first_s=1, max_s=8)
    down = EngineUnavailable("down")
    delays = [backoff.next_delay(down) for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.next_delay(AccessRefused("token")) == 60
    backoff.succeeded()
    assert 0.5 <= backoff.next_delay(down) <= 1


def test_the_replay_window_goes_back_to_the_first_batch_acknowledged_within_it() -> None:
    window = ReplayWindow(window_s=10)
    for when, first in [(0, 0), (5, 100), (12, 200), (20, 300)]:
        window.acknowledged(first, now=when)
    # Down from 21: what was acknowledged since 11 is written again.
    assert window.replay_from(21) == 200
    assert window.replay_from(21) is None  # nothing acknowledged since

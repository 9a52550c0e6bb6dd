"""Sink failures: fail-closed refuses new requests but loses no answered one, fail-open
serves and counts, back-pressure waits for room, and a dead sink at shutdown spills to the log.

As root, chmod does not stop a write; the file sink is broken by replacing its directory
with a regular file, then repaired by putting the directory back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from gateway.audit import cli as audit_cli
from gateway.audit.chain import CLOSED, Chain, Where, read_entry, verify
from gateway.audit.records import Instance, Redactor, timestamp
from gateway.audit.sinks import FileSink, Sealed
from gateway.audit.trail import AuditTrail, build_audit_trail, control_record
from gateway.audit.worker import SinkWorker
from gateway.call import Call
from gateway.nova.faults import Fault
from tests.support.audit import (
    KEY,
    Answer,
    audit_overrides,
    read_lines,
    read_records,
    requests_by_global_id,
    send,
    simulator,
    write_key,
)
from tests.support.gateway import admin_url, base_url, gateway_conf, running_gateway
from tests.support.waiting import wait_until, wait_until_blocking


def break_directory(directory: Path, saved: Path) -> None:
    directory.rename(saved)
    directory.write_text("a file where the audit directory was\n")


def repair_directory(directory: Path, saved: Path) -> None:
    directory.unlink()
    saved.rename(directory)


async def ready(listeners: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(admin_url(listeners) + "/readyz") as response,
    ):
        return response.status, await response.json()


async def test_fail_closed_refuses_new_requests_and_loses_no_answered_one(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    saved = tmp_path / "saved"
    overrides = audit_overrides(trail, write_key(tmp_path), failure_mode="fail-closed")
    answers: list[Answer] = []
    async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
        base = base_url(listeners)
        audit = listeners.gate.audit
        assert audit is not None
        for _ in range(3):
            answers.append(await send(base, "GET", "/v2.1/servers"))
        await wait_until(lambda: audit.depth() == 0 and audit.workers[0].written >= 4)

        break_directory(trail, saved)
        # Admitted before anyone knows the sink is broken: answered, record queued.
        answers.append(await send(base, "GET", "/v2.1/servers"))
        await wait_until(lambda: not audit.healthy, what="the sink to fail")
        refused = [await send(base, "GET", "/v2.1/servers") for _ in range(3)]
        answers.extend(refused)
        assert [answer.status for answer in refused] == [503] * 3
        assert json.loads(refused[0].body)["serviceUnavailable"]["message"].startswith(
            "The gateway cannot record this request"
        )
        status, body = await ready(listeners)
        assert status == 503 and body["checks"]["audit_sinks_ok"] is False

        repair_directory(trail, saved)
        await wait_until(lambda: audit.healthy and audit.depth() == 0, what="recovery")
        answers.append(await send(base, "GET", "/v2.1/servers"))
        assert answers[-1].status == 200
        assert (await ready(listeners))[0] == 200
        assert audit.stats()["refused"] == 3 and audit.stats()["dropped"] == 0

    records = requests_by_global_id(read_records(trail))
    for answer in answers:  # every answered request, refused ones included: one record
        assert len(records.get(answer.global_id, [])) == 1, answer
    assert [records[a.global_id][0]["decision"]["reason"] for a in refused] == [
        "audit_unavailable"
    ] * 3
    assert len(list(trail.glob("*.jsonl"))) == 2  # the outage started a new file
    assert audit_cli.main(["verify", "--key-file", str(tmp_path / "audit.key"), str(trail)]) == 0


async def test_a_file_replaced_by_a_directory_continues_in_a_new_file(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    overrides = audit_overrides(trail, write_key(tmp_path))
    answers: list[Answer] = []
    async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
        base = base_url(listeners)
        audit = listeners.gate.audit
        assert audit is not None
        answers.append(await send(base, "GET", "/v2.1/servers"))
        await wait_until(lambda: audit.depth() == 0 and audit.workers[0].written >= 2)
        [current] = trail.glob("*.jsonl")
        moved = tmp_path / "moved.jsonl"
        current.rename(moved)
        current.mkdir()  # someone puts a directory where the file was
        for _ in range(3):
            answers.append(await send(base, "GET", "/v2.1/servers"))
        assert {answer.status for answer in answers} == {200}
    records = requests_by_global_id(read_records(trail) + read_records_of(moved))
    assert all(len(records[answer.global_id]) == 1 for answer in answers)
    files = [moved, *sorted(p for p in trail.glob("*.jsonl") if p.is_file())]
    assert (
        audit_cli.main(["verify", "--key-file", str(tmp_path / "audit.key"), *map(str, files)]) == 0
    )


def read_records_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_fail_open_serves_counts_and_reports_the_gap(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    saved = tmp_path / "saved"
    overrides = audit_overrides(trail, write_key(tmp_path), failure_mode="fail-open", queue_size=3)
    answers: list[Answer] = []
    async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
        base = base_url(listeners)
        audit = listeners.gate.audit
        assert audit is not None
        await wait_until(lambda: audit.depth() == 0)
        break_directory(trail, saved)
        for _ in range(10):
            answers.append(await send(base, "GET", "/v2.1/servers"))
        assert {answer.status for answer in answers} == {200}  # fail-open: served
        assert not audit.healthy and audit.failures >= 1
        assert audit.dropped == 10 - 2 * 3  # twice the queue is kept, the rest counted
        status, body = await ready(listeners)
        assert status == 200 and body["checks"]["audit_sinks_ok"] is False
        repair_directory(trail, saved)
        await wait_until(lambda: audit.healthy and audit.depth() == 0, what="recovery")
    records = read_records(trail)
    kept = requests_by_global_id(records)
    assert sum(answer.global_id in kept for answer in answers) == 6
    [gap] = [record for record in records if record["event"] == "audit_gap"]
    assert gap["dropped"] == 4 and gap["statuses"] == {"200": 4} and gap["reason"] == "queue_full"


class SlowSink:
    """A sink that takes its time: stands in for a disk under load (not a mock: it stores)."""

    name = "slow"
    batch_size = 1

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lines: list[str] = []

    def write(self, batch: Sequence[Sealed]) -> None:
        time.sleep(self.seconds)
        self.lines.extend(item.line for item in batch)

    def tick(self) -> None:
        return None

    def close(self) -> None:
        return None


def some_call() -> Call:
    return Call("req-x", "GET", "/v2.1/servers", [], "127.0.0.1", "http", "h")


def request(number: int) -> dict[str, Any]:
    return {"event": "request", "time": timestamp(), "request_id": f"req-{number}"}


@pytest.mark.parametrize("fail_closed", [True, False])
async def test_backpressure_waits_for_room_then_refuses_or_serves(fail_closed: bool) -> None:
    sink = SlowSink(0.05)
    worker = SinkWorker(
        sink,
        Chain(KEY, "slow"),
        "json",
        tick_interval=0.01,
        closing_record=lambda: control_record(CLOSED, Instance.current()),
    )
    trail = AuditTrail(
        [worker], Instance.current(), Redactor(), fail_closed=fail_closed, capacity=3,
        backpressure_timeout=2.0,
    )  # fmt: skip
    trail.start()
    for number in range(3):
        trail.offer(request(number))
    started = time.monotonic()
    await trail.admit(some_call())  # waits until the writer made room
    assert 0 < time.monotonic() - started < 2.0 and trail.depth() < 3
    trail.backpressure_timeout = 0.0
    for number in range(3, 6):  # full again, below the hard limit (twice the capacity)
        trail.offer(request(number))
    if fail_closed:
        with pytest.raises(Fault) as refused:
            await trail.admit(some_call())
        assert (refused.value.status, refused.value.reason) == (503, "audit_unavailable")
        assert refused.value.headers["Retry-After"] == "1"
    else:
        await trail.admit(some_call())
    await trail.close()
    assert len(sink.lines) == 1 + 6 + 1 and trail.dropped == 0  # opened, records, closed
    [report] = verify([read_entry(_where(i), line, KEY) for i, line in enumerate(sink.lines)])
    assert report.problem is None and report.closed


def _where(index: int) -> Where:
    return Where("lines", index + 1)


async def test_a_dead_sink_at_shutdown_spills_sealed_records_to_the_log(tmp_path: Path) -> None:
    trail_dir = tmp_path / "trail"
    conf = gateway_conf(audit_overrides(trail_dir, write_key(tmp_path), flush_timeout=0.3))
    trail = build_audit_trail(conf)
    assert trail is not None
    await wait_until(lambda: trail.depth() == 0)
    break_directory(trail_dir, tmp_path / "saved")
    for number in range(5):
        trail.offer(request(number))
    with structlog.testing.capture_logs() as logs:
        await trail.close()
    spilled = [entry["record"] for entry in logs if entry["event"] == "audit_record_unwritten"]
    assert len(spilled) == 5
    assert any(entry["event"] == "audit_flush_timeout" for entry in logs)
    # The spilled lines are sealed and carry on the chain of the file.
    repair_directory(trail_dir, tmp_path / "saved")
    lines = read_lines(trail_dir) + spilled
    entries = [read_entry(_where(i), line, KEY) for i, line in enumerate(lines)]
    [report] = verify(entries)
    assert report.problem is None and report.last_seq == 6 and not report.closed


def test_file_sink_rotates_by_age(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, "audit-t-1", fsync="every-record", rotate_seconds=0.05)
    chain = Chain(KEY, "t")
    for number in range(3):
        sealed, line = chain.seal(request(number))
        sink.write([Sealed(sealed, line, "x")])
        # Until the open file is older than rotate_seconds (the condition itself).
        wait_until_blocking(
            lambda: time.monotonic() - sink._opened >= sink.rotate_seconds, what="the file's age"
        )
    sink.close()
    files = sorted(tmp_path.glob("*.jsonl"))
    assert [path.name for path in files] == [
        "audit-t-1-000001.jsonl", "audit-t-1-000002.jsonl", "audit-t-1-000003.jsonl",
    ]  # fmt: skip
    assert all(len(path.read_text().splitlines()) == 1 for path in files)


def test_audit_needs_a_key_to_start(tmp_path: Path) -> None:
    from gateway.audit.chain import KeyFileError, load_key
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match="hmac_key_file: required"):
        gateway_conf({"audit.enabled": True})
    short = tmp_path / "short"
    short.write_bytes(b"0123456789")
    with pytest.raises(KeyFileError, match="at least 32"):
        load_key(short)
    with pytest.raises(ConfigError, match="messaging_transport_url"):
        gateway_conf(
            {
                "audit.enabled": True,
                "audit.hmac_key_file": str(write_key(tmp_path)),
                "audit.sinks": ["messaging"],
            }
        )

"""Write-ahead: a forwarded call's decision is stored before ``write_ahead`` returns, concurrent
decisions share writes (group commit) without the writer lingering, and a decision that cannot
be stored in time refuses the call (fail-closed) or lets it go (fail-open); the outcome follows.

The trail runs with its real writer thread and file sink; the sink is gated where a test needs a
stalled disk. The file is read back as bytes on disk, independently of the trail's bookkeeping.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import worker as worker_module
from gateway.audit.chain import CLOSED, Chain, read_files, verify
from gateway.audit.records import Instance, Redactor
from gateway.audit.sinks import FileSink
from gateway.audit.trail import AuditTrail, control_record
from gateway.audit.worker import SinkWorker
from gateway.call import Call
from gateway.nova.faults import Fault
from tests.support.audit import KEY, GatedSink, action_call, write_key
from tests.support.waiting import wait_until

CALLS = 40


def file_trail(
    directory: Path, *, fsync: str = "every-record", **options: Any
) -> tuple[AuditTrail, GatedSink]:
    sink = GatedSink(FileSink(directory, "audit-test", fsync=fsync))
    worker = SinkWorker(
        sink,
        Chain(KEY, "audit-test/file"),
        "json",
        retry_interval=0.2,
        tick_interval=0.05,
        closing_record=lambda: control_record(CLOSED, Instance.current()),
    )
    trail = AuditTrail([worker], Instance.current(), Redactor(), **options)
    trail.start()
    return trail, sink


def on_disk(directory: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def decisions_on_disk(directory: Path) -> set[str]:
    return {r["request_id"] for r in on_disk(directory) if r.get("event") == "decision"}


async def test_each_decision_is_on_disk_when_write_ahead_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trail, sink = file_trail(tmp_path)
    await wait_until(lambda: trail.depth() == 0, what="the opening record")
    # A writer that lingered for company would take 10 s per batch from now on:
    # write-ahead records must not wait for it.
    monkeypatch.setattr(worker_module, "LINGER_SECONDS", 10.0)
    late: list[str] = []

    async def one(call: Call) -> None:
        await trail.write_ahead(call)
        if call.request_id not in decisions_on_disk(tmp_path):
            late.append(call.request_id)

    calls = [action_call(f"srv-{n}") for n in range(CALLS)]
    started = time.monotonic()
    await asyncio.gather(*(one(call) for call in calls))
    assert time.monotonic() - started < 5.0  # no linger
    assert late == []
    # Group commit: the concurrent decisions went to disk in fewer writes than calls.
    decision_writes = sink.writes[1:]  # the first write is the opening record
    assert sum(decision_writes) == CALLS and len(decision_writes) < CALLS
    assert max(decision_writes) > 1
    await trail.close()


async def test_write_ahead_returns_only_after_the_sink_stored_the_record(tmp_path: Path) -> None:
    trail, sink = file_trail(tmp_path)
    await wait_until(lambda: trail.depth() == 0)
    sink.hold()
    call = action_call()
    task = asyncio.create_task(trail.write_ahead(call))
    await wait_until(sink.entered.is_set, what="the write to reach the stalled disk")
    assert not task.done() and call.request_id not in decisions_on_disk(tmp_path)
    sink.release()
    await asyncio.wait_for(task, 10)
    assert call.request_id in decisions_on_disk(tmp_path)
    call.status = 202
    trail.observe(call)
    await trail.close()
    records = on_disk(tmp_path)
    [outcome] = [r for r in records if r.get("event") == "outcome"]
    assert (outcome["request_id"], outcome["forwarded"], outcome["status"]) == (
        call.request_id, True, 202,
    )  # fmt: skip


async def test_a_decision_not_stored_in_time_refuses_the_call_and_says_it_never_left(
    tmp_path: Path,
) -> None:
    trail, sink = file_trail(tmp_path, write_ahead_timeout=0.2)
    await wait_until(lambda: trail.depth() == 0)
    sink.hold()
    call = action_call()
    with pytest.raises(Fault) as refused:
        await trail.write_ahead(call)
    assert (refused.value.status, refused.value.reason) == (503, "audit_unavailable")
    assert trail.write_ahead_failed == 1 and trail.refused == 1
    # The pipeline answers the 503 and observes the call: its outcome says it never left.
    call.decision, call.status, call.fault = "error", 503, refused.value
    trail.observe(call)
    sink.release()
    await trail.close()
    records = [r for r in on_disk(tmp_path) if r.get("request_id") == call.request_id]
    assert [r["event"] for r in records] == ["decision", "outcome"]
    assert records[1]["forwarded"] is False and records[1]["reason"] == "audit_unavailable"
    [report] = verify(read_files(sorted(tmp_path.glob("*.jsonl")), KEY))
    assert report.problem is None and report.closed


@pytest.mark.parametrize("fail_closed", [True, False])
async def test_a_failing_sink_answers_at_once_not_at_the_deadline(
    tmp_path: Path, fail_closed: bool
) -> None:
    directory = tmp_path / "trail"
    trail, _ = file_trail(directory, fail_closed=fail_closed, write_ahead_timeout=20.0)
    await wait_until(lambda: trail.depth() == 0)
    directory.rename(tmp_path / "saved")
    directory.write_text("a file where the audit directory was\n")  # root ignores chmod
    started = time.monotonic()
    if fail_closed:
        with pytest.raises(Fault):
            await trail.write_ahead(action_call())
    else:
        await trail.write_ahead(action_call())  # fail-open: forwarded anyway
    assert time.monotonic() - started < 10.0
    assert trail.write_ahead_failed == 1 and not trail.healthy
    if fail_closed:  # the next one is refused before anything is queued
        queued = trail.depth()
        with pytest.raises(Fault):
            await trail.write_ahead(action_call())
        assert trail.depth() == queued
    directory.unlink()
    (tmp_path / "saved").rename(directory)
    await wait_until(lambda: trail.healthy and trail.depth() == 0, what="recovery")
    await trail.close()


async def test_a_client_gone_while_waiting_leaves_an_outcome_that_never_left(
    tmp_path: Path,
) -> None:
    trail, sink = file_trail(tmp_path)
    await wait_until(lambda: trail.depth() == 0)
    sink.hold()
    call = action_call()
    task = asyncio.create_task(trail.write_ahead(call))
    await wait_until(sink.entered.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    call.status = 499
    trail.observe(call)
    sink.release()
    await trail.close()
    [outcome] = [r for r in on_disk(tmp_path) if r.get("event") == "outcome"]
    assert outcome["forwarded"] is False and outcome["status"] == 499


@pytest.mark.parametrize(
    ("scope", "method", "written_ahead"),
    [
        ("mutating", "POST", True),
        ("mutating", "DELETE", True),
        ("mutating", "GET", False),
        ("all", "GET", True),
        ("off", "POST", False),
    ],
)
async def test_which_calls_are_written_ahead(
    tmp_path: Path, scope: str, method: str, written_ahead: bool
) -> None:
    trail, _ = file_trail(tmp_path, write_ahead=scope)
    call = action_call(method=method)
    await trail.write_ahead(call)
    call.status = 200
    trail.observe(call)
    await trail.close()
    events = [r["event"] for r in on_disk(tmp_path) if r.get("request_id") == call.request_id]
    assert events == (["decision", "outcome"] if written_ahead else ["request"])


def test_an_unknown_write_ahead_scope_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write_ahead"):
        AuditTrail([], Instance.current(), Redactor(), write_ahead="sometimes")


async def test_write_ahead_through_the_configured_trail(tmp_path: Path) -> None:
    """The [audit] options reach the trail (scope, timeout) as build_audit_trail reads them."""
    from gateway.audit.trail import build_audit_trail
    from tests.support.audit import audit_overrides
    from tests.support.gateway import gateway_conf

    overrides = audit_overrides(
        tmp_path / "trail", write_key(tmp_path), write_ahead="all", write_ahead_timeout=2.5
    )
    trail = build_audit_trail(gateway_conf(overrides))
    assert trail is not None
    try:
        assert (trail.write_ahead_scope, trail.write_ahead_timeout) == ("all", 2.5)
    finally:
        await trail.close()


async def test_verify_lists_a_decision_without_outcome_apart_from_tampering(
    tmp_path: Path,
) -> None:
    """A gateway that stops between storing a decision and recording the answer leaves an
    unfinished decision: `audit verify` names it, and passes (nothing was altered)."""
    import io

    from gateway.audit import cli as audit_cli

    trail, _ = file_trail(tmp_path)
    finished, unfinished = action_call("srv-a"), action_call("srv-b")
    await trail.write_ahead(finished)
    await trail.write_ahead(unfinished)
    finished.status = 202
    trail.observe(finished)
    await trail.close()  # `unfinished` is never observed: its answer is never recorded
    key_file = write_key(tmp_path)
    out = io.StringIO()
    code = audit_cli.main(["verify", "--key-file", str(key_file), str(tmp_path)], out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "2 written ahead, 1 with their outcome, 1 unfinished" in text
    [line] = [line for line in text.splitlines() if line.startswith("UNFINISHED")]
    assert unfinished.request_id in line and "/v2.1/servers/srv-b/action" in line
    assert "FAIL" not in text


async def test_fail_open_with_a_failing_sink_forwards_without_waiting_and_stays_bounded(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "trail"
    trail, _ = file_trail(directory, fail_closed=False, write_ahead_timeout=20.0, capacity=5)
    await wait_until(lambda: trail.depth() == 0)
    directory.rename(tmp_path / "saved")
    directory.write_text("a file where the audit directory was\n")
    await trail.write_ahead(action_call())  # the sink fails under this one
    await wait_until(lambda: not trail.healthy)
    started = time.monotonic()
    for _ in range(20):  # no waiting for a sink that is known to fail
        call = action_call()
        await trail.write_ahead(call)
        call.status = 202
        trail.observe(call)
    assert time.monotonic() - started < 5.0
    assert trail.depth() <= 2 * 5 + 1  # bounded: the rest is counted, never queued
    assert trail.dropped > 0
    directory.unlink()
    (tmp_path / "saved").rename(directory)
    await wait_until(lambda: trail.healthy and trail.depth() == 0, what="recovery")
    await trail.close()
    events = [r.get("event") for r in on_disk(directory)]
    assert "audit_gap" in events and events[-1] == "chain_closed"

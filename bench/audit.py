"""What the audit trail costs the pipeline: write-ahead (group commit) vs after the answer, fsync
every batch vs interval, one client and many; and a record's cost on the trail alone.

Owns the audit section of ``bench.micro``; it must never change gateway behaviour, and
writes only under a temporary directory it removes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import statistics
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bench.micro import (
    JSON_HEADERS,
    LOCK_BODY,
    Finish,
    PipelineRun,
    Settings,
    Variant,
    _sequential,
    compare,
    gateway,
)

CLIENTS = 16  # concurrent clients of the concurrent comparison
# (name, [audit] write_ahead, [audit] file_fsync); None: no audit trail at all.
VARIANTS: tuple[tuple[str, str | None, str | None], ...] = (
    ("no audit", None, None),
    ("after the answer (write_ahead off), fsync interval", "off", "interval"),
    ("write-ahead, fsync interval (default)", "mutating", "interval"),
    ("write-ahead, fsync every batch", "mutating", "every-record"),
)


def _overrides(
    directory: Path, key_file: Path, write_ahead: str | None, fsync: str | None
) -> dict[str, Any]:
    if write_ahead is None or fsync is None:
        return {"audit.enabled": False}
    return {
        "audit.enabled": True,
        "audit.sinks": ["file"],
        "audit.file_directory": str(directory),
        "audit.hmac_key_file": str(key_file),
        "audit.file_fsync": fsync,
        "audit.write_ahead": write_ahead,
    }


async def _nothing() -> dict[str, Any]:
    return {}


async def _drain_after_blocks(gate: Any) -> Finish:
    """Variant.prepare: after each block, wait for the writer (its CPU counts too)."""
    trail = gate.audit
    if trail is None:
        return _nothing

    async def drain() -> dict[str, Any]:
        start, cpu_start = time.perf_counter(), time.process_time()
        deadline = start + 60
        while trail.depth() > 0 and time.perf_counter() < deadline:
            await asyncio.sleep(0.002)
        return {
            "drain_ms": (time.perf_counter() - start) * 1000,
            "drain_cpu_s": time.process_time() - cpu_start,
            "audit": dict(trail.stats()),
        }

    return drain


async def _concurrent(
    session: aiohttp.ClientSession, url: str, count: int, ids: Sequence[str]
) -> tuple[list[float], float]:
    """``count`` lock requests from CLIENTS clients at once: (wall per request, process CPU)."""
    walls: list[float] = []
    cpu_start = time.process_time()
    turns = iter(range(count))

    async def client() -> None:
        for index in turns:  # shared: each request is sent once, by whichever client is free
            start = time.perf_counter()
            target = f"{url}/v2.1/servers/{ids[index % len(ids)]}/action"
            async with session.post(target, data=LOCK_BODY, headers=JSON_HEADERS) as response:
                await response.read()
            walls.append(time.perf_counter() - start)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return walls, time.process_time() - cpu_start


def _table(runs: Sequence[PipelineRun], clients: int) -> list[str]:
    base = runs[0]
    lines = [
        "| variant | clients | wall µs/req (median) | p99 | added wall µs (median) | CPU µs/req "
        "| spread % | CPU ratio to no audit | records per write | statuses |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        audit = run.extra.get("audit", {})
        batches = audit.get("batches") or 0
        per_write = f"{audit['written'] / batches:.1f}" if batches else "—"
        lines.append(
            f"| {run.name} | {clients} | {run.wall_us_median:.0f} | {run.wall_us_p99:.0f} "
            f"| {run.wall_us_median - base.wall_us_median:+.0f} | {run.cpu_us_per_request:.0f} "
            f"| {run.cpu_spread_pct:.0f} | {run.cpu_us_per_request / base.cpu_us_per_request:.2f}"
            f" | {per_write} | {run.statuses} |"
        )
    return lines


async def bench_audit(
    upstream: str, ids: Sequence[str], settings: Settings
) -> tuple[list[str], dict[str, Any]]:
    lines = ["### audit: write-ahead and fsync", ""]
    raw: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nova-gateway-micro-audit-") as scratch:
        key_file = Path(scratch) / "audit.key"
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
        for clients, driver in ((1, _sequential), (CLIENTS, _concurrent)):
            variants = [
                Variant(
                    name,
                    _overrides(Path(scratch) / f"trail-{clients}-{n}", key_file, scope, fsync),
                    _drain_after_blocks,
                )
                for n, (name, scope, fsync) in enumerate(VARIANTS)
            ]
            runs = await compare(upstream, ids, variants, settings, driver=driver)
            raw[f"clients_{clients}"] = [run.__dict__ for run in runs]
            lines += [
                f"`lock` requests through the in-process gateway + novasim (one process, one "
                f"loop), {clients} client(s), {settings.rounds} rounds × {settings.block} per "
                "variant, variants rotated per round. CPU = the whole process's (every "
                "thread, the audit writer included) per request, counting the wait until the "
                "audit queue is written after each block. Added wall = the median round trip "
                "minus the no-audit one. Records per write: how many records one write (and "
                "fsync) carried.",
                "",
                *_table(runs, clients),
                "",
            ]
        call = await captured_lock_call(upstream, ids)
        lines += await write_ahead_cycles(call, Path(scratch), key_file, settings)
        lines += await audit_per_record(call, Path(scratch), key_file, settings)
    return lines, raw


async def captured_lock_call(upstream: str, ids: Sequence[str]) -> Any:
    """A finished, forwarded ``lock`` Call from an in-process gateway without audit."""
    async with gateway(upstream, {"audit.enabled": False}) as (_gate, url, recorder):
        async with aiohttp.ClientSession() as session:
            await _sequential(session, url, 3, ids)
        return recorder.calls[-1]


def _trail(fsync: str, directory: Path, key_file: Path) -> Any:
    from gateway.audit.chain import CLOSED, Chain, load_key
    from gateway.audit.records import Instance, Redactor
    from gateway.audit.sinks import FileSink, file_stem
    from gateway.audit.trail import AuditTrail, control_record
    from gateway.audit.worker import SinkWorker

    instance = Instance.current()
    stem = file_stem(instance.host, instance.pid)
    worker = SinkWorker(
        FileSink(directory, stem, fsync=fsync),
        Chain(load_key(key_file), f"{stem}/file"),
        "json",
        closing_record=partial(control_record, CLOSED, instance),
    )
    trail = AuditTrail([worker], instance, Redactor())
    trail.start()
    return trail


async def write_ahead_cycles(
    call: Any, scratch: Path, key_file: Path, settings: Settings
) -> list[str]:
    """The trail alone, per call: a record after the answer (``observe``) against write-ahead
    (``write_ahead`` then ``observe``: decision, then outcome), from 1 and CLIENTS tasks.

    Fewer moving parts than the pipeline comparison (no HTTP, no upstream): the difference
    is the write-ahead's own, CPU split between the event loop and the writer thread.
    """
    lines = [
        f"Write-ahead on the trail alone: {settings.block * 2} calls of the captured `lock` "
        f"per repeat, median of {settings.repeat} repeats, from 1 task and from {CLIENTS}; "
        "CPU per call on the event loop and in the writer thread; wall per call (one task: "
        "the latency write-ahead adds before forwarding, plus the outcome).",
        "",
        "| fsync | how | tasks | loop CPU µs/call | writer CPU µs/call | total CPU µs/call "
        "| wall µs/call | records per write |",
        "|---|---|---|---|---|---|---|---|",
    ]
    count = settings.block * 2
    for index, fsync in enumerate(("interval", "every-record")):
        trail = _trail(fsync, scratch / f"cycles-{index}", key_file)
        worker = trail.workers[0]
        try:
            for how, tasks in (
                ("after the answer", 1),
                ("write-ahead", 1),
                ("write-ahead", CLIENTS),
            ):
                loop_cpu, writer_cpu, wall, per_write = [], [], [], []
                for repeat in range(settings.repeat):
                    written, batches = worker.written, worker.batches
                    start, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
                    await _cycles(trail, call, count, tasks, how == "write-ahead", repeat)
                    deadline = time.perf_counter() + 60
                    while trail.depth() > 0 and time.perf_counter() < deadline:
                        await asyncio.sleep(0.0005)
                    main = time.thread_time() - main
                    loop_cpu.append(main / count * 1e6)
                    writer_cpu.append((time.process_time() - cpu - main) / count * 1e6)
                    wall.append((time.perf_counter() - start) / count * 1e6)
                    per_write.append((worker.written - written) / max(1, worker.batches - batches))
                loop, writer = statistics.median(loop_cpu), statistics.median(writer_cpu)
                lines.append(
                    f"| {fsync} | {how} | {tasks} | {loop:.0f} | {writer:.0f} "
                    f"| {loop + writer:.0f} | {statistics.median(wall):.0f} "
                    f"| {statistics.median(per_write):.1f} |"
                )
        finally:
            await trail.close()
    return [*lines, ""]


async def _cycles(
    trail: Any, call: Any, count: int, tasks: int, write_ahead: bool, repeat: int
) -> None:
    turns = iter(range(count))

    async def task() -> None:
        for number in turns:  # a Call of its own each (the same in both columns)
            own = dataclasses.replace(call, request_id=f"req-bench-{repeat}-{number}")
            if write_ahead:
                await trail.write_ahead(own)
            trail.observe(own)

    await asyncio.gather(*(task() for _ in range(tasks)))


async def audit_per_record(
    call: Any, scratch: Path, key_file: Path, settings: Settings
) -> list[str]:
    """The trail alone: ``observe()`` on the loop, then the writer thread, per record."""
    from gateway.audit import worker as worker_module

    lines = [
        f"Per record, the trail alone (`AuditTrail.observe` of a finished `lock` Call, "
        f"{settings.block * 4} records per repeat, then waiting until all are written; median "
        f"of {settings.repeat} repeats), then 200 records one at a time. The writer thread "
        "seals (HMAC chain) and writes off the event loop, a batch per write; one at a time "
        "also shows how long a woken writer lingers for more records (LINGER_SECONDS = "
        f"{worker_module.LINGER_SECONDS}; a write-ahead record never waits for it).",
        "",
        "| fsync | observe() on the loop, CPU µs | writer thread CPU µs | wall µs per record, "
        "queued → written (in bulk) | records/s the file sink sustains | wall µs queued → "
        "written, one record at a time |",
        "|---|---|---|---|---|---|",
    ]
    count = settings.block * 4
    for index, fsync in enumerate(("interval", "every-record")):
        trail = _trail(fsync, scratch / f"direct-{index}", key_file)
        observe: list[float] = []
        writer: list[float] = []
        wall: list[float] = []
        alone: list[float] = []
        call.request_id = "req-bench"  # never in flight: observe() writes request records
        try:
            for _ in range(settings.repeat):
                start, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
                for _ in range(count):
                    trail.observe(call)
                main = time.thread_time() - main
                deadline = time.perf_counter() + 60
                while trail.depth() > 0 and time.perf_counter() < deadline:
                    await asyncio.sleep(0.001)
                wall.append((time.perf_counter() - start) / count * 1e6)
                observe.append(main / count * 1e6)
                writer.append((time.process_time() - cpu - main) / count * 1e6)
            for _ in range(min(200, count)):  # a trickle: every record is its own batch
                start = time.perf_counter()
                trail.observe(call)
                deadline = start + 5
                while trail.depth() > 0 and time.perf_counter() < deadline:
                    await asyncio.sleep(0.0002)  # a sleeping loop leaves the GIL to the writer
                alone.append((time.perf_counter() - start) * 1e6)
        finally:
            await trail.close()
        per_record = statistics.median(wall)
        lines.append(
            f"| {fsync} | {statistics.median(observe):.1f} | {statistics.median(writer):.1f} "
            f"| {per_record:.1f} | {1e6 / per_record:,.0f} | {statistics.median(alone):.0f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.audit [--quick]``: only the audit section of bench.micro."""
    from bench import micro

    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and requests")
    args = parser.parse_args(argv)
    return micro.main(["--only", "audit", *(["--quick"] if args.quick else [])])


if __name__ == "__main__":
    raise SystemExit(main())

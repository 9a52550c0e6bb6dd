"""The macro benchmark: direct, nginx and the gateway (1 and 2 workers) side by side on loopback.

Owns one run (start the servers, rotate the rows over repetitions, measure, report); it
must never aim at anything but 127.0.0.1 nor leave a process it started running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from bench import configs, cpu
from bench.load import REPO, LoadError, run_openloop, run_wrk
from bench.mixed import run_mixed
from bench.procs import LOOPBACK, Child, Children, StartError, free_port, pinned
from bench.profile import report as profile_report
from bench.scenarios import SCENARIOS, TOKEN, Scenario, wrk_script
from bench.stats import fmt, median, rotated
from bench.tools import Tools, locate, nginx_command

# The services the gateway rows use on this machine (RabbitMQ's Erlang VM, Redis).
SERVICE_COMMANDS = ("beam.smp", "redis-server")

# The operator gateway with one part switched off each (``--rows``; not in the default
# run): what each part costs, paired with the whole operator row in the same repetitions.
PART_ROWS: dict[str, tuple[str, ...]] = {
    "operator-no-audit": ("audit.enabled=false",),
    "operator-one-record": ("audit.write_ahead=off",),  # one record after the answer
    "operator-no-limits": ("rate_limit.rules_file=",),
}
DEFAULT_ROWS = ("direct", "nginx", "hop", "gateway-lean", "gateway-operator", "gateway-2w")
ROWS = (*DEFAULT_ROWS, *PART_ROWS)
OPERATOR_ROWS = ("gateway-operator", *PART_ROWS)
# One Python process whose main thread is the event loop: its CPU is shown apart from the
# process's other threads (the audit writer, the notification feed).
LOOP_ROWS = ("hop", "gateway-lean", *OPERATOR_ROWS)
# Issue 15's targets: CPU per request of each gateway row over the bare hop's.
TARGETS = {("gateway-operator", "lock"): 2.0, ("gateway-operator", "show"): 1.5}
LEAN_TARGET = 1.4
START_TIMEOUT_SECONDS = 60.0
RESULTS_DIR = REPO / "bench" / "results"
USAGE = """\
  python -m bench.run            # ~4-5 minutes: lock + show, 3 reps, then fixed-rate latency
  python -m bench.run --quick    # ~1-1.5 minutes: lock only

Writes a Markdown report to stdout (progress on stderr) and the raw samples to
bench/results/run-<time>.json.
"""


@dataclass(frozen=True)
class Layout:
    """Which CPUs each party runs on (None: wherever the scheduler puts it)."""

    name: str
    load: str | None  # wrk / the fixed-rate generator
    upstream: str | None
    single: str | None  # nginx, hop, the one-worker gateways
    multi: str | None  # gateway-2w

    @classmethod
    def choose(cls, name: str) -> Layout:
        if name == "pinned" and cpu.NPROC >= 2 and shutil.which("taskset"):
            # perf-anchors.md: load + upstream on cpu0, a one-process SUT alone on cpu1.
            return cls("pinned", "0", "0", "1", "0-1")
        return cls("unpinned", None, None, None, None)


@dataclass
class Row:
    name: str
    port: int
    child: Child | None = None  # None for direct: the upstream itself is measured
    skipped: str | None = None


@dataclass
class Sample:
    kind: str  # closed (wrk) | fixed (open-loop generator)
    scenario: str
    row: str
    rep: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    sut_cpu_s: float
    upstream_cpu_s: float
    load_cpu_s: float
    wall_s: float
    foreign_pct: float
    non2xx: int
    errors: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_us_per_request(self) -> float | None:
        return self.sut_cpu_s / self.requests * 1e6 if self.requests else None

    @property
    def upstream_us_per_request(self) -> float | None:
        return self.upstream_cpu_s / self.requests * 1e6 if self.requests else None

    @property
    def loop_us_per_request(self) -> float | None:
        """CPU of the SUT's main thread (its event loop) per request, where measured."""
        loop = self.extra.get("main_thread_cpu_s")
        return loop / self.requests * 1e6 if loop is not None and self.requests else None

    @property
    def switches_per_request(self) -> tuple[float, float] | None:
        """Context switches per request of the event loop thread and of the other threads."""
        loop = self.extra.get("main_thread_switches")
        other = self.extra.get("other_threads_switches")
        if loop is None or other is None or not self.requests:
            return None
        return loop / self.requests, other / self.requests

    @property
    def sut_cores(self) -> float:
        return self.sut_cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class Bench:
    """The servers of one run and the samples taken from them."""

    def __init__(self, args: argparse.Namespace, tools: Tools, workdir: Path) -> None:
        self.args = args
        self.tools = tools
        self.workdir = workdir
        self.layout = Layout.choose(args.layout)
        self.children = Children(workdir)
        self.upstream: Child | None = None
        self.upstream_port = 0
        self.server_ids: list[str] = []
        self.keystone_url = ""
        self.key_prefix = f"nova_gateway_bench_{os.getpid()}"
        self.bus = bus_url(args)
        self.profile: list[str] = []
        self.stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.rows: dict[str, Row] = {}
        self.samples: list[Sample] = []
        self.notes: list[str] = list(tools.notes)
        planned = len(args.rows) * (len(args.scenarios) * args.reps + args.rate_reps)
        # Samples taken again because others used the machine: at most a third more
        # (a sixth with --quick, to keep it near a minute).
        self.redo_budget = planned // (6 if args.quick else 3)

    # -- servers ---------------------------------------------------------------------

    def start(self) -> None:
        self.upstream_port = free_port()
        self.upstream = self.children.spawn(
            "novasim",
            pinned(
                [
                    sys.executable,
                    "-m",
                    "novasim",
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(self.upstream_port),
                    "--seed",
                    str(self.args.servers),
                    *self.notify_args(),
                ],
                self.layout.upstream,
            ),
            cwd=REPO,
        )
        self.children.wait_ready_line(self.upstream, START_TIMEOUT_SECONDS)
        self.server_ids = self._server_ids()
        if any(name in OPERATOR_ROWS for name in self.args.rows):
            port = free_port()
            keystone = self.children.spawn(
                "keystone",
                pinned(
                    [sys.executable, "-m", "bench.keystone", "--port", str(port)],
                    self.layout.upstream,
                ),
                cwd=REPO,
            )
            self.keystone_url = self.children.wait_ready_line(keystone, START_TIMEOUT_SECONDS)
        for name in self.args.rows:
            self.rows[name] = self._start_row(name)
        for row in self.rows.values():
            if row.skipped is None:
                row.skipped = self._check_row(row)
            if row.skipped is not None:
                self.note(f"row {row.name} skipped: {row.skipped}")

    def notify_args(self) -> list[str]:
        """novasim publishes Nova's notifications when the run has a bus (the gateways'
        mirror reads them); the run goes without one if RabbitMQ cannot be reached."""
        if self.bus is None:
            return []
        return ["--notify-url", self.bus, "--notify-topic", self.key_prefix + "_topic"]

    def _server_ids(self) -> list[str]:
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self.upstream_port}/v2.1/servers", headers={"X-Auth-Token": TOKEN}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            servers = json.load(response)["servers"]
        ids = sorted(str(server["id"]) for server in servers)
        if not ids:
            raise StartError("the simulator lists no server for p1")
        return ids

    def _start_row(self, name: str) -> Row:
        if name == "direct":
            return Row(name, self.upstream_port)
        port = free_port()
        try:
            if name == "nginx":
                if self.tools.nginx is None:
                    return Row(name, port, skipped="nginx is not installed (apt-get install nginx)")
                argv = nginx_command(
                    self.tools.nginx, self.workdir / "nginx", port, self.upstream_port
                )
                child = self.children.spawn(name, pinned(argv, self.layout.single))
                self.children.wait_port(child, port, START_TIMEOUT_SECONDS)
                return Row(name, port, child)
            if name == "hop":
                argv = [sys.executable, "-m", "bench.hop", "--port", str(port), "--upstream",
                        f"http://{LOOPBACK}:{self.upstream_port}"]  # fmt: skip
                child = self.children.spawn(name, pinned(argv, self.layout.single), cwd=REPO)
                self.children.wait_ready_line(child, START_TIMEOUT_SECONDS)
                return Row(name, port, child)
            workers = 2 if name == "gateway-2w" else 1
            argv = self.gateway_argv(name, port)
            cpus = self.layout.multi if workers > 1 else self.layout.single
            child = self.children.spawn(name, pinned(argv, cpus), cwd=REPO)
            self.children.wait_ready_line(child, START_TIMEOUT_SECONDS)
            return Row(name, port, child)
        except StartError as exc:
            return Row(name, port, skipped=f"did not start: {exc}")

    def gateway_argv(self, name: str, port: int) -> list[str]:
        """The command of a gateway row (and of the profiled operator gateway)."""
        workers = 2 if name == "gateway-2w" else 1
        facts = configs.server_facts(self.bus, self.key_prefix)
        if name in OPERATOR_ROWS:
            options = [*self.args.gateway_option, *PART_ROWS.get(name, ())]
            config = configs.operator(
                self.workdir, self.keystone_url, self.key_prefix, options, facts
            )
        else:
            config = configs.lean(self.workdir, self.args.gateway_option, facts)
        return [
            sys.executable,
            "-m",
            "gateway",
            "--config-file",
            str(config),
            "--upstream-url",
            f"http://{LOOPBACK}:{self.upstream_port}/v2.1",
            "--listen",
            f"{LOOPBACK}:{port}",
            "--admin-listen",
            f"{LOOPBACK}:{free_port()}",
            "--workers",
            str(workers),
        ]

    def run_profile(self, row_name: str) -> None:
        """A gateway row (the operator's by default) once more, alone on its CPU, under
        cProfile while wrk sends each scenario: where its CPU goes, beside the table."""
        row = self.rows.get(row_name)
        if row is None or row.skipped is not None or row.child is None or self.tools.wrk is None:
            return
        self.children.stop(row.child)  # the profiled gateways have its CPU to themselves
        for name in self.args.scenarios:
            port = free_port()
            self.args.results_dir.mkdir(parents=True, exist_ok=True)  # kept for pstats
            out = self.args.results_dir / f"profile-{self.stamp}-{row_name}-{name}.prof"
            argv = self.gateway_argv(row_name, port)
            argv = [argv[0], "-m", "bench.profile", str(out), "--", *argv[3:]]
            child = self.children.spawn(
                f"profiled-{name}", pinned(argv, self.layout.single), cwd=REPO
            )
            self.children.wait_ready_line(child, START_TIMEOUT_SECONDS)
            script = self.workdir / f"{name}.lua"
            script.write_text(wrk_script(SCENARIOS[name], self.server_ids), encoding="utf-8")
            wrk = partial(run_wrk, self.tools.wrk, script, port, self.args.connections)
            wrk(1, self.layout.load, self.workdir / "wrk.log")  # warm: caches, pools
            os.kill(child.pid, signal.SIGUSR1)  # forget start-up and warm-up
            result = wrk(self.args.seconds, self.layout.load, self.workdir / "wrk.log")
            self.children.stop(child)  # SIGTERM: the gateway drains, the profile is written
            measured = median(
                [
                    s.cpu_us_per_request
                    for s in self.samples
                    if s.kind == "closed" and s.scenario == name and s.row == row.name
                    and s.cpu_us_per_request is not None
                ]
            )  # fmt: skip
            if out.exists():
                self.profile += [
                    "",
                    f"#### {name}",
                    "",
                    *profile_report(out, int(result.report["requests"]), measured),
                ]
            else:
                self.note(f"the profiled gateway ({name}) wrote no profile")

    def _check_row(self, row: Row) -> str | None:
        """One request per scenario; a row that cannot answer 2xx is not measured."""
        for name in self.args.scenarios:
            scenario = SCENARIOS[name]
            request = urllib.request.Request(
                f"http://{LOOPBACK}:{row.port}{scenario.path(self.server_ids[0])}",
                data=scenario.body or None,
                headers=scenario.headers(),
                method=scenario.method,
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
            except OSError as exc:  # HTTPError for non-2xx, URLError for sockets
                return f"{scenario.name} answered {exc}"
        return None

    def pgids(self) -> list[int]:
        """Every process group this run leads (upstream and all SUTs, idle or not)."""
        groups = [row.child.pid for row in self.rows.values() if row.child is not None]
        return [*groups, *([self.upstream.pid] if self.upstream else [])]

    def sut_pgid(self, row: Row) -> int:
        child = row.child or self.upstream
        assert child is not None
        return child.pid

    def note(self, text: str) -> None:
        text = text.replace(str(REPO), ".")  # results are shared: no machine paths in them
        self.notes.append(text)
        print(f"# {text}", file=sys.stderr, flush=True)

    # -- sampling ----------------------------------------------------------------------

    def _measure(
        self, run: Callable[[], tuple[dict[str, Any], float]]
    ) -> tuple[dict[str, Any], float, cpu.Interval]:
        before = cpu.Snapshot.take()
        report, load_cpu = run()
        interval = cpu.Interval(before, cpu.Snapshot.take())
        return report, load_cpu, interval

    def _foreign(self, interval: cpu.Interval, load_cpu: float) -> float:
        # The broker and Redis serve the run's own rows: their CPU is not another tenant's.
        services = interval.pid_cpu(cpu.pids_named(SERVICE_COMMANDS))
        ours = (
            interval.group_cpu(self.pgids()) + interval.pid_cpu([os.getpid()]) + load_cpu + services
        )
        return interval.foreign_percent(ours)

    def closed_sample(self, scenario: Scenario, row: Row, rep: int, script: Path) -> Sample:
        assert self.tools.wrk is not None
        log = self.workdir / "wrk.log"
        args = self.args
        if args.warmup > 0:
            run_wrk(
                self.tools.wrk,
                script,
                row.port,
                args.connections,
                args.warmup,
                self.layout.load,
                log,
            )

        def go() -> tuple[dict[str, Any], float]:
            assert self.tools.wrk is not None
            result = run_wrk(
                self.tools.wrk,
                script,
                row.port,
                args.connections,
                args.seconds,
                self.layout.load,
                log,
            )
            return result.report, result.cpu_seconds

        pid = self.sut_pgid(row)
        loop_before = cpu.thread_seconds(pid, pid)
        switches_before = cpu.thread_switches(pid)
        report, load_cpu, interval = self._measure(go)
        loop_after = cpu.thread_seconds(pid, pid)
        switches_after = cpu.thread_switches(pid)
        requests = int(report["requests"])
        seconds = float(report["duration_us"]) / 1e6
        assert self.upstream is not None
        extra: dict[str, Any] = {}
        if row.name in LOOP_ROWS and loop_before is not None and loop_after is not None:
            extra["main_thread_cpu_s"] = loop_after - loop_before
            # A thread started during the sample counts from zero; one that ended is lost.
            moved = {
                tid: count - switches_before.get(tid, 0) for tid, count in switches_after.items()
            }
            extra["main_thread_switches"] = moved.pop(pid, 0)
            extra["other_threads_switches"] = sum(moved.values())
        return Sample(
            kind="closed",
            scenario=scenario.name,
            row=row.name,
            rep=rep,
            requests=requests,
            seconds=seconds,
            rps=requests / seconds if seconds > 0 else 0.0,
            p50_ms=report["p50_us"] / 1000,
            p90_ms=report["p90_us"] / 1000,
            p99_ms=report["p99_us"] / 1000,
            sut_cpu_s=interval.group_cpu([self.sut_pgid(row)]),
            upstream_cpu_s=interval.group_cpu([self.upstream.pid]),
            load_cpu_s=load_cpu,
            wall_s=interval.wall,
            foreign_pct=self._foreign(interval, load_cpu),
            non2xx=int(report["status"]),
            errors=sum(int(report[key]) for key in ("connect", "read", "write", "timeout")),
            extra=extra,
        )

    def fixed_sample(self, scenario: Scenario, row: Row, rep: int) -> Sample:
        args = self.args
        log = self.workdir / "openloop.log"

        def go() -> tuple[dict[str, Any], float]:
            result = run_openloop(
                scenario.name,
                self.server_ids,
                row.port,
                args.rate,
                args.rate_seconds,
                args.rate_connections,
                self.layout.load,
                log,
            )
            return result.report, result.cpu_seconds

        report, load_cpu, interval = self._measure(go)
        statuses: dict[str, int] = report["statuses"]
        assert self.upstream is not None
        requests = int(report["completed"])
        return Sample(
            kind="fixed",
            scenario=scenario.name,
            row=row.name,
            rep=rep,
            requests=requests,
            seconds=float(report["elapsed_s"]),
            rps=float(report["achieved_rate"]),
            p50_ms=float(report["p50_ms"]),
            p90_ms=float(report["p90_ms"]),
            p99_ms=float(report["p99_ms"]),
            # The generator's own start-up is inside the interval; the SUT's is not.
            sut_cpu_s=interval.group_cpu([self.sut_pgid(row)]),
            upstream_cpu_s=interval.group_cpu([self.upstream.pid]),
            load_cpu_s=load_cpu,
            wall_s=interval.wall,
            foreign_pct=self._foreign(interval, load_cpu),
            non2xx=sum(n for s, n in statuses.items() if s.isdigit() and not s.startswith("2")),
            # Socket errors and timeouts, plus requests never sent or never answered.
            errors=sum(n for s, n in statuses.items() if not s.isdigit())
            + int(report["planned"])
            - requests,
            extra={"statuses": statuses, "planned": report["planned"], "max_ms": report["max_ms"]},
        )

    def live_rows(self) -> list[Row]:
        return [row for row in self.rows.values() if row.skipped is None]

    def run_closed(self) -> None:
        if self.tools.wrk is None:
            self.note("wrk is not installed (apt-get install wrk): closed-loop rows skipped")
            return
        for name in self.args.scenarios:
            scenario = SCENARIOS[name]
            script = self.workdir / f"{name}.lua"
            script.write_text(wrk_script(scenario, self.server_ids), encoding="utf-8")
            for rep in range(self.args.reps):
                rows = rotated(self.live_rows(), rep)
                for row in rows:
                    self._sample(partial(self.closed_sample, scenario, row, rep, script), row)

    def run_fixed(self) -> None:
        if self.args.rate <= 0:
            return
        scenario = SCENARIOS["lock"]
        for rep in range(self.args.rate_reps):
            for row in rotated(self.live_rows(), rep):
                self._sample(partial(self.fixed_sample, scenario, row, rep), row)

    def _sample(self, take: Callable[[], Sample], row: Row) -> None:
        """Take one sample; one taken while other tenants were busy is taken again (once,
        within the run's redo budget) and the quieter of the two is kept."""
        attempts: list[Sample] = []
        for attempt in range(2):
            if row.child is not None and not row.child.alive():
                row.skipped = f"exited during the run\n{row.child.logs()}"
                self.note(f"row {row.name} stopped: it exited during the run")
                break
            try:
                attempts.append(take())
            except LoadError as exc:
                self.note(f"sample of {row.name} failed: {exc}")
                break
            self._log(attempts[-1], redo=attempt > 0)
            if attempts[-1].foreign_pct <= self.args.redo_above or self.redo_budget <= 0:
                break
            if attempt == 0:
                self.redo_budget -= 1
        if attempts:
            sample = min(attempts, key=lambda s: s.foreign_pct)
            sample.extra["attempts"] = len(attempts)
            self.samples.append(sample)

    def _log(self, sample: Sample, redo: bool) -> None:
        print(
            f"# {sample.kind:6} {sample.scenario:5} rep {sample.rep} {sample.row:11} "
            f"{sample.rps:9,.0f} req/s  p50 {sample.p50_ms:6.2f} ms  p99 {sample.p99_ms:7.2f} ms  "
            f"SUT {fmt(sample.cpu_us_per_request)} us/req  foreign {sample.foreign_pct:4.1f} %  "
            f"non2xx {sample.non2xx} err {sample.errors}" + ("  (redo)" if redo else ""),
            file=sys.stderr,
            flush=True,
        )


def _foreign(sample: Sample) -> str:
    """Foreign CPU % of a sample; * when it is the quieter of two attempts."""
    return f"{sample.foreign_pct:.0f}" + ("*" if sample.extra.get("attempts", 1) > 1 else "")


# -- report ------------------------------------------------------------------------------


def _paired(
    samples: list[Sample],
    row: str,
    ref: str,
    value: Callable[[Sample], float | None],
    invert: bool = False,
) -> float | None:
    """Median over reps of row/ref (or ref/row), each rep paired with its own reference."""
    by_rep = {s.rep: s for s in samples if s.row == ref}
    ratios = []
    for sample in samples:
        if sample.row != row or sample.rep not in by_rep:
            continue
        mine, theirs = value(sample), value(by_rep[sample.rep])
        if mine and theirs:
            ratios.append(theirs / mine if invert else mine / theirs)
    return median(ratios)


def closed_table(samples: list[Sample], rows: Sequence[str]) -> list[str]:
    head = (
        "| row | req/s (median) | min..max | p50 ms | p99 ms | SUT CPU µs/req "
        "| event loop / other threads µs/req | context switches/req: loop / other threads "
        "| SUT cores "
        "| upstream CPU µs/req | CPU vs hop | req/s vs direct | req/s vs nginx "
        "| CPU-ratio vs nginx "
        "| foreign CPU % per sample | non2xx/err |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for row in rows:
        mine = [s for s in samples if s.row == row]
        if not mine:
            continue
        rps = [s.rps for s in mine]
        cpu_us = [s.cpu_us_per_request for s in mine if s.cpu_us_per_request is not None]
        up_us = [s.upstream_us_per_request for s in mine if s.upstream_us_per_request is not None]
        lines.append(
            "| "
            + " | ".join(
                [
                    row,
                    fmt(median(rps), 0),
                    f"{fmt(min(rps), 0)}..{fmt(max(rps), 0)}",
                    fmt(median([s.p50_ms for s in mine]), 2),
                    fmt(median([s.p99_ms for s in mine]), 2),
                    fmt(median(cpu_us)),
                    _loop_split(mine),
                    _switches(mine),
                    fmt(median([s.sut_cores for s in mine]), 2),
                    fmt(median(up_us)),
                    fmt(_paired(samples, row, "hop", lambda s: s.cpu_us_per_request), 2),
                    fmt(_paired(samples, row, "direct", lambda s: s.rps), 3),
                    fmt(_paired(samples, row, "nginx", lambda s: s.rps), 3),
                    fmt(
                        _paired(samples, row, "nginx", lambda s: s.cpu_us_per_request, invert=True),
                        3,
                    ),
                    " / ".join(_foreign(s) for s in sorted(mine, key=lambda s: s.rep)),
                    f"{sum(s.non2xx for s in mine)}/{sum(s.errors for s in mine)}",
                ]
            )
            + " |"
        )
    return lines


def _loop_split(samples: list[Sample]) -> str:
    """Median CPU per request of the event loop thread and of the process's other threads."""
    loop = [s.loop_us_per_request for s in samples if s.loop_us_per_request is not None]
    if not loop:
        return "—"
    # Both counters tick at 10 ms (CLK_TCK): over a sample the split is good to about half a
    # µs per request, and a process without other threads would come out at ±0.5.
    rest = [
        max(0.0, s.cpu_us_per_request - s.loop_us_per_request)
        for s in samples
        if s.cpu_us_per_request is not None and s.loop_us_per_request is not None
    ]
    return f"{fmt(median(loop))} / {fmt(median(rest))}"


def _switches(samples: list[Sample]) -> str:
    """Median context switches per request of the event loop thread and the other threads."""
    pairs = [s.switches_per_request for s in samples if s.switches_per_request is not None]
    if not pairs:
        return "—"
    return f"{median([p[0] for p in pairs]):.2f} / {median([p[1] for p in pairs]):.2f}"


def fixed_table(samples: list[Sample], rows: Sequence[str]) -> list[str]:
    head = (
        "| row | achieved req/s | p50 ms | p90 ms | p99 ms | added p50 vs direct ms "
        "| SUT CPU µs/req | foreign CPU % per sample | non2xx/err |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    direct_p50 = median([s.p50_ms for s in samples if s.row == "direct"])
    for row in rows:
        mine = [s for s in samples if s.row == row]
        if not mine:
            continue
        p50 = median([s.p50_ms for s in mine])
        added = (
            p50 - direct_p50
            if p50 is not None and direct_p50 is not None and row != "direct"
            else None
        )
        cpu_us = [s.cpu_us_per_request for s in mine if s.cpu_us_per_request is not None]
        lines.append(
            "| "
            + " | ".join(
                [
                    row,
                    fmt(median([s.rps for s in mine]), 0),
                    " / ".join(f"{s.p50_ms:.2f}" for s in mine),
                    " / ".join(f"{s.p90_ms:.2f}" for s in mine),
                    " / ".join(f"{s.p99_ms:.2f}" for s in mine),
                    "—" if added is None else f"{added:+.2f}",
                    fmt(median(cpu_us)),
                    " / ".join(_foreign(s) for s in mine),
                    f"{sum(s.non2xx for s in mine)}/{sum(s.errors for s in mine)}",
                ]
            )
            + " |"
        )
    return lines


def targets(samples: list[Sample], scenario: str) -> list[str]:
    """Issue 15's targets against this run's paired ratios (CPU µs/req over the hop's)."""
    lines = []
    for row in ("gateway-lean", "gateway-operator"):
        goal = TARGETS.get((row, scenario), LEAN_TARGET if row == "gateway-lean" else None)
        ratio = _paired(samples, row, "hop", lambda s: s.cpu_us_per_request)
        if goal is None or ratio is None:
            continue
        verdict = "met" if ratio <= goal else f"missed by {100 * (ratio / goal - 1):.0f} %"
        lines.append(
            f"* {row}: {ratio:.2f}× the hop's CPU per request (target ≤ {goal}×: {verdict})"
        )
    return ["", *lines] if lines else []


def report(bench: Bench, meta: dict[str, Any]) -> str:
    args = bench.args
    rows = [name for name in ROWS if name in bench.rows]
    out = [
        f"## nova-gateway macro benchmark ({meta['started']}, {meta['mode']})",
        "",
        f"Layout **{bench.layout.name}**"
        + (
            " (wrk/generator, novasim and the stand-in Keystone on cpu0; nginx, hop and the "
            "one-worker gateways alone on cpu1; "
            "gateway-2w on cpus 0-1)"
            if bench.layout.name == "pinned"
            else ""
        )
        + f". nproc={cpu.NPROC}. Upstream: novasim (`--seed {args.servers}`), requests rotated "
        f"over p1's {len(bench.server_ids)} servers. wrk -t1 -c{args.connections}, "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s measured per sample, {args.reps} reps, "
        "row order rotated per rep; medians over reps.",
        "",
        f"Gateway {meta['git']}; {meta['nginx']}; {meta['wrk'].split(' [')[0]}. novasim is a "
        "Python process, so direct and nginx are bounded by it (see SUT cores): compare the "
        "gateway with them through CPU µs/req, not req/s.",
        "",
        "SUT CPU µs/req = utime+stime of the SUT's process group (/proc) ÷ requests (for "
        "direct the SUT is novasim). CPU-ratio vs nginx = nginx CPU µs/req ÷ row CPU µs/req. "
        "Ratios are medians of same-rep pairs. Foreign CPU = machine CPU used by processes "
        "that are not this run's (other tenants), in % of all cores, one value per sample "
        f"(* = the quieter of two attempts: samples above {args.redo_above:g} % are taken "
        "again once, within a budget).",
    ]
    for name in args.scenarios:
        samples = [s for s in bench.samples if s.kind == "closed" and s.scenario == name]
        if samples:
            out += ["", f"### {name}: {SCENARIOS[name].what}", "", *closed_table(samples, rows)]
            out += targets(samples, name)
    fixed = [s for s in bench.samples if s.kind == "fixed"]
    if fixed:
        out += [
            "",
            f"### lock at a fixed {args.rate:g} req/s (open loop, {args.rate_connections} "
            f"connections, {args.rate_seconds:g} s, {args.rate_reps} rep(s); aiohttp generator, "
            "latency from each request's planned send time; values per rep)",
            "",
            *fixed_table(fixed, rows),
        ]
    if bench.profile:
        out += [
            "",
            f"### Where the {args.profile_row} row's CPU goes (cProfile of its event loop; "
            "the audit writer and notification feed threads are not in it)",
            *bench.profile,
        ]
    if bench.notes:
        out += ["", "Notes:", *[f"* {note.splitlines()[0]}" for note in bench.notes]]
    return "\n".join(out)


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, timeout=10, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def metadata(args: argparse.Namespace, tools: Tools, layout: Layout) -> dict[str, Any]:
    import aiohttp

    status = _git("status", "--porcelain")
    return {
        "started": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "quick" if args.quick else "full",
        "git": _git("rev-parse", "--short", "HEAD")
        + ("+dirty" if status not in ("", "unknown") else ""),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "wrk": tools.version("wrk"),
        "nginx": tools.version("nginx"),
        "nproc": cpu.NPROC,
        "layout": asdict(layout),
        # Paths stay out of the record (it may be shared); the rest says how it was run.
        "args": {key: value for key, value in vars(args).items() if key != "results_dir"},
    }


# -- command line ------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="~1 minute: lock only, 3 s samples")
    parser.add_argument("--reps", type=int, help="repetitions per row (default 3)")
    # wrk takes whole seconds only.
    parser.add_argument("--seconds", type=int, help="measured seconds per sample (5; quick 3)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per sample (2; quick 1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument(
        "--scenarios", help=f"comma list of {sorted(SCENARIOS)} (lock,show; quick lock)"
    )
    parser.add_argument(
        "--rows",
        default=",".join(DEFAULT_ROWS),
        help=f"comma list of {list(ROWS)} (default: all but the operator-no-* and "
        "operator-one-record rows, which switch one part of the operator row off each)",
    )
    parser.add_argument("--layout", choices=("pinned", "unpinned"), default="pinned")
    parser.add_argument("--servers", type=int, default=20, help="servers seeded per project (20)")
    parser.add_argument("--rate", type=float, default=500.0, help="fixed-rate req/s; 0 skips it")
    parser.add_argument(
        "--rate-seconds", type=float, help="seconds per fixed-rate sample (5; quick 2)"
    )
    parser.add_argument("--rate-reps", type=int, help="fixed-rate repetitions (2; quick 1)")
    parser.add_argument(
        "--rate-connections",
        type=int,
        default=32,
        help="generator connections (32): enough that the pool never sets the pace",
    )
    parser.add_argument(
        "--gateway-option",
        action="append",
        default=[],
        metavar="GROUP.NAME=VALUE",
        help="extra gateway configuration (repeatable)",
    )
    parser.add_argument(
        "--redo-above",
        type=float,
        default=25.0,
        metavar="PCT",
        help="take a sample again (once) when foreign CPU exceeded PCT %% (25; 100: never)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled gateway")
    parser.add_argument(
        "--profile-row",
        default="gateway-operator",
        choices=["gateway-lean", "gateway-operator"],
        help="the gateway row profiled after the measured repetitions (gateway-operator)",
    )
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk/nginx")
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="also run the mixed scenario (80 %% reads, 20 %% actions; needs RabbitMQ): "
        "reads of Nova per request and per action, without and with the mirror",
    )
    parser.add_argument("--mixed-only", action="store_true", help="run only the mixed scenario")
    parser.add_argument("--mixed-requests", type=int, default=4000, help="measured requests")
    parser.add_argument("--mixed-clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--mixed-servers", type=int, default=10, help="servers per project (10)")
    parser.add_argument("--mixed-workers", type=int, default=1, help="gateway workers (1)")
    parser.add_argument(
        "--rabbit-url",
        default="rabbit://guest:guest@127.0.0.1:5672/",
        help="RabbitMQ for novasim's notifications (the gateways' server-facts mirror)",
    )
    parser.add_argument(
        "--no-bus",
        action="store_true",
        help="gateways without the server-facts mirror (each action reads its server)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    quick = args.quick
    args.reps = args.reps or 3
    args.seconds = args.seconds or (3 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    args.rate_seconds = args.rate_seconds or (2.0 if quick else 5.0)
    args.rate_reps = args.rate_reps or (1 if quick else 2)
    args.scenarios = (args.scenarios or ("lock" if quick else "lock,show")).split(",")
    args.rows = args.rows.split(",")
    bad = [s for s in args.scenarios if s not in SCENARIOS] + [
        r for r in args.rows if r not in ROWS
    ]
    if bad:
        parser.error(f"unknown scenario or row: {', '.join(bad)}")
    # Every loop is bounded by these: keep them sane.
    if not (1 <= args.reps <= 20 and 1 <= args.seconds <= 120 and 0 <= args.warmup <= 60):
        parser.error("reps 1..20, seconds 1..120, warmup 0..60")
    if not (1 <= args.connections <= 1024 and 1 <= args.servers <= 500 and 0 <= args.rate <= 20000):
        parser.error("connections 1..1024, servers 1..500, rate 0..20000")
    if not (1 <= args.rate_reps <= 10 and 0.5 <= args.rate_seconds <= 60):
        parser.error("rate-reps 1..10, rate-seconds 0.5..60")
    if not (100 <= args.mixed_requests <= 200000 and 1 <= args.mixed_clients <= 256):
        parser.error("mixed-requests 100..200000, mixed-clients 1..256")
    if not (1 <= args.mixed_servers <= 200 and 1 <= args.mixed_workers <= 8):
        parser.error("mixed-servers 1..200, mixed-workers 1..8")
    args.mixed = args.mixed or args.mixed_only
    return args


def bus_url(args: argparse.Namespace) -> str | None:
    """The run's RabbitMQ URL, or None (``--no-bus``, or nothing listening there)."""
    if args.no_bus:
        return None
    parsed = urllib.parse.urlsplit(args.rabbit_url)
    try:
        socket.create_connection((parsed.hostname or LOOPBACK, parsed.port or 5672), 2).close()
    except OSError:
        return None
    return str(args.rabbit_url)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the children


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    tools = locate(install=not args.no_install)
    workdir = Path(tempfile.mkdtemp(prefix="nova-gateway-bench-"))
    bench = Bench(args, tools, workdir)
    meta = metadata(args, tools, bench.layout)
    failed = False
    mixed: list[str] = []
    try:
        if not args.mixed_only:
            bench.start()
            bench.run_closed()
            bench.run_fixed()
            if not args.no_profile:
                bench.run_profile(args.profile_row)
            bench.children.stop_all()
        if args.mixed:
            mixed = run_mixed(args, workdir, bench.note)
    except (StartError, LoadError, OSError) as exc:
        failed = True
        print(f"benchmark failed: {exc}", file=sys.stderr)
    finally:
        bench.children.stop_all()
        configs.forget_counters(bench.key_prefix)
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(bench, meta) + ("\n\n" + "\n".join(mixed) if mixed else "")
    print(text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    result_path = args.results_dir / f"run-{bench.stamp}.json"
    document = {
        "meta": meta,
        "notes": bench.notes,
        "samples": [
            {
                **asdict(s),
                "cpu_us_per_request": s.cpu_us_per_request,
                "loop_us_per_request": s.loop_us_per_request,
                "sut_cores": s.sut_cores,
            }
            for s in bench.samples
        ],
        "markdown": text,
    }
    result_path.write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
    try:
        shown = result_path.relative_to(REPO)
    except ValueError:
        shown = Path(result_path.name)
    print(f"\n(raw samples: {shown})")
    return 1 if failed or not (bench.samples or mixed) else 0


if __name__ == "__main__":
    raise SystemExit(main())

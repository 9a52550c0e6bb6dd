"""CPU accounting from /proc: the machine's busy time and each process group's own time.

Owns reading CPU counters for the harness; it must never signal or change a process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NPROC = os.cpu_count() or 1


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = stat.readline().split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _process_times() -> dict[int, tuple[int, float]]:
    """pid -> (process group, utime+stime seconds) for every process readable now."""
    times: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue  # exited between listdir and open
        # The command name may hold spaces or parentheses: split after the last ')'.
        rest = text.rsplit(")", 1)[1].split()
        pgrp, utime, stime = int(rest[2]), int(rest[11]), int(rest[12])
        times[int(entry)] = (pgrp, (utime + stime) / CLOCK_TICKS)
    return times


def thread_seconds(pid: int, tid: int) -> float | None:
    """utime+stime of one thread of a process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii", errors="replace") as stat:
            rest = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(rest[11]) + int(rest[12])) / CLOCK_TICKS


def thread_switches(pid: int) -> dict[int, int]:
    """Context switches so far (voluntary + involuntary) of each thread of a process, by
    thread id; empty once it is gone. A thread that blocks (a wait, the GIL) switches
    voluntarily; one the kernel takes the CPU from, involuntarily."""
    switches: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return switches
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            continue  # the thread ended between listdir and open
        switches[int(tid)] = sum(
            int(line.split()[1])
            for line in lines
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"))
        )
    return switches


@dataclass(frozen=True)
class Snapshot:
    """One reading of the clock, the machine's busy time and per-process CPU."""

    wall: float
    machine: float
    processes: Mapping[int, tuple[int, float]]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(time.monotonic(), machine_busy_seconds(), _process_times())


@dataclass(frozen=True)
class Interval:
    """What happened between two snapshots."""

    start: Snapshot
    end: Snapshot

    @property
    def wall(self) -> float:
        return self.end.wall - self.start.wall

    @property
    def machine(self) -> float:
        return self.end.machine - self.start.machine

    def group_cpu(self, pgids: Iterable[int]) -> float:
        """CPU seconds spent by the members of these process groups in the interval.

        Per-process deltas, so a member that started during the interval counts from
        zero and one that exited is simply missing (its last slice is lost).
        """
        wanted = set(pgids)
        total = 0.0
        for pid, (pgrp, seconds) in self.end.processes.items():
            if pgrp in wanted:
                before = self.start.processes.get(pid)
                total += seconds - (before[1] if before is not None else 0.0)
        return total

    def foreign_percent(self, ours_cpu: float) -> float:
        """Machine CPU used by processes that are not ours, in % of all cores."""
        if self.wall <= 0:
            return 0.0
        return max(0.0, self.machine - ours_cpu) / (self.wall * NPROC) * 100.0

    def pid_cpu(self, pids: Iterable[int]) -> float:
        """CPU seconds spent by these processes (not their groups) in the interval."""
        total = 0.0
        for pid in pids:
            after = self.end.processes.get(pid)
            before = self.start.processes.get(pid)
            if after is not None:
                total += after[1] - (before[1] if before is not None else 0.0)
        return total


def pids_named(commands: Iterable[str]) -> list[int]:
    """Processes whose command name (/proc/PID/comm) is one of ``commands``."""
    wanted = set(commands)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="ascii", errors="replace") as comm:
                if comm.read().strip() in wanted:
                    found.append(int(entry))
        except OSError:
            continue  # exited between listdir and open
    return found

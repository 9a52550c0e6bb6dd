"""What a trail tells of each call: its deciding record, outcome and executions, joined.

Owns reading audit files (JSON or CADF) line by line into checked entries and records, and
joining the records of one call by its request id; it must never change a file, nor judge
a seal itself (gateway.audit.chain does).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.audit.chain import ChainReport, Entry, Problem, Where, entry_of, verify
from gateway.audit.records import DECIDING_EVENTS, DECISION, EXECUTION, OUTCOME, gateway_record
from gateway.audit.sinks import FILE_SUFFIX
from gateway.audit.witness import Head, Judgement, Witness, judge, read_heads
from gateway.nova.action_events import Phase, events_of

# When one call has several executions, the one that says most: failed, then ended.
PHASE_RANK = {phase.value: phase.rank for phase in Phase}
OPENED = "chain_opened"  # its execution_evidence says whether the worker heard Nova's bus


def expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; a directory stands for its audit files in name (= written) order."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files.extend(sorted(path.glob(f"*{FILE_SUFFIX}")) if path.is_dir() else [path])
    return files


def read_trail(
    paths: Iterable[Path], key: bytes
) -> Iterator[tuple[Entry, Mapping[str, Any] | None]]:
    """Every non-empty line: its checked entry, and the gateway record it holds (if any)."""
    for path in paths:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                line = text.rstrip("\n")
                try:
                    document = json.loads(line)
                except ValueError:
                    document = None
                entry = entry_of(Where(os.fspath(path), number), line, document, key)
                record = gateway_record(document) if isinstance(document, dict) else None
                yield entry, record


@dataclass
class CallTrail:
    """Every record the trail holds about one call, in the order they were read."""

    request_id: str
    deciding: Mapping[str, Any]  # the REQUEST record, or the DECISION of a write-ahead call
    where: Where
    chains: set[str] = field(default_factory=set)
    sealed: bool = True
    outcome: Mapping[str, Any] | None = None
    executions: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def write_ahead(self) -> bool:
        return self.deciding.get("event") == DECISION

    @property
    def unfinished(self) -> bool:
        """A decision without its outcome: the gateway stopped in between (Nova may have run it)."""
        return self.write_ahead and self.outcome is None

    def note(self, entry: Entry) -> None:
        self.sealed = self.sealed and entry.sealed
        if entry.chain is not None:
            self.chains.add(entry.chain)

    @property
    def status(self) -> int | None:
        """The status the client was answered (None while unfinished)."""
        if self.write_ahead:
            return self.outcome.get("status") if self.outcome is not None else None
        status = (self.deciding.get("decision") or {}).get("status")
        return status if isinstance(status, int) else None

    @property
    def upstream(self) -> Mapping[str, Any]:
        holder = self.outcome if self.write_ahead else self.deciding
        upstream = (holder or {}).get("upstream")
        return upstream if isinstance(upstream, Mapping) else {}

    @property
    def outcome_kind(self) -> str | None:
        """allow | deny | error, as it ended (a write-ahead call that failed to leave: error)."""
        if self.write_ahead and self.outcome is not None:
            return str(self.outcome.get("outcome"))
        outcome = (self.deciding.get("decision") or {}).get("outcome")
        return str(outcome) if outcome is not None else None

    @property
    def forwarded(self) -> bool | None:
        """Did the call reach Nova? None when the trail cannot say (unfinished)."""
        if self.write_ahead:
            return bool(self.outcome.get("forwarded")) if self.outcome is not None else None
        return bool(self.upstream)

    @property
    def execution(self) -> str | None:
        phases = [str(record.get("phase")) for record in self.executions]
        return max(phases, key=lambda phase: PHASE_RANK.get(phase, 0), default=None)

    @property
    def action(self) -> str | None:
        key = (self.deciding.get("action") or {}).get("key")
        return key if isinstance(key, str) else None

    @property
    def awaits_execution(self) -> bool:
        """Forwarded, accepted by Nova (2xx), and an action Nova publishes events for."""
        status = self.status
        row = events_of(self.action)
        return (
            bool(self.forwarded)
            and status is not None
            and 200 <= status < 300
            and row is not None
            and row.publishes
        )


@dataclass
class Ledger:
    """Calls joined by request id while the trail is read; ``keep`` filters what stays.

    ``keep`` is asked once per deciding record; calls it refuses are forgotten, and their
    later records then count as orphans (which only a ledger that keeps every decision,
    as verify's, can judge).
    """

    keep: Callable[[Mapping[str, Any]], bool] | None = None
    slim: bool = False  # keep only what names a call (verify: memory per call stays small)
    calls: dict[str, CallTrail] = field(default_factory=dict)
    orphans: list[tuple[Where, str]] = field(default_factory=list)  # (where, event)
    records: int = 0
    # chain -> its worker recorded executions (had a notification bus); chains whose
    # chain_opened record was not read are absent.
    evidence: dict[str, bool] = field(default_factory=dict)

    def add(self, entry: Entry, record: Mapping[str, Any] | None) -> None:
        if record is None:
            return
        event = record.get("event")
        if event == OPENED and entry.chain is not None:
            self.evidence[entry.chain] = record.get("execution_evidence") is True
            return
        request_id = record.get("request_id")
        if not isinstance(request_id, str):
            return
        if event in DECIDING_EVENTS:
            self.records += 1
            if self.keep is not None and not self.keep(record):
                return
            call = CallTrail(request_id, _slim(record) if self.slim else record, entry.where)
            call.note(entry)
            self.calls[request_id] = call
            return
        if event not in (OUTCOME, EXECUTION):
            return
        found = self.calls.get(request_id)
        if found is None:
            self.orphans.append((entry.where, str(event)))
            return
        found.note(entry)
        if event == OUTCOME:
            found.outcome = _slim(record) if self.slim else record
        else:
            found.executions.append(_slim(record) if self.slim else record)

    def execution_evidence(self, call: CallTrail) -> bool | None:
        """Whether the worker that wrote ``call`` recorded executions; None if unknown."""
        known = [self.evidence[chain] for chain in call.chains if chain in self.evidence]
        return any(known) if known else None


@dataclass
class ExecutionTally:
    """What the trail says Nova did with the forwarded actions it publishes events for."""

    awaited: int = 0  # forwarded, 2xx, an action with events, by a worker with a bus
    by_phase: dict[str, int] = field(default_factory=dict)  # best phase -> calls
    missing: list[CallTrail] = field(default_factory=list)  # no execution record at all
    without_bus: int = 0  # such calls written by a worker without a notification bus
    unknown: int = 0  # such calls in chains whose chain_opened was not read (archived)
    chains_without_bus: list[str] = field(default_factory=list)


def tally_executions(ledger: Ledger) -> ExecutionTally:
    tally = ExecutionTally(
        chains_without_bus=sorted(chain for chain, on in ledger.evidence.items() if not on)
    )
    for call in ledger.calls.values():
        if not call.awaits_execution:
            continue
        evidence = ledger.execution_evidence(call)
        if evidence is None:
            tally.unknown += 1
            continue
        if not evidence:
            tally.without_bus += 1
            continue
        tally.awaited += 1
        phase = call.execution
        if phase is None:
            tally.missing.append(call)
        else:
            tally.by_phase[phase] = tally.by_phase.get(phase, 0) + 1
    return tally


_SLIM_FIELDS = {
    "request": ("method", "path"),
    "action": ("key",),
    "target": ("server_id",),
    "initiator": ("user_id", "project_id"),
    "decision": ("outcome", "status"),
    "upstream": ("request_id", "status"),
}
_SLIM_TOP = (
    "event",
    "time",
    "request_id",
    "global_request_id",
    "forwarded",
    "outcome",
    "status",
    "phase",
)


def _slim(record: Mapping[str, Any]) -> dict[str, Any]:
    """The few fields that name a call and its end (a verify report lists them)."""
    slim: dict[str, Any] = {name: record[name] for name in _SLIM_TOP if name in record}
    for name, keys in _SLIM_FIELDS.items():
        part = record.get(name)
        if isinstance(part, Mapping):
            slim[name] = {key: part.get(key) for key in keys}
    return slim


@dataclass
class CheckedTrail:
    """A trail read once: its calls, every chain verified, each judged against the witness."""

    files: list[Path]
    ledger: Ledger
    reports: list[ChainReport]
    judgements: dict[str, Judgement]  # by chain
    rejected_heads: list[str]  # witness heads whose seal did not verify: tampering
    absent: list[Head]  # witnessed chains that no file read holds
    witnessed: bool = False  # a witness was consulted

    @property
    def failed(self) -> list[tuple[str, Problem]]:
        """(chain, first problem) of every chain that did not verify, or not against its head."""
        problems = []
        for report in self.reports:
            problem = report.problem or self.judgements[report.chain].problem
            if problem is not None:
                problems.append((report.chain, problem))
        return problems

    def failed_chains(self) -> set[str]:
        return {chain for chain, _ in self.failed}


def check_trail(
    files: list[Path],
    key: bytes,
    witnesses: Sequence[Witness] = (),
    *,
    ledger: Ledger | None = None,
    partial: bool = False,
    check: bool = True,
) -> CheckedTrail:
    """Read ``files`` once: join calls into ``ledger``, verify every chain, judge the heads
    (``check`` False: join only, nothing verified)."""
    ledger = ledger if ledger is not None else Ledger()
    entries: list[Entry] = []
    for entry, record in read_trail(files, key):
        entries.append(entry)
        ledger.add(entry, record)
    reports = verify(entries, partial=partial) if check else []
    heads, rejected = read_heads(witnesses, key) if witnesses else ({}, [])
    judgements = {}
    for report in reports:
        head = heads.get(report.chain) if witnesses else None
        judgements[report.chain] = (
            judge(report, head) if report.problem is None else Judgement(None, "failed")
        )
    seen = {report.chain for report in reports}
    absent = [head for chain, head in sorted(heads.items()) if chain not in seen]
    return CheckedTrail(
        files, ledger, reports, judgements, rejected, absent, witnessed=bool(witnesses)
    )

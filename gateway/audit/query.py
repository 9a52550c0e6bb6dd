"""``nova-gateway audit query``: the calls an audit trail holds that answer a question.

Owns the filters, the time expressions and the three outputs (table, JSON lines, CSV); it
must never change an audit file, nor print a call without saying whether its seals verified.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from gateway.audit.ledger import CallTrail, CheckedTrail

FORMATS = ("table", "jsonl", "csv")
DECISIONS = ("allow", "deny", "error", "would_deny")
# How far Nova got, by its notifications; none: a forwarded action Nova publishes events
# for, accepted (2xx), with no execution record.
EXECUTIONS = ("started", "ended", "failed", "none")
MIN_ID_PREFIX = 8  # shortest request or server id prefix a filter accepts
_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_STATUS_CLASS = re.compile(r"^[1-5]xx$")


class QueryError(ValueError):
    """A filter the query cannot understand; the message says which and why."""


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """``today``, ``yesterday``, ``now``, ``2h`` / ``30m`` / ``7d`` ago, or ISO 8601 (UTC
    unless it says otherwise)."""
    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    named = {"now": now, "today": midnight, "yesterday": midnight - timedelta(days=1)}
    if text in named:
        return named[text]
    relative = _RELATIVE.match(text)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(
            f"cannot read the time {text!r}: give today, yesterday, now, 2h, 30m, 7d or "
            "ISO 8601 (2026-12-05, 2026-12-05T14:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _moment_of(record: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        return None


@dataclass(frozen=True)
class Filters:
    """What the auditor asks for; every filter given must match (and), none means all."""

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None  # the caller's project (id or name)
    user: str | None = None  # the caller (id or name)
    server: str | None = None  # the server's id, or a prefix of it
    action: str | None = None  # the action key (pause, os-stop, delete, ...)
    decision: str | None = None  # allow | deny | error | would_deny
    status: str | None = None  # 403, or a class: 4xx
    request_id: str | None = None  # the gateway's, the client's global one, or Nova's
    actions_only: bool = False  # only calls that name an action (no reads, no lists)
    execution: str | None = None  # started | ended | failed | none (see EXECUTIONS)

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision not in DECISIONS:
            raise QueryError(f"--decision must be one of {', '.join(DECISIONS)}")
        if self.execution is not None and self.execution not in EXECUTIONS:
            raise QueryError(f"--execution must be one of {', '.join(EXECUTIONS)}")
        if self.status is not None and not (
            self.status.isdigit() or _STATUS_CLASS.match(self.status)
        ):
            raise QueryError("--status takes a status (403) or a class (4xx)")
        for name, value in (("--server", self.server), ("--request-id", self.request_id)):
            if value is not None and len(value) < MIN_ID_PREFIX:
                raise QueryError(f"{name} needs at least {MIN_ID_PREFIX} characters of the id")

    def keep_deciding(self, record: Mapping[str, Any]) -> bool:
        """What the deciding record alone settles (so other calls need not be kept)."""
        moment = _moment_of(record)
        if self.since is not None and (moment is None or moment < self.since):
            return False
        if self.until is not None and (moment is None or moment >= self.until):
            return False
        initiator = record.get("initiator") or {}
        if self.project is not None and self.project not in (
            initiator.get("project_id"),
            initiator.get("project_name"),
        ):
            return False
        if self.user is not None and self.user not in (
            initiator.get("user_id"),
            initiator.get("user_name"),
        ):
            return False
        server = str((record.get("target") or {}).get("server_id") or "")
        if self.server is not None and not server.startswith(self.server):
            return False
        action = (record.get("action") or {}).get("key")
        if self.action is not None and action != self.action:
            return False
        return not (self.actions_only and action is None)

    def keep_call(self, call: CallTrail) -> bool:
        """What needs the whole call: its outcome, its status, Nova's request id."""
        if self.request_id is not None:
            ids = (call.request_id, call.deciding.get("global_request_id"), _nova_id(call))
            if not any(isinstance(i, str) and i.startswith(self.request_id) for i in ids):
                return False
        if self.decision is not None and not _decided(call, self.decision):
            return False
        if self.execution == "none" and not (call.awaits_execution and call.execution is None):
            return False
        if self.execution not in (None, "none") and call.execution != self.execution:
            return False
        if self.status is not None:
            status = call.status
            if status is None:
                return False
            if self.status.isdigit():
                return status == int(self.status)
            return str(status)[0] == self.status[0]
        return True


def _decided(call: CallTrail, wanted: str) -> bool:
    decision = call.deciding.get("decision") or {}
    if wanted == "would_deny":
        return bool(decision.get("would_deny"))
    if wanted == "error":
        return call.outcome_kind == "error" or decision.get("outcome") == "error"
    return decision.get("outcome") == wanted


def _nova_id(call: CallTrail) -> str | None:
    nova = call.upstream.get("request_id")
    return nova if isinstance(nova, str) else None


# --------------------------------------------------------------------------------------
# Rows and outputs


def row(call: CallTrail, verified: str, evidence: bool | None = None) -> dict[str, Any]:
    """One call, flat: what an auditor reads (JSON lines and CSV carry every field).

    ``evidence``: whether the worker that wrote it recorded executions (None: unknown).
    """
    record = call.deciding
    initiator = record.get("initiator") or {}
    request = record.get("request") or {}
    target = record.get("target") or {}
    decision = record.get("decision") or {}
    reason = decision.get("reason")
    if call.outcome is not None and call.outcome.get("reason"):
        reason = call.outcome.get("reason")
    return {
        "time": record.get("time"),
        "request_id": call.request_id,
        "global_request_id": record.get("global_request_id"),
        "nova_request_id": _nova_id(call),
        "user_id": initiator.get("user_id"),
        "user_name": initiator.get("user_name"),
        "project_id": initiator.get("project_id"),
        "roles": initiator.get("roles") or [],
        "method": request.get("method"),
        "path": request.get("path"),
        "action": (record.get("action") or {}).get("key"),
        "server_id": target.get("server_id"),
        "server_project_id": target.get("project_id"),
        "decision": decision.get("outcome"),
        "rule": decision.get("rule"),
        "would_deny": decision.get("would_deny") or [],
        "reason": reason,
        "status": call.status,
        "forwarded": call.forwarded,
        "write_ahead": call.write_ahead,
        "unfinished": call.unfinished,
        "execution": call.execution,
        "executions": [
            {
                "phase": execution.get("phase"),
                "event_type": (execution.get("nova") or {}).get("event_type"),
                "time": (execution.get("nova") or {}).get("time"),
                "fault": (execution.get("nova") or {}).get("fault"),
            }
            for execution in call.executions
        ],
        "execution_evidence": evidence,
        "verified": verified,
        "source": str(call.where),
    }


def rows(checked: CheckedTrail, filters: Filters, *, verified: bool = True) -> list[dict[str, Any]]:
    """The matching calls, in the order their deciding records were read."""
    found = []
    broken = checked.failed_chains()
    for call in checked.ledger.calls.values():
        if not filters.keep_call(call):
            continue
        if not verified:
            state = "not checked"
        elif not call.sealed:
            state = "FAIL: a record's seal does not match"
        elif broken.intersection(call.chains):
            state = "FAIL: its chain did not verify"
        else:
            state = "ok"
        found.append(row(call, state, checked.ledger.execution_evidence(call)))
    return found


CSV_FIELDS = (
    "time", "request_id", "global_request_id", "nova_request_id", "user_id", "user_name",
    "project_id", "roles", "method", "path", "action", "server_id", "server_project_id",
    "decision", "rule", "would_deny", "reason", "status", "forwarded", "write_ahead",
    "unfinished", "execution", "execution_evidence", "verified", "source",
)  # fmt: skip


def write_csv(found: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for item in found:
        writer.writerow([_cell(item.get(name)) for name in CSV_FIELDS])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(part) for part in value)
    return str(value)


def write_jsonl(found: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    for item in found:
        print(json.dumps(item, sort_keys=True), file=out)


TABLE_COLUMNS = ("TIME (UTC)", "REQUEST", "CALLER", "SERVER", "CALL", "DECISION", "STATUS",
                 "NOVA REQUEST", "EXECUTION", "SEALS")  # fmt: skip


def _short(identifier: Any, keep: int) -> str:
    text = str(identifier or "-")
    return text if len(text) <= keep + 1 else text[:keep] + "…"


def table_cells(item: Mapping[str, Any]) -> tuple[str, ...]:
    caller = (
        f"{item.get('user_name') or item.get('user_id') or '-'}@{item.get('project_id') or '-'}"
    )
    call = item.get("action") or f"{item.get('method')} {item.get('path')}"
    decision = str(item.get("decision") or "-")
    if item.get("would_deny"):
        decision += " (would deny)"
    status = "unfinished" if item.get("unfinished") else str(item.get("status") or "-")
    time = str(item.get("time") or "-")[:19]
    verified = "ok" if item.get("verified") == "ok" else str(item.get("verified"))
    return (
        time,
        _short(item.get("request_id"), 12),
        caller,
        _short(item.get("server_id"), 8),
        _short(call, 40),
        decision,
        status,
        _short(item.get("nova_request_id"), 12),
        _execution_cell(item),
        verified,
    )


def _execution_cell(item: Mapping[str, Any]) -> str:
    if item.get("execution"):
        return str(item["execution"])
    return "no bus" if item.get("execution_evidence") is False and item.get("forwarded") else "-"


def write_table(found: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    lines = [TABLE_COLUMNS, *(table_cells(item) for item in found)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(TABLE_COLUMNS))]
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip(),
            file=out,
        )


def summary(
    checked: CheckedTrail, found: Sequence[Mapping[str, Any]], *, verified: bool = True
) -> list[str]:
    """What was read and whether it verified: the footer every answer carries."""
    lines = [
        f"{len(found)} call(s) matched, of {checked.ledger.records} read from "
        f"{len(checked.files)} file(s)"
    ]
    unfinished = sum(1 for item in found if item.get("unfinished"))
    if unfinished:
        lines.append(
            f"{unfinished} of them unfinished: decided and stored, but the gateway stopped "
            "before recording the answer (Nova may have run them)"
        )
    without_bus = [chain for chain, on in checked.ledger.evidence.items() if not on]
    if without_bus:
        lines.append(
            f"{len(without_bus)} chain(s) recorded no execution: their worker had no "
            "notification bus ([server_facts] notifications_url)"
        )
    if not verified:
        return [*lines, "seals NOT checked (--no-verify): these records may have been altered"]
    failed = checked.failed
    intact = len(checked.reports) - len(failed)
    lines.append(
        f"chains: {intact} of {len(checked.reports)} verified intact (every seal and link)"
        + (", and against the witnessed heads" if checked.witnessed else "; no witness given")
    )
    lines.extend(f"FAIL {chain}: {problem}" for chain, problem in failed)
    lines.extend(f"FAIL witness {rejected}" for rejected in checked.rejected_heads)
    return lines

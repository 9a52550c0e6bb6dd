"""The decision matrix: action x caller x server x lock state, and Nova's answer for each cell.

Owns an oracle written from nova-actions.md (§0 order, lock semantics, policy defaults),
independent of the gateway's catalogue and policy code; must never import from ``gateway``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Lock(Enum):
    """The lock state a group of cells runs in."""

    NONE = "unlocked"
    OWNER = "locked by owner"
    ADMIN = "locked by admin"


class Baseline(Enum):
    """The state a matrix server is kept in between cells: (status, vm_state)."""

    ACTIVE = ("ACTIVE", "active")
    PAUSED = ("PAUSED", "paused")
    SHUTOFF = ("SHUTOFF", "stopped")

    @property
    def status(self) -> str:
        return self.value[0]

    @property
    def vm_state(self) -> str:
        return self.value[1]


class Rule(Enum):
    """Nova's base rules (nova/policies/base.py) that the matrix actions default to."""

    MEMBER = "rule:project_member_or_admin"
    MANAGER = "rule:project_manager_or_admin"
    ADMIN = "rule:context_is_admin"


class LockedText(Enum):
    """How the controller words ``InstanceIsLocked`` (nova-actions.md §1.1)."""

    LOCKED = "Instance {id} is locked"
    INVALID_STATE = "Instance {id} is in an invalid state for '{name}'"


UNLOCK_OVERRIDE = "os_compute_api:os-lock-server:unlock:unlock_override"
FAULT_NAMES: Mapping[int, str] = {403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest"}
PROJECTS = ("p1", "p2")


@dataclass(frozen=True)
class Caller:
    """A token and what Nova's context makes of it (roles as keystone expands them)."""

    label: str
    token: str
    project: str | None
    roles: frozenset[str]
    system: bool = False

    @property
    def is_admin(self) -> bool:
        """``context_is_admin`` = ``role:admin``, whatever the scope (nova-actions.md §0)."""
        return "admin" in self.roles


ADMIN = Caller("admin", "admin:admin", "admin", frozenset({"admin", "manager", "member", "reader"}))
MEMBER = Caller("member", "alice:p1", "p1", frozenset({"member", "reader"}))
READER = Caller("reader", "carol:p1:reader", "p1", frozenset({"reader"}))
MANAGER = Caller("manager", "mgr:p1:manager", "p1", frozenset({"manager", "member", "reader"}))
OTHER_MEMBER = Caller("other-member", "eve:p2", "p2", frozenset({"member", "reader"}))
# The lab's labauth has no system scope; the gateway's noauth tokens do (4th field).
SYSTEM_READER = Caller(
    "system-reader", "sysreader::reader:system", None, frozenset({"reader"}), True
)
SYSTEM_ADMIN = Caller(
    "system-admin",
    "sysadmin::admin:system",
    None,
    frozenset({"admin", "manager", "member", "reader"}),
    True,
)
PROJECT_CALLERS = (ADMIN, MEMBER, READER, MANAGER, OTHER_MEMBER)
SYSTEM_CALLERS = (SYSTEM_READER, SYSTEM_ADMIN)
# Who sets an owner lock on each project's server: a member of that project.
OWNER_OF: Mapping[str, Caller] = {"p1": MEMBER, "p2": OTHER_MEMBER}


@dataclass(frozen=True, eq=False)  # compared by identity: a value may be a dict
class MatrixAction:
    """One request of the matrix and the facts of nova-actions.md §1 the oracle needs.

    ``vm_states`` None means no state check. ``sample`` "all" runs every cell, "third" a
    rotating third; ``allow_budget`` caps the allowed (state-changing, so costly) cells run.
    """

    label: str
    key: str
    value: Any
    rule_name: str
    rule: Rule
    lock_checked: bool
    vm_states: frozenset[str] | None
    success: int
    baseline: Baseline
    state_name: str = ""
    locked_text: LockedText = LockedText.LOCKED
    microversion: str = "2.1"
    sample: str = "third"
    allow_budget: int | None = None

    @property
    def body(self) -> dict[str, Any]:
        return {self.key: self.value}

    @property
    def name_in_messages(self) -> str:
        return self.state_name or self.key


def _states(*names: str) -> frozenset[str]:
    return frozenset(names)


_A, _P, _S = Baseline.ACTIVE, Baseline.PAUSED, Baseline.SHUTOFF
_M, _MGR, _ADM = Rule.MEMBER, Rule.MANAGER, Rule.ADMIN
ACTIONS: tuple[MatrixAction, ...] = (
    # Probes: the state precondition fails on the baseline, so a cell that passes
    # visibility, policy and lock ends in Nova's 409 state answer and changes nothing.
    MatrixAction("unpause", "unpause", None, "os_compute_api:os-pause-server:unpause", _M,
                 True, _states("paused"), 202, _A, sample="all"),
    MatrixAction("resume", "resume", None, "os_compute_api:os-suspend-server:resume", _M,
                 True, _states("suspended"), 202, _A),
    MatrixAction("os-start", "os-start", None, "os_compute_api:servers:start", _M,
                 True, _states("stopped"), 202, _A, state_name="start"),
    MatrixAction("confirmResize", "confirmResize", None, "os_compute_api:servers:confirm_resize",
                 _M, True, _states("resized"), 204, _A),
    MatrixAction("unrescue", "unrescue", None, "os_compute_api:os-unrescue", _M,
                 True, _states("rescued"), 202, _A),
    MatrixAction("shelveOffload", "shelveOffload", None,
                 "os_compute_api:os-shelve:shelve_offload", _ADM, True, _states("shelved"), 202,
                 _A, sample="all"),
    MatrixAction("migrate", "migrate", None, "os_compute_api:os-migrate-server:migrate", _MGR,
                 True, _states("active", "stopped"), 202, _P, sample="all"),
    MatrixAction("changePassword", "changePassword", {"adminPass": "matrix-Pass1"},
                 "os_compute_api:os-admin-password", _M, True, _states("active"), 202, _P,
                 locked_text=LockedText.INVALID_STATE, sample="all"),
    MatrixAction("rescue", "rescue", None, "os_compute_api:os-rescue", _M,
                 True, _states("active", "stopped", "error"), 200, _P),
    MatrixAction("reboot SOFT (paused)", "reboot", {"type": "SOFT"},
                 "os_compute_api:servers:reboot", _M, True, _states("active"), 202, _P),
    MatrixAction("os-migrateLive", "os-migrateLive", {"block_migration": "auto", "host": None},
                 "os_compute_api:os-migrate-server:migrate_live", _MGR, True,
                 _states("active", "paused"), 202, _S, microversion="2.25"),
    MatrixAction("os-stop", "os-stop", None, "os_compute_api:servers:stop", _M,
                 True, _states("active", "error"), 202, _S, state_name="stop"),
    MatrixAction("suspend", "suspend", None, "os_compute_api:os-suspend-server:suspend", _M,
                 True, _states("active"), 202, _S),
    # Allowed cells that change nothing lasting (read, no-op reset, network info).
    MatrixAction("os-getConsoleOutput", "os-getConsoleOutput", {"length": 3},
                 "os_compute_api:os-console-output", _M, False, None, 200, _A, sample="all"),
    MatrixAction("os-resetState active", "os-resetState", {"state": "active"},
                 "os_compute_api:os-admin-actions:reset_state", _ADM, False, None, 202, _A),
    MatrixAction("injectNetworkInfo", "injectNetworkInfo", None,
                 "os_compute_api:os-admin-actions:inject_network_info", _ADM, True, None, 202, _A),
    # Allowed cells that change the server: restored after each one, so sampled sparingly.
    MatrixAction("pause", "pause", None, "os_compute_api:os-pause-server:pause", _M,
                 True, _states("active"), 202, _A, allow_budget=3),
    MatrixAction("reboot SOFT", "reboot", {"type": "SOFT"}, "os_compute_api:servers:reboot", _M,
                 True, _states("active"), 202, _A, allow_budget=3),
    MatrixAction("reboot HARD", "reboot", {"type": "HARD"}, "os_compute_api:servers:reboot", _M,
                 True, _states("active", "stopped", "paused", "suspended", "error"), 202, _A,
                 allow_budget=2),
    MatrixAction("trigger_crash_dump", "trigger_crash_dump", None,
                 "os_compute_api:servers:trigger_crash_dump", _M, True,
                 _states("active", "paused", "rescued", "resized", "error"), 202, _A,
                 microversion="2.17"),
    MatrixAction("createImage", "createImage", {"name": "matrix-snapshot"},
                 "os_compute_api:servers:create_image", _M, False,
                 _states("active", "stopped", "paused", "suspended"), 202, _A,
                 microversion="2.45", allow_budget=4),
    MatrixAction("shelve", "shelve", None, "os_compute_api:os-shelve:shelve", _M,
                 True, _states("active", "stopped", "paused", "suspended"), 202, _A,
                 allow_budget=1),
    MatrixAction("lock", "lock", None, "os_compute_api:os-lock-server:lock", _M,
                 False, None, 202, _A, sample="all"),
    MatrixAction("unlock", "unlock", None, "os_compute_api:os-lock-server:unlock", _M,
                 False, None, 202, _A, sample="all"),
)  # fmt: skip


@dataclass(frozen=True)
class Expected:
    """Nova's answer to a cell: status, fault name, exact message ({id} left to fill in)."""

    status: int
    fault: str | None = None
    message: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status < 300

    @property
    def code(self) -> str:
        """One letter for the printed matrix."""
        if self.allowed:
            return "a"
        if self.status == 409:
            return "s" if self.message and self.message.startswith("Cannot") else "l"
        return {403: "f", 404: "n"}.get(self.status, "?")

    def filled(self, server_id: str) -> Expected:
        if self.message is None:
            return self
        return Expected(self.status, self.fault, self.message.replace("{id}", server_id))


def _fault(status: int, message: str) -> Expected:
    return Expected(status, FAULT_NAMES[status], message)


def _passes(rule: Rule, caller: Caller, project: str) -> bool:
    """oslo.policy with Nova's defaults; every action rule is scope_types=['project']."""
    if caller.system:
        return False  # enforce_scope: a system-scoped token fails every project rule
    if caller.is_admin:
        return True  # each default is "<project rule> or rule:context_is_admin"
    same_project = caller.project == project
    if rule is Rule.MEMBER:
        return same_project and "member" in caller.roles
    if rule is Rule.MANAGER:
        return same_project and "manager" in caller.roles
    return False


def expect(action: MatrixAction, caller: Caller, project: str, lock: Lock) -> Expected:
    """Nova's answer, following nova-actions.md §0 steps 11-14 and its lock semantics."""
    if not caller.system and not caller.is_admin and caller.project != project:
        return _fault(404, "Instance {id} could not be found.")  # project_only lookup
    if not _passes(action.rule, caller, project):
        return _fault(403, f"Policy doesn't allow {action.rule_name} to be performed.")
    if action.key == "unlock" and lock is not Lock.NONE:
        expected_by = "owner" if caller.project == project else "admin"
        locked_by = "owner" if lock is Lock.OWNER else "admin"
        if expected_by != locked_by and not _passes(Rule.ADMIN, caller, project):
            return _fault(403, f"Policy doesn't allow {UNLOCK_OVERRIDE} to be performed.")
    if action.lock_checked and lock is not Lock.NONE and not caller.is_admin:
        text = action.locked_text.value.replace("{name}", action.name_in_messages)
        return _fault(409, text)
    state = action.baseline.vm_state
    if action.vm_states is not None and state not in action.vm_states:
        return _fault(
            409,
            f"Cannot '{action.name_in_messages}' instance {{id}} while it is in vm_state {state}",
        )
    return Expected(action.success)


@dataclass(frozen=True)
class Cell:
    """One point of the matrix."""

    action: MatrixAction
    caller: Caller
    project: str  # the server's project
    lock: Lock

    @property
    def expected(self) -> Expected:
        return expect(self.action, self.caller, self.project, self.lock)

    @property
    def relation(self) -> str:
        """The server seen from the caller: own project, another project's, or (system) any."""
        if self.caller.system:
            return "any"
        return "own" if self.caller.project == self.project else "other"

    def describe(self) -> str:
        return (
            f"{self.action.label} | {self.caller.label} ({self.caller.token}) | "
            f"{self.relation} server ({self.project}) | {self.lock.value}"
        )


def full_matrix(callers: Sequence[Caller] = PROJECT_CALLERS) -> list[Cell]:
    """Every cell: action x caller x server project x lock state."""
    return [
        Cell(action, caller, project, lock)
        for action in ACTIONS
        for lock in Lock
        for caller in callers
        for project in PROJECTS
    ]


def sample(cells: Iterable[Cell]) -> list[Cell]:
    """The cells run end to end: deterministic, every combination reached by some action.

    "third" actions take the cells whose (caller, server, lock) index is congruent to the
    action's index modulo 3, so three consecutive actions cover the whole grid between
    them. Allowed cells of costly actions are capped at ``allow_budget`` (rotating too).
    """
    combos = [(c, p, lock) for lock in Lock for c in PROJECT_CALLERS for p in PROJECTS]
    index = {combo: i for i, combo in enumerate(combos)}
    chosen: list[Cell] = []
    for number, action in enumerate(ACTIONS):
        mine = [c for c in cells if c.action is action]
        if action.sample != "all":
            mine = [c for c in mine if (index[(c.caller, c.project, c.lock)] + number) % 3 == 0]
        if action.allow_budget is not None:
            allowed = [c for c in mine if c.expected.allowed]
            start = number % max(len(allowed), 1)
            keep = set((allowed[start:] + allowed[:start])[: action.allow_budget])
            mine = [c for c in mine if not c.expected.allowed or c in keep]
        chosen.extend(mine)
    return chosen


@dataclass(frozen=True)
class Answer:
    """What a client can tell apart: status, fault name (None: no fault body), message."""

    status: int
    fault: str | None
    message: str | None

    @classmethod
    def parse(cls, status: int, body: Any) -> Answer:
        """Nova's fault body is ``{"<name>": {"code": N, "message": "..."}}``."""
        if isinstance(body, bytes | bytearray):
            try:
                body = json.loads(body) if body else None
            except ValueError:
                body = None
        if isinstance(body, dict) and len(body) == 1:
            name, detail = next(iter(body.items()))
            if isinstance(detail, dict) and "message" in detail:
                return cls(status, name, str(detail["message"]))
        return cls(status, None, None)

    def matches(self, expected: Expected) -> bool:
        if self.status != expected.status:
            return False
        return expected.allowed or (self.fault, self.message) == (
            expected.fault,
            expected.message,
        )

    def same_as(self, other: Answer) -> bool:
        """Status and fault name equal (messages compared separately)."""
        return (self.status, self.fault) == (other.status, other.fault)

    def __str__(self) -> str:
        if self.fault is None:
            return str(self.status)
        return f"{self.status} {self.fault} {self.message!r}"


@dataclass
class Outcome:
    """A cell as run: Nova alone (None when not sendable to it) and gateway+Nova."""

    cell: Cell
    server_id: str
    nova: Answer | None
    gateway: Answer
    notes: list[str] = field(default_factory=list)

    @property
    def expected(self) -> Expected:
        return self.cell.expected.filled(self.server_id)

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.nova is not None and not self.nova.matches(self.expected):
            found.append("Nova alone differs from the oracle")
        if not self.gateway.matches(self.expected):
            found.append("gateway+Nova differs from the oracle")
        if self.nova is not None and not self.gateway.same_as(self.nova):
            found.append("gateway+Nova differs from Nova alone (status/fault)")
        elif self.nova is not None and self.nova.message != self.gateway.message:
            found.append("gateway+Nova differs from Nova alone (message)")
        return found

    def report(self) -> str:
        expected = self.expected
        lines = [
            self.cell.describe(),
            f"    expected:     {expected.status} {expected.fault or ''} {expected.message or ''}",
            f"    Nova alone:   {self.nova if self.nova is not None else 'n/a'}",
            f"    gateway+Nova: {self.gateway}",
            *(f"    ! {problem}" for problem in self.problems()),
            *(f"    note: {note}" for note in self.notes),
        ]
        return "\n".join(lines)


def render(outcomes: Sequence[Outcome], callers: Sequence[Caller] = PROJECT_CALLERS) -> str:
    """The matrix, one row per action; per caller, three letters for each server (p1, p2).

    The letters are the oracle's for unlocked / owner-locked / admin-locked; upper case
    marks a cell that was run and where some answer differed; "." a cell not run.
    """
    ran = {(o.cell.action, o.cell.caller, o.cell.project, o.cell.lock): o for o in outcomes}
    label_width = max(len(a.label) for a in ACTIONS)
    widths = [max(len(c.label), 7) for c in callers]
    lines = [
        "legend: a allow, f 403, n 404, l 409 locked, s 409 state; per server the letters "
        "are unlocked/owner-locked/admin-locked; '.' not run; UPPER CASE = mismatch",
        " " * label_width
        + " | "
        + " | ".join(f"{c.label:<{w}}" for c, w in zip(callers, widths, strict=True)),
        " " * label_width + " | " + " | ".join(f"{'p1  p2':<{w}}" for w in widths),
    ]
    for action in ACTIONS:
        columns = []
        for caller, column_width in zip(callers, widths, strict=True):
            groups = []
            for project in PROJECTS:
                letters = ""
                for lock in Lock:
                    outcome = ran.get((action, caller, project, lock))
                    letter = expect(action, caller, project, lock).code
                    if outcome is None:
                        letters += "."
                    else:
                        letters += letter.upper() if outcome.problems() else letter
                groups.append(letters)
            columns.append(f"{' '.join(groups):<{column_width}}")
        lines.append(f"{action.label:<{label_width}} | " + " | ".join(columns))
    return "\n".join(lines)

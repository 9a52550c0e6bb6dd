"""Site policy: Nova's rules with oslo.policy semantics, decided per call, reloaded from files.

Owns the decision (PolicyEngine, Verdict, Decision) and reloading when the files change; it
must never read or stat a file per decision nor block the event loop on I/O.

Decisions use a compiled form of the rules oslo.policy loaded (same tree, same semantics,
without oslo's per-node ``inspect`` cost); checks oslo defines beyond role/rule/generic
(``http:``, plugins) are still evaluated by oslo itself, with the enforced rule's name,
the target and Nova's credentials, in a worker thread (they may block). The credentials
are Nova's: oslo.context's policy values plus ``is_admin``, computed as Nova computes it
(``context_is_admin`` on the caller's own project and user). Scope is always checked, as
oslo.policy 6 (Nova 34) does. The parts, each importing only those after it: load (one
generation), compiler (the closures and the bounds), nova_checks (Nova's ``is_admin``
check), files (strict reading of Nova's file format); target (which rules apply, their
target) stands alone. The names other modules use are re-exported here.

Writing site rules (in ``policy.d/*.yaml``, or ``policy.yaml``)
----------------------------------------------------------------
The target a rule sees holds Nova's keys plus flat, dotted keys the gateway adds:

* ``project_id``, ``user_id``: the server's (Nova's own target). For the console actions,
  which Nova checks before reading the server, the caller's own.
* ``server.status``, ``server.vm_state``, ``server.task_state``, ``server.locked``,
  ``server.flavor``, ``server.image``: the server as the gateway read it.
* ``action``: the body key (``reboot``); ``microversion``: the request's, e.g. ``2.73``.
* ``action.<field>``: each top-level field of the action's value, as sent (``action.type``
  for reboot, ``action.flavorRef`` for resize). The field Nova upper-cases before use
  (reboot's ``type``) is upper-cased here too, so ``hard`` cannot dodge a ``'HARD'`` rule.

How to compare a target value: put the literal on the LEFT, the target key on the right::

    'HARD':%(action.type)s          'ACTIVE':%(server.status)s       True:%(server.locked)s

* The left side is never interpolated. ``%(server.status)s:ACTIVE`` is not a comparison:
  oslo.policy evaluates it by ``ast.literal_eval('%(server.status)s')``, which raises
  (Nova answers 500). The loader refuses such a file; ``policy lint`` explains the fix.
* A left side that is not a literal is a path into the caller's credentials:
  ``project_id:%(project_id)s`` compares the caller's project with the server's.
* Values compare as text, case-sensitively: ``True``/``None``/``5`` for JSON true/null/5.
* A check naming a key the target lacks is False, so ``not <check>`` on it is True: prefer
  allow-lists, or test presence. ``'':%(action.locked_reason).0s`` is true exactly when the
  key is present (``.0s`` formats any value as the empty string).
* Tokens are split on whitespace and parentheses at their ends group, so a literal can hold
  neither a space nor a leading ``(`` / trailing ``)``.
* Overriding a rule's deprecated name (e.g. ``os_compute_api:os-rescue``, the old name of
  ``os-unrescue``) also overrides the new rule unless the file sets it too (oslo.policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import structlog
from oslo_config import cfg

from gateway.config import validate_policy
from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import PolicyRule, Target
from gateway.policy.files import (
    Fingerprint,
    PolicyLoadError,
    policy_paths,
    read_policy_file,
    value_problems,
)
from gateway.policy.files import fingerprint as policy_fingerprint
from gateway.policy.load import ChangedWhileLoading, LoadedPolicy, RemoteChecks, load_policy
from gateway.policy.target import SERVER_KEYS, build_target, rules_for
from gateway.watch import every

__all__ = [
    "SERVER_KEYS",
    "Decision",
    "LoadedPolicy",
    "Outcome",
    "PolicyEngine",
    "PolicyLoadError",
    "Reason",
    "RemoteChecks",
    "Verdict",
    "build_target",
    "load_policy",
    "policy_paths",
    "read_policy_file",
    "rules_for",
    "value_problems",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")
CONTEXT_IS_ADMIN = "context_is_admin"


class Outcome(enum.Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    WOULD_DENY = "would_deny"  # a dry-run rule refused: reported, not enforced


class Reason(enum.Enum):
    """Why a rule refused (None on a verdict that allowed)."""

    POLICY = "the check string did not match"
    SCOPE = "the token's scope (system or domain) is not one the rule allows"
    UNKNOWN_RULE = "no such rule and no 'default' rule"
    ERROR = "the check raised while being evaluated"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    rule: str  # the rule that decided
    reason: Reason | None = None

    @property
    def allowed(self) -> bool:
        """True unless enforced: a dry-run "would deny" lets the call through."""
        return self.outcome is not Outcome.DENIED

    def __bool__(self) -> bool:
        # A verdict object is always truthy; ``if verdict:`` would silently allow.
        raise TypeError("use Verdict.allowed (or .outcome), not the verdict's truth value")


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on a whole call: the first refusal among the fatal rules, else an allow."""

    verdict: Verdict
    each: tuple[tuple[PolicyRule, Verdict], ...]

    @property
    def allowed(self) -> bool:
        return self.verdict.allowed

    def __bool__(self) -> bool:
        raise TypeError("use Decision.allowed, not the decision's truth value")


@dataclass(frozen=True, slots=True)
class _Subject:
    """The caller as one policy generation sees it: Nova's policy credentials."""

    creds: dict[str, Any]  # to_policy_values() with is_admin, plus enforce()'s 'system'
    roles: frozenset[str]  # lower-cased once per call (RoleCheck compares lower-cased)
    failure: str | None = None  # is_admin could not be computed: Nova answers 500


def _nova_values(credentials: Credentials) -> dict[str, Any]:
    # nova.context.RequestContext.to_policy_values(): oslo.context's values with
    # is_admin added (it comes first: oslo.context lists added keys first), None until
    # context_is_admin has been evaluated.
    creds: dict[str, Any] = credentials.nova_context_values.copy()
    # What Enforcer.enforce() adds before checking: scope reads creds['system'].
    if creds["system_scope"]:
        creds["system"] = creds["system_scope"]
    return creds


def _token_scope(creds: Mapping[str, Any]) -> str:
    # oslo.policy's Enforcer._enforce_scope, which reads creds['system'] (set from
    # system_scope by enforce()) before domain_id.
    if creds.get("system"):
        return "system"
    if creds.get("domain_id"):
        return "domain"
    return "project"


_SUBJECT_MEMO = "policy_subject"  # the key of Credentials.memo this engine keeps


class PolicyEngine:
    """Decides rules for the gateway; reloads its files in the background when they change.

    Construction loads the policy synchronously and raises PolicyLoadError if it is broken:
    starting with Nova's defaults instead of the operator's stricter site rules would
    silently open what the site closed.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        validate_policy(conf)  # ConfigError for a mode Nova 34 cannot run in
        group = conf.policy
        self._conf = conf
        self._dir = Path(group.policy_dir).expanduser().absolute()
        self._enforce_new_defaults = bool(group.enforce_new_defaults)
        self._remote = RemoteChecks(
            timeout=float(group.remote_timeout),
            content_type=str(group.remote_content_type),
            verify_server_crt=bool(group.remote_ssl_verify_server_crt),
            ca_crt_file=group.remote_ssl_ca_crt_file,
            client_crt_file=group.remote_ssl_client_crt_file,
            client_key_file=group.remote_ssl_client_key_file,
        )
        self._remote_threads = int(group.remote_check_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._interval = float(group.reload_interval)
        self._dry_run = frozenset(group.dry_run_rules)
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failed_fingerprint: Fingerprint | str | None = None
        self.reload_failures = 0
        self.reloads = 0
        self.last_reload_ok = True
        self.last_error: str | None = None
        if not self._dir.is_dir():
            log.warning(
                "policy directory missing: Nova's defaults apply", policy_dir=str(self._dir)
            )
        self._policy = self._initial_load()

    def _load(self) -> LoadedPolicy:
        return load_policy(
            self._dir, enforce_new_defaults=self._enforce_new_defaults, remote=self._remote
        )

    def _initial_load(self, attempts: int = 3) -> LoadedPolicy:
        for _ in range(attempts):
            try:
                return self._load()
            except ChangedWhileLoading:
                continue  # being written right now; read it again
        raise PolicyLoadError([f"{self._dir}: the policy files kept changing while read"])

    @property
    def policy_dir(self) -> Path:
        return self._dir

    @property
    def loaded(self) -> LoadedPolicy:
        return self._policy

    @property
    def dry_run_rules(self) -> frozenset[str]:
        return self._dry_run

    # -- decisions ---------------------------------------------------------------------

    def decide(self, rule: str, target: Mapping[str, Any], credentials: Credentials) -> Verdict:
        """Nova's ``context.can(rule, target)``, as a verdict instead of an exception.

        Blocking when the rule reaches a remote check: on the event loop, use decide_async.
        """
        return self._decide_one(self._policy, rule, target, credentials)

    def _subject(self, loaded: LoadedPolicy, credentials: Credentials) -> _Subject:
        """The caller's subject, kept with the credentials for this policy generation: a
        call asks for it more than once (is_admin, then each authorize stage), and a
        cached token's credentials come back on every call with it. Only when
        context_is_admin is a compiled check (a pure function of the credentials)."""
        held = credentials.memo.get(_SUBJECT_MEMO)
        if isinstance(held, tuple) and held[0] is loaded:
            subject: _Subject = held[1]
            return subject
        subject = self._new_subject(loaded, credentials)
        if subject.failure is None and CONTEXT_IS_ADMIN not in loaded.by_oslo:
            credentials.memo[_SUBJECT_MEMO] = (loaded, subject)  # one generation kept
        return subject

    def _new_subject(self, loaded: LoadedPolicy, credentials: Credentials) -> _Subject:
        roles = credentials.policy_roles
        creds = _nova_values(credentials)
        try:
            creds["is_admin"] = self._context_is_admin(loaded, credentials, creds, roles)
        except Exception as exc:  # Nova cannot even build the request's context
            log.error("policy check failed to evaluate", rule=CONTEXT_IS_ADMIN, error=str(exc))
            return _Subject(creds, roles, str(exc))
        return _Subject(creds, roles)

    def _context_is_admin(
        self,
        loaded: LoadedPolicy,
        credentials: Credentials,
        creds: dict[str, Any],
        roles: frozenset[str],
    ) -> bool:
        # nova.policy.check_is_admin, run while Nova builds the RequestContext: the rule
        # on the caller's own project and user, is_admin still None in the credentials.
        target = {"project_id": credentials.project_id, "user_id": credentials.user_id}
        pred = loaded.predicates.get(CONTEXT_IS_ADMIN)
        scopes = loaded.scope_types.get(CONTEXT_IS_ADMIN)
        if pred is None or (scopes is not None and _token_scope(creds) not in scopes):
            return False
        if CONTEXT_IS_ADMIN in loaded.by_oslo:
            creds = dict(creds)  # handed to oslo: a dict of its own, as enforce() builds
        return bool(pred(target, creds, roles, CONTEXT_IS_ADMIN))

    def _decide(
        self, loaded: LoadedPolicy, rule: str, target: Mapping[str, Any], subject: _Subject
    ) -> Verdict:
        reason: Reason | None = None
        pred = loaded.predicates.get(rule) or loaded.default
        scopes = loaded.scope_types.get(rule)
        if subject.failure is not None:
            reason = Reason.ERROR
        elif pred is None:
            reason = Reason.UNKNOWN_RULE
        elif scopes is not None and _token_scope(subject.creds) not in scopes:
            reason = Reason.SCOPE
        else:
            # Compiled checks only read the credentials; a check handed to oslo gets a
            # dict of its own, as each enforce() builds one.
            handed = rule in loaded.by_oslo or (
                loaded.default_by_oslo and rule not in loaded.predicates
            )
            creds = dict(subject.creds) if handed else subject.creds
            try:
                if not pred(target, creds, subject.roles, rule):
                    reason = Reason.POLICY
            except Exception as exc:  # fail closed, whatever a check raised
                log.error("policy check failed to evaluate", rule=rule, error=str(exc))
                reason = Reason.ERROR
        if reason is None:
            return Verdict(Outcome.ALLOWED, rule)
        if rule in self._dry_run:
            return Verdict(Outcome.WOULD_DENY, rule, reason)
        return Verdict(Outcome.DENIED, rule, reason)

    def decide_all(
        self,
        rules: Iterable[PolicyRule],
        target: Mapping[str, Any],
        credentials: Credentials,
        *,
        caller_target: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Every rule's verdict, and the one that decides the call.

        Rules with Target.CALLER see ``caller_target`` (default: ``target``). The deciding
        verdict is the first fatal denial (Nova stops there), else the first "would deny",
        else the last fatal allow. Response-view rules are reported but never decide.
        Blocking when a rule reaches a remote check: on the event loop, use
        decide_all_async.
        """
        return self._decide_all(self._policy, tuple(rules), target, credentials, caller_target)

    def _decide_all(
        self,
        loaded: LoadedPolicy,
        rules: tuple[PolicyRule, ...],
        target: Mapping[str, Any],
        credentials: Credentials,
        caller_target: Mapping[str, Any] | None,
    ) -> Decision:
        subject = self._subject(loaded, credentials)  # one RequestContext per request
        each = tuple(
            (
                rule,
                self._decide(
                    loaded,
                    rule.name,
                    caller_target
                    if rule.target is Target.CALLER and caller_target is not None
                    else target,
                    subject,
                ),
            )
            for rule in rules
        )
        fatal = [verdict for rule, verdict in each if rule.fatal]
        deciding = Verdict(Outcome.ALLOWED, fatal[-1].rule if fatal else "")
        for outcome in (Outcome.DENIED, Outcome.WOULD_DENY):
            first = next((verdict for verdict in fatal if verdict.outcome is outcome), None)
            if first is not None:
                deciding = first
                break
        return Decision(deciding, each)

    def reads_server(self, rules: Iterable[PolicyRule]) -> bool:
        """Does any of these rules read a ``server.*`` attribute (a site rule Nova does
        not have, so a decision on it needs current facts)?"""
        server_rules = self._policy.server_rules
        return any(rule.name in server_rules for rule in rules)

    def is_admin(self, credentials: Credentials) -> bool:
        """Nova's ``context.is_admin``: the ``context_is_admin`` rule on the caller's own
        project and user (nova.policy.check_is_admin). Never dry-run; False if it cannot
        be evaluated (Nova then refuses the request; so do the gateway's decisions)."""
        loaded = self._policy
        return self._subject(loaded, credentials).creds["is_admin"] is True

    # -- off the event loop --------------------------------------------------------------

    async def decide_async(
        self, rule: str, target: Mapping[str, Any], credentials: Credentials
    ) -> Verdict:
        """``decide`` without blocking the loop: inline unless a remote check is reached."""
        loaded = self._policy
        work = partial(self._decide_one, loaded, rule, target, credentials)
        return work() if not loaded.blocks((rule,)) else await self._off_loop(work)

    async def decide_all_async(
        self,
        rules: Iterable[PolicyRule],
        target: Mapping[str, Any],
        credentials: Credentials,
        *,
        caller_target: Mapping[str, Any] | None = None,
    ) -> Decision:
        """``decide_all`` without blocking the loop: inline unless a remote check is reached."""
        loaded = self._policy
        listed = tuple(rules)
        work = partial(self._decide_all, loaded, listed, target, credentials, caller_target)
        blocks = loaded.blocks(rule.name for rule in listed)
        return work() if not blocks else await self._off_loop(work)

    def decide_all_inline(
        self,
        rules: Iterable[PolicyRule],
        target: Mapping[str, Any],
        credentials: Credentials,
        *,
        caller_target: Mapping[str, Any] | None = None,
    ) -> Decision | None:
        """``decide_all`` now, on the caller's thread, when no rule (nor context_is_admin)
        reaches a remote check; None when one does (then use decide_all_async). One
        policy generation decides and answers that question."""
        loaded = self._policy
        listed = tuple(rules)
        if loaded.blocks(rule.name for rule in listed):
            return None
        return self._decide_all(loaded, listed, target, credentials, caller_target)

    def is_admin_inline(self, credentials: Credentials) -> bool | None:
        """``is_admin`` now when context_is_admin reaches no remote check, else None (then
        use is_admin_async); one policy generation answers both."""
        loaded = self._policy
        if loaded.blocks(()):
            return None
        return self._subject(loaded, credentials).creds["is_admin"] is True

    async def is_admin_async(self, credentials: Credentials) -> bool:
        """``is_admin`` without blocking the loop."""
        work = partial(self.is_admin, credentials)
        return work() if not self._policy.blocks(()) else await self._off_loop(work)

    def _decide_one(
        self,
        loaded: LoadedPolicy,
        rule: str,
        target: Mapping[str, Any],
        credentials: Credentials,
    ) -> Verdict:
        return self._decide(loaded, rule, target, self._subject(loaded, credentials))

    async def _off_loop(self, work: Callable[[], T]) -> T:
        # A pool of its own: a slow decision point must not starve the default executor
        # (policy reloads, audit, DNS). Calls beyond its threads wait for one.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self._remote_threads, thread_name_prefix="policy-remote"
            )
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    # -- reloading ---------------------------------------------------------------------

    def poll(self) -> bool:
        """Blocking: reload if a policy file changed (mtime, size, inode, added, removed).

        True when a new policy was applied. A broken file keeps the last good policy,
        counts once in ``reload_failures`` and sets ``last_reload_ok`` False until a good
        load. Run it in a worker thread (``maybe_reload``) once the loop is running.
        """
        with self._lock:
            self._dry_run = frozenset(self._conf.policy.dry_run_rules)
            fingerprint: Fingerprint | str | None = None
            try:
                fingerprint = policy_fingerprint(self._dir)
                if fingerprint in (self._policy.fingerprint, self._failed_fingerprint):
                    return False
                loaded = self._load()
            except ChangedWhileLoading:
                return False  # not recorded: the next poll sees a new fingerprint
            except Exception as exc:  # any failure (RecursionError too) keeps the policy
                problems = list(exc.problems) if isinstance(exc, PolicyLoadError) else [repr(exc)]
                # Counted once per broken state of the files, not once per poll.
                failed = fingerprint if fingerprint is not None else repr(exc)
                if failed == self._failed_fingerprint:
                    return False
                self._failed_fingerprint = failed
                self.reload_failures += 1
                self.last_reload_ok = False
                self.last_error = "; ".join(problems)
                log.error(
                    "policy reload failed; keeping the last good policy",
                    policy_dir=str(self._dir),
                    problems=problems,
                    reload_failures=self.reload_failures,
                )
                return False
            self._policy = loaded
            self._failed_fingerprint = None
            self.reloads += 1
            self.last_reload_ok = True
            self.last_error = None
            log.info(
                "policy reloaded",
                policy_dir=str(self._dir),
                files=[str(f.path.name) for f in loaded.files],
                overrides=len(loaded.enforcer.file_rules),
            )
            return True

    async def maybe_reload(self) -> bool:
        """``poll`` off the event loop."""
        return await asyncio.to_thread(self.poll)

    async def start(self) -> None:
        """Check the files every ``reload_interval`` seconds until ``stop``."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="policy-reload")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pool, self._pool = self._pool, None
        if pool is not None:
            # Remote checks still running end by their own timeout; nothing waits for them.
            pool.shutdown(wait=False, cancel_futures=True)

    async def _watch(self) -> None:
        await every(self._interval, self.maybe_reload, f"policy {self._dir}")

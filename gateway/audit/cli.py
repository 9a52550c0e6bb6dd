"""``nova-gateway audit verify|query|replay``: check a trail, ask it questions, re-decide it.

Owns the operator-facing audit commands and their output; it must never change an audit
file, nor hold decision logic of its own (it asks gateway.policy.engine, gateway.audit.chain,
gateway.audit.ledger and gateway.audit.query).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from oslo_config import cfg

from gateway import config, logs
from gateway.audit.chain import KeyFileError, load_key
from gateway.audit.ledger import CheckedTrail, Ledger, check_trail, expand
from gateway.audit.query import (
    FORMATS,
    Filters,
    QueryError,
    parse_moment,
    rows,
    summary,
    write_csv,
    write_jsonl,
    write_table,
)
from gateway.audit.records import DECIDING_EVENTS, DECISION, gateway_record
from gateway.audit.witness import Witness, WitnessError, build_witnesses
from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import BY_KEY, SERVER_RESOURCE_ACTIONS, ActionSpec, PolicyRule, Target
from gateway.nova.microversion import DEFAULT_VERSION
from gateway.nova.types import Version
from gateway.policy.engine import Outcome, PolicyEngine, PolicyLoadError, build_target, rules_for

EXIT_OK = 0
EXIT_FOUND = 1  # verify: tampering found; replay: some decision would change
EXIT_USAGE = 2

ACTIONS_BY_KEY: Mapping[str, ActionSpec] = {
    **BY_KEY,
    **{spec.key: spec for spec in SERVER_RESOURCE_ACTIONS.values()},
}


# --------------------------------------------------------------------------------------
# verify


def _key(args: argparse.Namespace, conf: cfg.ConfigOpts) -> bytes | None:
    """The HMAC key from --key-file or the configuration; None (said on stderr) if neither."""
    key_file = args.key_file or conf.audit.hmac_key_file
    if not key_file:
        print(
            "no key: give --key-file, or --config-file with [audit] hmac_key_file", file=sys.stderr
        )
        return None
    return load_key(key_file)


def _witnesses(args: argparse.Namespace, conf: cfg.ConfigOpts) -> list[Witness]:
    """--witness-dir / --witness-redis, else the [audit] witness of --config-file."""
    if args.witness_dir or args.witness_redis:
        prefix = args.witness_prefix or conf.audit.witness_key_prefix
        return build_witnesses(args.witness_dir, args.witness_redis, prefix)
    if args.config_file:
        group = conf.audit
        return build_witnesses(
            group.witness_directory, group.witness_redis_url, group.witness_key_prefix
        )
    return []


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    conf = _conf(args)
    try:
        key = _key(args, conf)
        if key is None:
            return EXIT_USAGE
        # Only write-ahead decisions are kept (slim), to pair them with their outcomes.
        ledger = Ledger(keep=lambda record: record.get("event") == DECISION, slim=True)
        checked = check_trail(
            expand(args.files), key, _witnesses(args, conf), ledger=ledger, partial=args.partial
        )
    except (KeyFileError, OSError, WitnessError) as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not checked.reports:
        print("no records found", file=out)
        return EXIT_FOUND
    failed = False
    for report in checked.reports:
        judgement = checked.judgements[report.chain]
        problem = report.problem or judgement.problem
        if problem is not None:
            failed = True
            print(f"FAIL {report.chain}: {problem}", file=out)
            continue
        print(
            f"OK   {report.chain}: seq {report.first_seq}..{report.last_seq}, "
            f"{report.records} records in {len(report.files)} file(s), {judgement.state}",
            file=out,
        )
    for rejected in checked.rejected_heads:
        failed = True
        print(f"FAIL witness {rejected}", file=out)
    for head in checked.absent:
        print(
            f"ABSENT {head.chain}: witnessed up to seq {head.seq} at {head.time}, "
            "but no file read holds this chain (its files are elsewhere, or gone)",
            file=out,
        )
    _print_calls(checked, out)
    return EXIT_FOUND if failed else EXIT_OK


def _print_calls(checked: CheckedTrail, out: TextIO) -> None:
    """Write-ahead decisions paired with their outcomes; the unfinished ones by name."""
    calls = list(checked.ledger.calls.values())
    orphans = checked.ledger.orphans
    if not calls and not orphans:
        return
    unfinished = [call for call in calls if call.unfinished]
    executions = sum(len(call.executions) for call in calls)
    print(
        f"decisions: {len(calls)} written ahead, {len(calls) - len(unfinished)} with their "
        f"outcome, {len(unfinished)} unfinished; {executions} execution record(s)",
        file=out,
    )
    for call in unfinished:
        record = call.deciding
        request = record.get("request") or {}
        print(
            f"UNFINISHED {record.get('time')} {call.request_id} {request.get('method')} "
            f"{request.get('path')} ({call.where}): no outcome; the gateway stopped between "
            "storing this decision and recording the answer (Nova may have run it)",
            file=out,
        )
    for where, event in orphans:
        print(
            f"NOTE {where}: a{'n' if event[0] in 'aeiou' else ''} {event} record whose "
            "decision is not in the files read",
            file=out,
        )


# --------------------------------------------------------------------------------------
# query


def _query(args: argparse.Namespace, out: TextIO) -> int:
    conf = _conf(args)
    try:
        filters = Filters(
            since=parse_moment(args.since) if args.since else None,
            until=parse_moment(args.until) if args.until else None,
            project=args.project,
            user=args.user,
            server=args.server,
            action=args.action,
            decision=args.decision,
            status=args.status,
            request_id=args.request_id,
            actions_only=args.actions_only,
        )
    except QueryError as exc:
        print(f"invalid query: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.no_verify:
            key, witnesses = b"-", []
        else:
            maybe_key = _key(args, conf)
            if maybe_key is None:
                return EXIT_USAGE
            key, witnesses = maybe_key, _witnesses(args, conf)
        checked = check_trail(
            expand(args.files),
            key,
            witnesses,
            ledger=Ledger(keep=filters.keep_deciding),
            partial=True,  # a time range may start after seq 1: missing starts are not asked
            check=not args.no_verify,
        )
    except (KeyFileError, OSError, WitnessError) as exc:
        print(f"cannot query: {exc}", file=sys.stderr)
        return EXIT_USAGE
    found = rows(checked, filters, verified=not args.no_verify)
    if args.format == "jsonl":
        write_jsonl(found, out)
    elif args.format == "csv":
        write_csv(found, out)
    else:
        write_table(found, out)
    footer = summary(checked, len(found), verified=not args.no_verify)
    where = out if args.format == "table" else sys.stderr
    if args.format == "table":
        print("", file=where)
    for line in footer:
        print(line, file=where)
    return EXIT_FOUND if checked.failed or checked.rejected_heads else EXIT_OK


# --------------------------------------------------------------------------------------
# replay


@dataclass(frozen=True)
class Replayed:
    record: Mapping[str, Any]
    before: str  # allow | deny | would_deny
    after: str
    rule: str


def _recorded_outcome(verdicts: Sequence[Mapping[str, Any]]) -> str:
    outcomes = [str(verdict.get("outcome")) for verdict in verdicts]
    if Outcome.DENIED.value in outcomes:
        return "deny"
    return "would_deny" if Outcome.WOULD_DENY.value in outcomes else "allow"


def _credentials(initiator: Mapping[str, Any]) -> Credentials:
    return Credentials(
        user_id=str(initiator.get("user_id")),
        project_id=initiator.get("project_id"),
        roles=frozenset(str(role).lower() for role in initiator.get("roles") or ()),
        domain_id=initiator.get("domain_id"),
        system_scope=initiator.get("system_scope"),
        user_domain_id=initiator.get("user_domain_id"),
        project_domain_id=initiator.get("project_domain_id"),
        is_admin_project=bool(initiator.get("is_admin_project", True)),
        mode="replay",
    )


def _stages(spec: ActionSpec, rules: list[PolicyRule], reached: set[str]) -> list[list[PolicyRule]]:
    """The rules in the pipeline's policy stages; after-state ones only if they ran before."""
    caller = [r for r in rules if not r.after_state and r.target is Target.CALLER]
    server = [r for r in rules if not r.after_state and r.target is not Target.CALLER]
    after = [r for r in rules if r.after_state and r.name in reached]
    return [stage for stage in (caller, server, after) if stage]


def redecide(record: Mapping[str, Any], engine: PolicyEngine) -> Replayed | None:
    """The record re-decided under ``engine``; None if policy was never reached for it."""
    action = record.get("action") or {}
    decision = record.get("decision") or {}
    initiator = record.get("initiator") or {}
    verdicts = decision.get("verdicts") or []
    spec = ACTIONS_BY_KEY.get(str(action.get("key")))
    if spec is None or not verdicts or not initiator.get("user_id"):
        return None
    microversion = (record.get("request") or {}).get("microversion")
    version = Version.parse(microversion) if microversion else DEFAULT_VERSION
    credentials = _credentials(initiator)
    facts = record.get("target") or {}
    server = facts.get("server")
    body = action.get("body")
    server_project = facts.get("project_id") if server is not None else None
    rules = rules_for(
        spec,
        body,
        version,
        server.get("image") if server is not None else None,
        facts.get("locked_by"),
        credentials.project_id,
        server_project,
    )
    target = build_target(
        spec,
        body,
        version,
        project_id=server_project if server is not None else credentials.project_id,
        user_id=facts.get("user_id") if server is not None else credentials.user_id,
        server=server,
    )
    caller_target = build_target(
        spec, body, version, project_id=credentials.project_id, user_id=credentials.user_id
    )
    reached = {str(verdict.get("rule")) for verdict in verdicts}
    after = "allow"
    rule = ""
    for stage in _stages(spec, rules, reached):
        verdict = engine.decide_all(stage, target, credentials, caller_target=caller_target).verdict
        rule = verdict.rule
        if verdict.outcome is Outcome.DENIED:
            after = "deny"
            break
        if verdict.outcome is Outcome.WOULD_DENY and after == "allow":
            after = "would_deny"
    return Replayed(record, _recorded_outcome(verdicts), after, rule)


def read_records(files: Iterable[Path]) -> Iterator[Mapping[str, Any]]:
    """Deciding records (request, decision) from JSON or CADF audit files; others skipped."""
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    document = json.loads(line)
                except ValueError:
                    print(f"{path}:{number}: not a JSON record, skipped", file=sys.stderr)
                    continue
                if isinstance(document, dict):
                    record = gateway_record(document)
                    if record.get("event") in DECIDING_EVENTS:
                        yield record


def _describe(change: Replayed) -> str:
    record = change.record
    initiator = record.get("initiator") or {}
    request = record.get("request") or {}
    target = record.get("target") or {}
    action = (record.get("action") or {}).get("key")
    who = f"user={initiator.get('user_id')} project={initiator.get('project_id')}"
    roles = ",".join(initiator.get("roles") or []) or "-"
    return (
        f"{record.get('time')} {record.get('request_id')} {who} roles={roles} "
        f"{action}@{request.get('microversion') or DEFAULT_VERSION} "
        f"server={target.get('server_id')}: {change.before} -> {change.after}"
        + (f" ({change.rule})" if change.rule else "")
    )


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    try:
        conf = _conf(args)
        conf.set_override("policy_dir", args.policy, group="policy")
        if args.dry_run_rules is not None:
            rules = [rule.strip() for rule in args.dry_run_rules.split(",") if rule.strip()]
            conf.set_override("dry_run_rules", rules, group="policy")
        engine = PolicyEngine(conf)
    except PolicyLoadError as exc:
        for problem in exc.problems:
            print(f"policy not loadable: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except cfg.Error as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    replayed = changed = skipped = 0
    try:
        for record in read_records(expand(args.files)):
            result = redecide(record, engine)
            if result is None:
                skipped += 1
                continue
            replayed += 1
            if result.before != result.after:
                changed += 1
                if args.json:
                    line = {
                        "request_id": record.get("request_id"),
                        "time": record.get("time"),
                        "before": result.before,
                        "after": result.after,
                        "rule": result.rule,
                    }
                    print(json.dumps(line, sort_keys=True), file=out)
                else:
                    print(_describe(result), file=out)
    except OSError as exc:
        print(f"cannot read: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{replayed} decision(s) replayed, {changed} would change, "
        f"{skipped} record(s) never reached policy",
        file=sys.stderr if args.json else out,
    )
    return EXIT_FOUND if changed else EXIT_OK


# --------------------------------------------------------------------------------------


def _conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    conf = config.make_conf()
    files = [args.config_file] if args.config_file else []
    conf([], project="nova-gateway", default_config_files=files, default_config_dirs=[])
    return conf


def _witness_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--witness-dir", help="the [audit] witness_directory the gateway published heads to"
    )
    parser.add_argument(
        "--witness-redis", help="the [audit] witness_redis_url the gateway published heads to"
    )
    parser.add_argument(
        "--witness-prefix", help="the [audit] witness_key_prefix (default as configured)"
    )


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nova-gateway audit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "verify",
        help="check seals and links; name the first altered, deleted, inserted, reordered "
        "or (with a witness) truncated record (exit 1); list decisions without an outcome",
    )
    check.add_argument("--key-file", help="the HMAC key file the gateway sealed with")
    check.add_argument("--config-file", help="gateway config file; its [audit] key and witness")
    check.add_argument(
        "--partial",
        action="store_true",
        help="accept chains that start after seq 1 (older files archived or not given)",
    )
    _witness_arguments(check)
    check.add_argument("files", nargs="+", help="audit files in written order, or directories")
    query = commands.add_parser(
        "query",
        help="the calls that match the filters, with their outcome and execution, as a "
        "table, JSON lines or CSV; the seals of everything read are verified",
    )
    query.add_argument("--key-file", help="the HMAC key file the gateway sealed with")
    query.add_argument("--config-file", help="gateway config file; its [audit] key and witness")
    query.add_argument("--no-verify", action="store_true", help="do not check seals (no key)")
    _witness_arguments(query)
    query.add_argument("--since", help="from this time on: today, yesterday, 2h, 7d, ISO 8601")
    query.add_argument("--until", help="before this time (same forms)")
    query.add_argument("--project", help="the caller's project (id or name)")
    query.add_argument("--user", help="the caller (id or name)")
    query.add_argument("--server", help="the server's id (or its first 8+ characters)")
    query.add_argument("--action", help="the action key: pause, os-stop, reboot, delete, ...")
    query.add_argument("--actions-only", action="store_true", help="only calls that name an action")
    query.add_argument("--decision", choices=("allow", "deny", "error", "would_deny"))
    query.add_argument("--status", help="the answered status (403) or a class (4xx)")
    query.add_argument(
        "--request-id", help="the gateway's, the client's global or Nova's request id (8+ chars)"
    )
    query.add_argument("--format", choices=FORMATS, default="table")
    query.add_argument("files", nargs="+", help="audit files (JSON or CADF), or directories")
    replay = commands.add_parser(
        "replay", help="re-decide recorded requests under a candidate policy; print changes"
    )
    replay.add_argument("--policy", required=True, help="candidate policy directory")
    replay.add_argument("--config-file", help="gateway config file ([policy] options)")
    replay.add_argument("--dry-run-rules", help="comma-separated rules to treat as dry-run")
    replay.add_argument("--json", action="store_true", help="one JSON object per change")
    replay.add_argument("files", nargs="+", help="audit files (JSON or CADF), or directories")
    return parser


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    """verify, query: 0 intact, 1 tampering found; replay: 0 no change, 1 changes; 2 usage."""
    out = out or sys.stdout
    logs.configure("WARNING")  # log lines to stderr, so stdout holds only the answer
    try:
        args = _argument_parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help and on bad arguments
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if args.command == "verify":
            return _verify(args, out)
        if args.command == "query":
            return _query(args, out)
        return _replay(args, out)
    except cfg.Error as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``nova-gateway audit verify|query|replay``: check a trail, ask it questions, re-decide it.

Owns the operator-facing audit commands and their output; it must never change an audit
file, nor hold decision logic of its own (it asks gateway.policy.engine, gateway.audit.chain,
gateway.audit.ledger and gateway.audit.query).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from oslo_config import cfg

from gateway import config, logs
from gateway.audit.chain import KeyFileError, load_key
from gateway.audit.ledger import CheckedTrail, Ledger, check_trail, expand, tally_executions
from gateway.audit.query import (
    EXECUTIONS,
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
from gateway.audit.replay import describe, read_records, redecide
from gateway.audit.witness import Witness, WitnessError, build_witnesses
from gateway.policy.engine import PolicyEngine, PolicyLoadError

EXIT_OK = 0
EXIT_FOUND = 1  # verify: tampering found; replay: some decision would change
EXIT_USAGE = logs.EXIT_USAGE
LISTED_MISSING = 20  # forwarded actions without an execution record named by verify

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
        # Every call, slim, to pair decisions with outcomes and executions with either.
        ledger = Ledger(slim=True)
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
    _print_executions(checked, out)
    return EXIT_FOUND if failed else EXIT_OK


def _print_calls(checked: CheckedTrail, out: TextIO) -> None:
    """Write-ahead decisions paired with their outcomes; the unfinished ones by name."""
    everything = checked.ledger.calls.values()
    calls = [call for call in everything if call.write_ahead]
    orphans = checked.ledger.orphans
    executions = sum(len(call.executions) for call in everything)
    if not calls and not orphans and not executions:
        return
    unfinished = [call for call in calls if call.unfinished]
    print(
        f"decisions: {len(calls)} written ahead, {len(calls) - len(unfinished)} with their "
        f"outcome, {len(unfinished)} unfinished; {executions} execution record(s)",
        file=out,
    )
    if unfinished:
        print(
            "unfinished: stored before forwarding, but the gateway stopped before recording "
            "the answer (a crash, a kill); Nova may have run them. Not tampering:",
            file=out,
        )
    for call in unfinished:
        record = call.deciding
        request = record.get("request") or {}
        print(
            f"UNFINISHED {record.get('time')} {call.request_id} {request.get('method')} "
            f"{request.get('path')} ({call.where})",
            file=out,
        )
    for where, event in orphans:
        print(
            f"NOTE {where}: a{'n' if event[0] in 'aeiou' else ''} {event} record whose "
            "decision is not in the files read",
            file=out,
        )


def _print_executions(checked: CheckedTrail, out: TextIO) -> None:
    """What Nova did with the forwarded actions, as far as its notifications reached here."""
    tally = tally_executions(checked.ledger)
    if tally.chains_without_bus:
        print(
            f"executions: not recorded by {len(tally.chains_without_bus)} chain(s): their "
            "worker had no notification bus ([server_facts] notifications_url); "
            f"{tally.without_bus} forwarded action(s) there have no execution evidence",
            file=out,
        )
    if tally.unknown:
        print(
            f"executions: {tally.unknown} forwarded action(s) in chains whose start "
            "(chain_opened) is not in the files read: whether their worker recorded "
            "executions is unknown; not counted below",
            file=out,
        )
    if not tally.awaited:
        return
    phases = ", ".join(
        f"{tally.by_phase[phase]} {phase}{' (no end yet)' if phase == 'started' else ''}"
        for phase in ("ended", "failed", "started")
        if tally.by_phase.get(phase)
    )
    print(
        f"executions: {tally.awaited} forwarded action(s) Nova publishes events for: "
        f"{phases or 'none recorded'}; {len(tally.missing)} without any execution record",
        file=out,
    )
    if tally.missing:
        print(
            "without execution record: Nova's notifications for them did not reach the worker "
            "that forwarded them (its feed was down, or it stopped first), or came after the "
            "join window (an hour). Not tampering:",
            file=out,
        )
    for call in tally.missing[:LISTED_MISSING]:
        record = call.deciding
        print(
            f"NO EXECUTION {record.get('time')} {call.request_id} {call.action} ({call.where})",
            file=out,
        )
    if len(tally.missing) > LISTED_MISSING:
        print(
            f"... and {len(tally.missing) - LISTED_MISSING} more "
            "(audit query --execution none lists them all)",
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
            execution=args.execution,
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
    footer = summary(checked, found, verified=not args.no_verify)
    where = out if args.format == "table" else sys.stderr
    if args.format == "table":
        print("", file=where)
    for line in footer:
        print(line, file=where)
    return EXIT_FOUND if checked.failed or checked.rejected_heads else EXIT_OK


# --------------------------------------------------------------------------------------
# replay


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
                    print(describe(result), file=out)
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
        "--execution",
        choices=EXECUTIONS,
        help="how far Nova got by its notifications (the furthest phase recorded); none: "
        "accepted actions Nova publishes events for, without an execution record",
    )
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
    args = logs.command_arguments(_argument_parser(), argv)
    if isinstance(args, int):
        return args
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

"""``nova-gateway policy check|sample|lint``: try, print and vet the site policy offline.

Owns the operator-facing policy commands and their output; it must never hold decision
logic of its own (it asks gateway.policy.engine) nor write anywhere but stdout/stderr and --output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from oslo_config import cfg
from oslo_policy import _checks, generator

from gateway import config, logs
from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import BY_KEY, Target
from gateway.nova.policy_defaults import DEFAULTS, DEPRECATED_NAMES, OTHER_NOVA_RULES
from gateway.nova.types import Version
from gateway.policy.engine import (
    SERVER_KEYS,
    LoadedPolicy,
    Outcome,
    PolicyEngine,
    PolicyLoadError,
    Verdict,
    build_target,
    load_policy,
    policy_paths,
    read_policy_file,
    rules_for,
    value_problems,
)
from gateway.policy.gateway_rules import BY_NAME, GATEWAY_RULES

EXIT_ALLOW = 0
EXIT_DENY = 1
EXIT_USAGE = logs.EXIT_USAGE

_SAMPLE_HEADER = """\
# nova-gateway policy file: Nova's defaults for every rule the gateway enforces.
#
# The file format is Nova's: an operator's Nova policy.yaml works here unchanged,
# and rules the gateway does not enforce are ignored. Every default below is
# commented out; uncomment and edit a line to override it, or put site rules in
# policy.d/ (see policy.d/site-examples.yaml). Regenerate with
# `nova-gateway policy sample`; vet changes with `nova-gateway policy lint`.

"""


def sample_text() -> str:
    """Every default, commented, with its description: oslopolicy-sample-generator's format."""
    # The generator's own formatter keeps the output identical to Nova's sample file.
    rules = DEFAULTS + GATEWAY_RULES
    return _SAMPLE_HEADER + "".join(generator._format_rule_default_yaml(rule) for rule in rules)


# --------------------------------------------------------------------------------------
# lint


@dataclass(frozen=True, order=True)
class Finding:
    where: str  # file name (relative to the policy directory)
    rule: str
    severity: str  # "error" fails the lint; "note" is information
    message: str

    def __str__(self) -> str:
        rule = f" {self.rule}:" if self.rule else ""
        return f"{self.where}:{rule} {self.severity}: {self.message}"


_TARGET_KEY = re.compile(r"%\(([^)]*)\)")
_KNOWN_TARGET_KEYS = frozenset(
    {"project_id", "user_id", "action", "microversion"} | {f"server.{k}" for k in SERVER_KEYS}
)


def _referenced_rules(value: Any) -> set[str]:
    text = " ".join(value) if isinstance(value, list) else str(value or "")
    return {token.split(":", 1)[1].rstrip(")") for token in text.split() if "rule:" in token}


def _unknown_target_keys(value: Any) -> list[str]:
    text = json.dumps(value) if isinstance(value, list) else str(value or "")
    return [
        key
        for key in _TARGET_KEY.findall(text)
        if key not in _KNOWN_TARGET_KEYS and not key.startswith("action.")
    ]


def _never_matches(
    check: _checks.BaseCheck, loaded: LoadedPolicy, seen: frozenset[str] = frozenset()
) -> str | None:
    """Why this check can match no request at all, or None if it might match."""
    kind = type(check)
    if kind is _checks.FalseCheck:
        return "'!' matches nobody"
    if kind is _checks.RoleCheck:
        assert isinstance(check, _checks.RoleCheck)
        return "'role:' names no role" if not check.match.strip() else None
    if kind is _checks.RuleCheck:
        assert isinstance(check, _checks.RuleCheck)
        name = check.match
        rules = loaded.enforcer.rules
        if name not in rules:
            return None if loaded.default is not None else f"rule:{name} is not defined"
        if name in seen:
            return None
        return _never_matches(rules[name], loaded, seen | {name})
    if kind is _checks.AndCheck:
        assert isinstance(check, _checks.AndCheck)
        for part in check.rules:
            reason = _never_matches(part, loaded, seen)
            if reason:
                return reason
        return None
    if kind is _checks.OrCheck:
        assert isinstance(check, _checks.OrCheck)
        reasons = [_never_matches(part, loaded, seen) for part in check.rules]
        return "; ".join(r for r in reasons if r) if all(reasons) else None
    if kind is _checks.NotCheck:
        assert isinstance(check, _checks.NotCheck)
        return "'not @' matches nobody" if type(check.rule) is _checks.TrueCheck else None
    return None


def _unregistered_references(where: str, name: str, loaded: LoadedPolicy) -> list[Finding]:
    # Nova registers these with a default; the gateway does not know it, so a reference
    # the files leave undefined decides differently (stricter) than in Nova.
    value = loaded.enforcer.file_rules[name].check_str if name in loaded.enforcer.file_rules else ""
    return [
        Finding(
            where,
            name,
            "error",
            f"rule:{other} is Nova's rule of an API the gateway does not front: its "
            "default is unknown here, so the reference resolves as undefined (the "
            "'default' rule, else deny) where Nova applies its default; define it in a "
            "policy file",
        )
        for other in sorted(_referenced_rules(value))
        if other in OTHER_NOVA_RULES and other not in loaded.enforcer.rules
    ]


def lint(policy_dir: Path, *, enforce_new_defaults: bool = True) -> list[Finding]:
    """Everything wrong (errors) or worth knowing (notes) about the files in policy_dir."""
    findings: list[Finding] = []
    if not policy_dir.is_dir():
        return [Finding(str(policy_dir), "", "error", "not a directory")]
    files = [read_policy_file(path) for path in policy_paths(policy_dir)]
    defined: dict[str, str] = {}  # rule -> the file that set it last
    references: set[str] = set()
    for rule_default in DEFAULTS + GATEWAY_RULES:
        references |= _referenced_rules(rule_default.check_str)
    for policy_file in files:
        for value in policy_file.rules.values():
            references |= _referenced_rules(value)
    all_names = {name for policy_file in files for name in policy_file.rules}
    syntax_ok = True
    for policy_file in files:
        where = str(policy_file.path.relative_to(policy_dir))
        if policy_file.error:
            findings.append(Finding(where, "", "error", policy_file.error))
            syntax_ok = False
            continue
        for name, value in policy_file.rules.items():
            findings.extend(_lint_rule(where, name, value, defined, references, all_names))
            if value_problems(value):
                syntax_ok = False
            defined[name] = where
    if not syntax_ok:
        return sorted(findings)
    try:
        loaded = load_policy(policy_dir, enforce_new_defaults=enforce_new_defaults)
    except PolicyLoadError as exc:
        return sorted(findings + [Finding(".", "", "error", p) for p in exc.problems])
    for name, where in defined.items():
        findings.extend(_unregistered_references(where, name, loaded))
        check = loaded.enforcer.rules.get(name)
        registered = BY_NAME.get(name)
        # Nova's own '!' (cross_cell) is deliberate; only what the site wrote is vetted.
        if check is None or (registered is not None and str(check) == str(registered.check)):
            continue
        reason = _never_matches(check, loaded)
        if reason:
            findings.append(Finding(where, name, "error", f"can never match: {reason}"))
    return sorted(findings)


def _lint_rule(
    where: str,
    name: str,
    value: Any,
    defined: Mapping[str, str],
    references: set[str],
    all_names: set[str],
) -> Iterable[Finding]:
    for problem in value_problems(value):
        yield Finding(where, name, "error", problem)
    if value is None or (isinstance(value, str | list) and not value):
        yield Finding(
            where, name, "error", 'empty check string: allows everyone (write "@" if meant)'
        )
    if name in defined:
        yield Finding(where, name, "note", f"overrides the value set in {defined[name]}")
    default = BY_NAME.get(name)
    heirs = [heir for heir in DEPRECATED_NAMES.get(name, ()) if heir not in all_names]
    if heirs:
        yield Finding(
            where,
            name,
            "note",
            "also the deprecated name of "
            + ", ".join(heirs)
            + ": oslo.policy (and Nova) apply this value to them too unless they are set",
        )
    if default is not None:
        old = default.deprecated_rule
        # Restating a default is redundant, unless it shields the rule from an override
        # of its deprecated name.
        shields = old is not None and old.name in all_names
        if isinstance(value, str) and value.strip() == default.check_str and not shields:
            yield Finding(where, name, "note", "same as Nova's default; the line can go")
    elif name in DEPRECATED_NAMES:
        pass  # reported above (or fully shadowed by the new names)
    elif name in OTHER_NOVA_RULES:
        yield Finding(where, name, "note", "a Nova rule of another API: the gateway ignores it")
    elif name not in references:
        yield Finding(
            where, name, "error", "unknown rule name: not a Nova rule and no rule refers to it"
        )
    if name not in OTHER_NOVA_RULES:
        for key in _unknown_target_keys(value):
            yield Finding(
                where,
                name,
                "error",
                f"target key %({key})s is never set by the gateway (a check on it is False)",
            )


# --------------------------------------------------------------------------------------
# check


def _credentials(args: argparse.Namespace) -> Credentials:
    names = tuple(r.strip() for r in args.roles.split(",") if r.strip())
    return Credentials(
        user_id=args.user,
        project_id=args.project,
        roles=frozenset(name.lower() for name in names),
        role_names=names,  # as Keystone would spell them to Nova
        domain_id=args.domain,
        system_scope=args.system_scope,
        mode="cli",
    )


def _server(args: argparse.Namespace) -> dict[str, Any]:
    server: dict[str, Any] = {}
    for key in ("status", "vm_state", "task_state", "flavor", "image"):
        value = getattr(args, f"server_{key}")
        if value is not None:
            server[key] = None if key == "task_state" and value == "none" else value
    if args.locked or args.locked_by:
        server["locked"] = True
    return server


def _line(verdict: Verdict, fatal: bool, check_str: str) -> str:
    label = {
        Outcome.ALLOWED: "ALLOW",
        Outcome.DENIED: "DENY",
        Outcome.WOULD_DENY: "WOULD DENY",
    }[verdict.outcome]
    if verdict.reason is not None and verdict.outcome is not Outcome.ALLOWED:
        label += f" ({verdict.reason.name.lower().replace('_', ' ')})"
    view = "" if fatal else "  [response view only: never refuses]"
    return f"  {label:<22} {verdict.rule}  = {check_str}{view}"


def _check(args: argparse.Namespace, engine: PolicyEngine, out: TextIO) -> int:
    spec = BY_KEY.get(args.action)
    if spec is None:
        print(f"unknown action {args.action!r}; Nova answers 400", file=sys.stderr)
        return EXIT_USAGE
    try:
        version = Version.parse(args.microversion)
        body_value = json.loads(args.body)
    except ValueError as exc:
        print(f"bad --microversion or --body: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(body_value, dict) and list(body_value) == [spec.key]:
        body_value = body_value[spec.key]  # a whole request body was given
    if not spec.supports(version):
        print(f"{spec.key} does not exist at {version}; Nova answers 404", file=sys.stderr)
        return EXIT_USAGE
    credentials = _credentials(args)
    server_project = args.server_project if args.server_project is not None else args.project
    server_user = args.server_user if args.server_user is not None else args.user
    server = _server(args)
    target = build_target(
        spec, body_value, version, project_id=server_project, user_id=server_user, server=server
    )
    caller_target = build_target(
        spec, body_value, version, project_id=args.project, user_id=args.user, server=server
    )
    image = "" if args.volume_backed else server.get("image", "image-backed")
    rules = rules_for(
        spec,
        body_value,
        version,
        image,
        args.locked_by,
        args.project,
        server_project,
        include_response_view=True,
    )
    decision = engine.decide_all(rules, target, credentials, caller_target=caller_target)
    print(
        f"{spec.key} at {version} by user={credentials.user_id} project={credentials.project_id}"
        f" roles={','.join(sorted(credentials.roles)) or '-'}"
        + (f" system_scope={credentials.system_scope}" if credentials.system_scope else ""),
        file=out,
    )
    if spec.removed is not None:
        print(f"  no policy rule: Nova answers {spec.removed.status} to every call", file=out)
    for rule, verdict in decision.each:
        print(_line(verdict, rule.fatal, engine.loaded.check_str(rule.name)), file=out)
    if args.verbose:
        print(f"  target: {json.dumps(target, sort_keys=True, default=str)}", file=out)
        if any(rule.target is Target.CALLER for rule in rules):
            shown = json.dumps(caller_target, sort_keys=True, default=str)
            print(f"  caller target (checked before the server is read): {shown}", file=out)
    admin = engine.is_admin(credentials)
    print(f"  context_is_admin: {'yes (bypasses locks)' if admin else 'no'}", file=out)
    verdict = decision.verdict
    outcome = "allowed" if verdict.allowed else "denied"
    if verdict.outcome is Outcome.WOULD_DENY:
        outcome = "allowed (dry run: would deny)"
    print(f"decided by: {verdict.rule or '(no rule)'} -> {outcome}", file=out)
    return EXIT_ALLOW if verdict.allowed else EXIT_DENY


# --------------------------------------------------------------------------------------


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nova-gateway policy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_policy_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config-file", help="gateway config file; its [policy] applies")
        sub.add_argument("--policy-dir", help="policy directory (overrides [policy] policy_dir)")

    check = commands.add_parser("check", help="decide one action call and print each rule")
    with_policy_options(check)
    check.add_argument("--user", default="user", help="caller's user id")
    check.add_argument("--project", help="caller's project id (omit for system/domain scope)")
    check.add_argument("--roles", default="", help="comma-separated roles, e.g. member,reader")
    check.add_argument("--system-scope", help="system scope of the token, e.g. all")
    check.add_argument("--domain", help="domain id of a domain-scoped token")
    check.add_argument("--action", required=True, help="action key, e.g. reboot")
    check.add_argument("--body", default="null", help="the action's JSON value (or whole body)")
    check.add_argument("--microversion", default="2.1", help="e.g. 2.73 (default 2.1)")
    check.add_argument("--server-project", help="server's project (default: --project)")
    check.add_argument("--server-user", help="server's user (default: --user)")
    check.add_argument("--server-status", help="e.g. ACTIVE")
    check.add_argument("--server-vm-state", help="e.g. active")
    check.add_argument("--server-task-state", help="e.g. rebooting; 'none' for null")
    check.add_argument("--server-flavor", help="server's flavor as the pipeline reports it")
    check.add_argument("--server-image", help="server's image id ('' = volume-backed)")
    check.add_argument("--volume-backed", action="store_true", help="server boots from volume")
    check.add_argument("--locked", action="store_true", help="server is locked")
    check.add_argument(
        "--locked-by", choices=("owner", "admin"), help="who locked it (implies --locked)"
    )
    check.add_argument("--verbose", "-v", action="store_true", help="also print the target")

    sample = commands.add_parser("sample", help="print the commented default policy.yaml")
    sample.add_argument("--output", help="write to this file instead of stdout")

    lint_cmd = commands.add_parser("lint", help="vet a policy directory; non-zero on errors")
    with_policy_options(lint_cmd)
    return parser


def _conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    conf = config.make_conf()
    files = [args.config_file] if args.config_file else []
    conf([], project="nova-gateway", default_config_files=files, default_config_dirs=[])
    if args.policy_dir is not None:
        conf.set_override("policy_dir", args.policy_dir, group="policy")
    return conf


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    """Run one policy subcommand; 0 allow/clean, 1 deny/findings, 2 usage or load error."""
    out = out or sys.stdout
    args = logs.command_arguments(_argument_parser(), argv)
    if isinstance(args, int):
        return args
    if args.command == "sample":
        text = sample_text()
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            out.write(text)
        return 0
    try:
        conf = _conf(args)
        config.validate_policy(conf)
    except (cfg.Error, config.ConfigError) as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    policy_dir = Path(conf.policy.policy_dir).expanduser().absolute()
    if args.command == "lint":
        findings = lint(policy_dir, enforce_new_defaults=conf.policy.enforce_new_defaults)
        for finding in findings:
            print(finding, file=out)
        errors = sum(f.severity == "error" for f in findings)
        print(f"{errors} error(s), {len(findings) - errors} note(s) in {policy_dir}", file=out)
        return 1 if errors else 0
    try:
        engine = PolicyEngine(conf)
    except PolicyLoadError as exc:
        for problem in exc.problems:
            print(f"policy not loadable: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return _check(args, engine, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

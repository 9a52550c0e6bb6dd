"""The ``nova-gateway`` command: run the gateway (or the demo when no Nova is set).

Owns argument handling and start-up errors; it must never hold request logic.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway import config, logs


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "policy":
        from gateway.policy import cli as policy_cli

        return policy_cli.main(args[1:])
    if args and args[0] == "audit":
        from gateway.audit import cli as audit_cli

        return audit_cli.main(args[1:])
    logs.configure()
    try:
        conf = config.load(args)
    except config.ConfigError as exc:
        print(f"nova-gateway: invalid configuration: {exc}", file=sys.stderr)
        return 2
    from gateway.ratelimit import limiter as ratelimit

    try:
        # Refused here, once, rather than in every forked worker.
        ratelimit.load_rules(conf.rate_limit.rules_file)
    except ratelimit.RuleError as exc:
        print(f"nova-gateway: invalid configuration: [rate_limit] {exc}", file=sys.stderr)
        return 2
    if conf.audit.enabled:
        from gateway.audit.chain import KeyFileError, load_key

        try:
            load_key(conf.audit.hmac_key_file)
        except KeyFileError as exc:
            print(
                f"nova-gateway: invalid configuration: [audit] hmac_key_file: {exc}",
                file=sys.stderr,
            )
            return 2
    from gateway.web import server

    if not conf.upstream.url:
        from gateway import demo

        return demo.run(conf)
    api_url, admin_url = server.listener_urls(conf)
    return server.run(
        conf, conf.upstream.url, lambda: print(f"READY {api_url} admin {admin_url}", flush=True)
    )


if __name__ == "__main__":
    sys.exit(main())

"""The policy rules the gateway adds of its own, beside Nova's registered defaults.

Owns their names, defaults and descriptions (an operator tunes them in the same policy
files as Nova's rules); it must never hold Nova's rules (gateway.nova.policy_defaults does)
nor decide anything.
"""

from __future__ import annotations

from oslo_policy.policy import RuleDefault

from gateway.nova.policy_defaults import ADMIN, DEFAULTS

RATE_LIMIT_EXEMPT = "nova_gateway:rate_limit:exempt"

GATEWAY_RULES: tuple[RuleDefault, ...] = (
    RuleDefault(
        RATE_LIMIT_EXEMPT,
        ADMIN,
        "Callers the gateway's rate limits do not apply to (the target is the caller's "
        "own project_id and user_id).",
    ),
)

# Every default the gateway registers with oslo.policy: Nova's, then its own.
REGISTERED: tuple[RuleDefault, ...] = DEFAULTS + GATEWAY_RULES
BY_NAME: dict[str, RuleDefault] = {rule.name: rule for rule in REGISTERED}

"""Nova's own check kind, ``is_admin:``, registered with oslo.policy as nova/policy.py does.

Owns IsAdminCheck and its registration; it must never decide anything else, nor differ
from nova.policy.IsAdminCheck (Nova 34), which every Nova policy file is written against.

Registration is process-wide, as in Nova: check strings parsed after this module is
imported read ``is_admin:<x>`` as this check. Nova parses its own defaults before it
registers the check (they stay generic checks); both kinds give the same answer on the
``is_admin`` values Nova puts in the credentials (True, False, or None while
``context_is_admin`` itself is being evaluated).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from oslo_policy import policy

if TYPE_CHECKING:
    from oslo_policy.policy import Enforcer


@policy.register("is_admin")
class IsAdminCheck(policy.Check):
    """``is_admin:True`` matches when the credentials' ``is_admin`` is True.

    Any other text than ``true`` (any case) expects False: ``is_admin:1`` matches
    non-admins, as in Nova. The credentials must hold ``is_admin`` (Nova's always do).
    """

    def __init__(self, kind: str, match: str) -> None:
        self.expected = match.lower() == "true"
        super().__init__(kind, str(self.expected))

    def __call__(
        self,
        target: Mapping[str, Any],
        creds: MutableMapping[str, Any],
        enforcer: Enforcer,
        current_rule: str | None = None,
    ) -> bool:
        return bool(creds["is_admin"] == self.expected)

"""Differential oracle: runs under REAL Nova's virtualenv and decides as Nova's API does.

Owns asking Nova itself for policy verdicts: keystonemiddleware's headers from a token
(its own _AuthTokenRequest), Nova's RequestContext.from_environ (is_admin from
nova.policy.check_is_admin), and context.can(rule, target, fatal=False) through
nova.policy with oslo.policy configured as nova.conf would; it must never import the
gateway.

Input, one JSON object per stdin line:
  {"policy_dir": "...", "enforce_new_defaults": true, "oslo_policy": {option: value},
   "cases": [{"rule": "...", "target": {...}, "token": {v3 token body}}, ...]}
Output, one line each: {"loaded": "ok" | "error:<type>: <text>",
  "verdicts": ["allow" | "deny" | "error:<type>", ...]} (no verdicts if not loaded).
"""

import json
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

# As Nova's own entry points (and the realnova lab) do, before anything imports eventlet.
os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)  # Nova logs every refusal; the verdicts are the output

from nova import monkey_patch  # noqa: E402

monkey_patch.patch(backend="threading")

import nova.conf  # noqa: E402
from keystoneauth1 import access  # noqa: E402
from keystonemiddleware.auth_token import _request  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import policy as nova_policy  # noqa: E402
from oslo_policy import opts as policy_opts  # noqa: E402

CONF = nova.conf.CONF


def configure(request: Mapping[str, Any]) -> None:
    policy_dir = request["policy_dir"]
    overrides = {
        "policy_file": os.path.join(policy_dir, "policy.yaml"),
        "policy_dirs": [os.path.join(policy_dir, "policy.d")],
        "enforce_new_defaults": request.get("enforce_new_defaults", True),
        **request.get("oslo_policy", {}),
    }
    for name, value in overrides.items():
        CONF.set_override(name, value, group="oslo_policy")
    nova_policy.reset()
    nova_policy.init()


def environ_for(token: Mapping[str, Any]) -> dict[str, Any]:
    # keystonemiddleware's own header mapping, from keystoneauth's view of the token.
    auth_ref = access.create(body=token, auth_token="token")
    request = _request._AuthTokenRequest.blank("/")
    request.set_user_headers(auth_ref)
    environ: dict[str, Any] = request.environ
    return environ


def decide(case: Mapping[str, Any]) -> str:
    try:
        context = nova_context.RequestContext.from_environ(environ_for(case["token"]))
        allowed = context.can(case["rule"], case["target"], fatal=False)
    except Exception as exc:  # Nova answers 500
        return f"error:{type(exc).__name__}"
    return "allow" if allowed else "deny"


def main() -> None:
    CONF([], project="nova", default_config_files=[], default_config_dirs=[])
    policy_opts._register(CONF)
    for line in sys.stdin:
        request = json.loads(line)
        answer: dict[str, object]
        try:
            configure(request)
        except Exception as exc:
            answer = {"loaded": f"error:{type(exc).__name__}: {str(exc)[:200]}"}
        else:
            answer = {"loaded": "ok", "verdicts": [decide(case) for case in request["cases"]]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Route oracle: runs under REAL Nova's virtualenv and answers as Nova's router matches.

Owns asking Nova's own mapper (ProjectMapper filled from ROUTE_LIST exactly as
APIRouterV21 fills it) which requests it routes; it must never import the gateway or copy
the gateway's route table.

Input, one JSON object per stdin line:
  {"path": "/servers/x", "methods": ["GET", "PATCH"]}  -> {"routed": ["GET"]}
  {"dump": "routes"}  -> {"routes": [[path, [methods...]] | [path, "redirect target"], ...]}
"""

import json
import os
import sys
import warnings
from typing import Any

# As Nova's own entry points (and the realnova lab) do, before anything imports eventlet.
os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")
warnings.simplefilter("ignore")

from nova import monkey_patch  # noqa: E402

monkey_patch.patch(backend="threading")

import nova.api.openstack  # noqa: E402
from nova.api.openstack.compute import routes  # noqa: E402


def build_mapper() -> Any:
    """APIRouterV21.__init__'s loop, with a marker instead of each controller instance
    (instantiating controllers needs a configured Nova; matching never looks at them)."""
    mapper = nova.api.openstack.ProjectMapper()
    for path, methods in routes.ROUTE_LIST:
        if isinstance(methods, str):
            mapper.redirect(path, methods)
            continue
        for method in methods:
            mapper.create_route(path, method, "controller", path)
    return mapper


def routed(mapper: Any, method: str, path: str) -> bool:
    """What nova.api.wsgi.Router._dispatch sees: a match with a controller, or 404."""
    match = mapper.routematch(path, environ={"REQUEST_METHOD": method})
    return match is not None and match[0].get("controller") is not None


def main() -> None:
    mapper = build_mapper()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("dump") == "routes":
            answer = {
                "routes": [
                    [path, methods if isinstance(methods, str) else list(methods)]
                    for path, methods in routes.ROUTE_LIST
                ]
            }
        else:
            path = request["path"]
            answer = {"routed": [m for m in request["methods"] if routed(mapper, m, path)]}
        out.write(json.dumps(answer) + "\n")
    out.flush()


if __name__ == "__main__":
    main()

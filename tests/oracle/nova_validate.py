"""Differential oracle: runs under REAL Nova's virtualenv and answers as Nova's API code does.

Owns asking Nova itself (its controllers, decorators and _SchemaValidator) for a verdict;
it must never import the gateway or copy the gateway's schema table.

Input, one JSON object per stdin line:
  {"action": "<body key>", "version": "2.x", "body": {...}}  -> {"ok", "status", "message"}
  {"dump": "schemas"}  -> {"actions": {key: {"api_version": [min, max] | null,
                           "schemas": [[min, max, schema], ...]}}, "name_regex": "...",
                           "description_regex": "..."}
"ok" is true when Nova's decorators let the request through to the controller body;
otherwise "status" is 404 (api_version gate), 400 (schema) or 500 (validator crashed).
"""

import copy
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from types import CodeType, FrameType
from typing import Any, NoReturn, cast

# As Nova's own entry points (and the realnova lab) do, before anything imports eventlet.
os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")
warnings.simplefilter("ignore")

from nova import monkey_patch  # noqa: E402

monkey_patch.patch(backend="threading")

import webob.exc  # noqa: E402
from nova import exception  # noqa: E402
from nova.api.openstack import api_version_request  # noqa: E402
from nova.api.openstack.compute import routes  # noqa: E402
from nova.api.validation import parameter_types  # noqa: E402
from oslo_config import cfg  # noqa: E402

SERVER_ID = "4f8a1a34-8d4e-4d4b-9d3c-0b2f0c3b5e6a"


class Reached(BaseException):
    """Raised by the probes when the controller body starts using the request.

    A BaseException so that Nova's expected_errors wrapper (``except Exception``) lets it by.
    """


class ProbeRequest:
    """Just what Nova's decorators read from a request; anything else stops the call."""

    def __init__(self, version: str) -> None:
        self.api_version_request = api_version_request.APIVersionRequest(version)

    def is_legacy_v2(self) -> bool:
        return False

    def __getattr__(self, name: str) -> NoReturn:
        raise Reached(name)


class ProbeController:
    def __getattr__(self, name: str) -> NoReturn:
        raise Reached(name)


def action_methods() -> dict[str, tuple[Callable[..., Any], CodeType]]:
    """Every action key on /servers/{id}/action -> (decorated method, innermost code)."""
    main, subs = routes.server_controller.args
    methods: dict[str, tuple[Callable[..., Any], CodeType]] = {}
    for controller in [main, *subs]:
        for key, name in controller.wsgi_actions.items():
            method = getattr(controller, name)
            inner = method
            while hasattr(inner, "__wrapped__"):
                inner = inner.__wrapped__
            methods[key] = (method, inner.__code__)
    return methods


def verdict(
    methods: Mapping[str, tuple[Callable[..., Any], CodeType]],
    action: str,
    version: str,
    body: Any,
) -> dict[str, object]:
    method, inner_code = methods[action]
    entered: list[bool] = []

    def watch(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is inner_code:
            entered.append(True)

    sys.setprofile(watch)
    try:
        method(ProbeController(), req=ProbeRequest(version), id=SERVER_ID, body=body)
    except Reached:
        pass
    except exception.ValidationError as exc:
        return _refused(400, exc.format_message())
    except exception.VersionNotFoundForAPIMethod:
        return _refused(404, "The resource could not be found.")
    except webob.exc.HTTPException as exc:
        if not entered:
            # Nova raises webob's HTTP error classes (WSGIHTTPException), which carry these.
            refusal = cast(webob.exc.WSGIHTTPException, exc)
            return _refused(refusal.code, refusal.explanation)
    except Exception:  # after validation: the controller's business, not ours
        if not entered:
            raise
    finally:
        sys.setprofile(None)
    if not entered:
        raise RuntimeError(f"{action}: neither refused nor reached the controller")
    return {"ok": True, "status": None, "message": ""}


def _refused(status: int, message: object) -> dict[str, object]:
    return {"ok": False, "status": status, "message": str(message)}


def _version(value: Any) -> str | None:
    return None if value.is_null() else value.get_string()


def dump_schemas(
    methods: Mapping[str, tuple[Callable[..., Any], CodeType]],
) -> dict[str, object]:
    actions: dict[str, dict[str, object]] = {}
    for key, (method, _) in methods.items():
        registered = getattr(method, "request_body_schemas", None)
        rows = [] if registered is None else registered._schemas
        low, high = getattr(method, "min_version", None), getattr(method, "max_version", None)
        actions[key] = {
            "api_version": None if low is None and high is None else [low, high],
            "schemas": [[_version(lo), _version(hi), schema] for schema, lo, hi in rows],
        }
    return {
        "actions": actions,
        "name_regex": parameter_types.valid_name_regex.regex,
        "name_reason": parameter_types.valid_name_regex.reason,
        "description_regex": parameter_types.valid_description_regex,
    }


def main() -> None:
    logging.disable(logging.CRITICAL)  # expected_errors logs every 500 with a traceback
    cfg.CONF([], project="nova", default_config_files=[], default_config_dirs=[])
    methods = action_methods()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("dump") == "schemas":
            answer = dump_schemas(methods)
        else:
            body = copy.deepcopy(request["body"])
            answer = verdict(methods, request["action"], request["version"], body)
        out.write(json.dumps(answer) + "\n")
    out.flush()


if __name__ == "__main__":
    main()

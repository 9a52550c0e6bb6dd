"""Nova's refusals as the simulator raises them, and the JSON body Nova's Fault wrapper
renders for them (nova/api/openstack/wsgi.py).

Owns the exception every refusal raises, the status-to-name table and the body bytes; it
must never decide whether to refuse, nor add headers (wire.py does).
"""

from __future__ import annotations

import json

# wsgi.Fault._fault_names; every other status is a computeFault.
_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}
CONTENT_TYPE = "application/json; charset=UTF-8"
# nova.version.support_string() when no release file overrides it.
SUPPORT = "Please contact the administrator"


class Fault(Exception):
    """Nova's answer to a request it refuses: a status and the explanation it shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> bytes:
        """``{"<name>": {"code": <status>, "message": <explanation>}}`` as Nova serialises it."""
        name = _NAMES.get(self.status, "computeFault")
        return json.dumps({name: {"code": self.status, "message": self.message}}).encode()


def malformed_body() -> Fault:
    """A body that is not JSON (wsgi's MalformedRequestBody)."""
    return Fault(400, "Malformed request body")


def resource_not_found() -> Fault:
    """webob's 404 text, which Nova's Fault shows for routing and version misses."""
    return Fault(404, "The resource could not be found.")


def unexpected(exception_class: str) -> Fault:
    """The 500 of Nova's expected_errors wrapper when an exception escapes a controller;
    ``exception_class`` is the class as Python prints it (``nova.exception.X``)."""
    return Fault(500, f"Unexpected API Error. {SUPPORT}\n<class '{exception_class}'>")

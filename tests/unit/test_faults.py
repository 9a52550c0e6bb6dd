"""Nova's fault body format (nova-actions.md §A.4)."""

from __future__ import annotations

import json

import pytest

from gateway.nova.faults import Fault, render_fault


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "badRequest"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "itemNotFound"),
        (405, "badMethod"),
        (409, "conflictingRequest"),
        (413, "overLimit"),
        (415, "badMediaType"),
        (429, "overLimit"),
        (501, "notImplemented"),
        (503, "serviceUnavailable"),
        (406, "computeFault"),
        (410, "computeFault"),
        (500, "computeFault"),
        (502, "computeFault"),
        (504, "computeFault"),
    ],
)
def test_names(status: int, name: str) -> None:
    assert json.loads(render_fault(status, "m")) == {name: {"code": status, "message": "m"}}


def test_retry_after_for_over_limit_only() -> None:
    assert json.loads(render_fault(429, "slow", 7)) == {
        "overLimit": {"code": 429, "message": "slow", "retryAfter": "7"}
    }
    assert "retryAfter" not in render_fault(503, "busy", 7).decode()
    fault = Fault(503, "busy", retry_after=3)
    assert fault.headers["Retry-After"] == "3" and fault.name == "serviceUnavailable"

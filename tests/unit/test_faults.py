"""Nova's fault body format (nova-actions.md §A.4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway.nova.faults import Fault, Shape, not_routed, render_fault
from novasim import faults as sim_faults

STATUSES = (400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 429, 500, 501, 502, 503, 504)


@pytest.mark.parametrize("status", STATUSES)
def test_names_as_novasim_writes_them(status: int) -> None:
    """novasim's own fault table (written apart from the gateway's) is the judge."""
    expected = json.loads(sim_faults.Fault(status, "m").body())
    assert json.loads(render_fault(status, "m")) == expected


def test_names_as_nova_documents_them(shared_dir: Path) -> None:
    """The table of nova-actions.md §A.4, read where it lives (../shared/nova)."""
    text = (shared_dir / "nova" / "nova-actions.md").read_text(encoding="utf-8")
    section = text[text.index("### A.4") :]
    rows = dict(re.findall(r"^\| (\d{3}) \| `(\w+)` \|$", section, re.MULTILINE))
    assert len(rows) == 11, rows
    for status in STATUSES:
        name = rows.get(str(status), "computeFault")
        assert json.loads(render_fault(status, "m")) == {name: {"code": status, "message": "m"}}


def test_retry_after_for_over_limit_only() -> None:
    assert json.loads(render_fault(429, "slow", 7)) == {
        "overLimit": {"code": 429, "message": "slow", "retryAfter": "7"}
    }
    assert "retryAfter" not in render_fault(503, "busy", 7).decode()
    fault = Fault(503, "busy", retry_after=3)
    assert fault.headers["Retry-After"] == "3" and fault.name == "serviceUnavailable"


def test_nova_fault_renders_as_json_whatever_the_accept() -> None:
    rendered = Fault(409, "locked").render("POST", "text/html")
    assert rendered.content_type == "application/json; charset=UTF-8"
    assert json.loads(rendered.body) == {"conflictingRequest": {"code": 409, "message": "locked"}}


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "text/plain; charset=UTF-8"),
        ("application/json", "application/json"),
        ("text/html", "text/html; charset=UTF-8"),
        ("*/*", "text/html; charset=UTF-8"),
    ],
)
def test_webob_shape_follows_accept(accept: str | None, content_type: str) -> None:
    rendered = not_routed().render("GET", accept)
    assert rendered.content_type == content_type
    assert b"The resource could not be found." in rendered.body
    assert rendered.content_length == len(rendered.body)


def test_webob_json_page() -> None:
    body = json.loads(not_routed().render("GET", "application/json").body)
    assert body["code"] == "404 Not Found" and body["title"] == "Not Found"


def test_head_has_no_body() -> None:
    rendered = not_routed().render("HEAD", "application/json")
    assert rendered.body == b"" and rendered.content_length == 0


def test_keystone_shape_is_keystonemiddlewares_401() -> None:
    """keystonemiddleware/auth_token/__init__.py: a fixed JSON body whatever Accept says;
    a HEAD keeps its length and loses its body."""
    fault = Fault(401, "The request you have made requires authentication.", shape=Shape.KEYSTONE)
    rendered = fault.render("GET", "text/html")
    assert rendered.content_type == "application/json"
    assert json.loads(rendered.body) == {
        "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }
    }
    head = fault.render("HEAD", None)
    assert head.body == b"" and head.content_length == len(rendered.body)


def test_only_novas_own_faults_carry_version_headers() -> None:
    assert Fault(400, "x").version_headers
    assert not Fault(404, "x", shape=Shape.WEBOB).version_headers
    assert not Fault(401, "x", shape=Shape.KEYSTONE).version_headers

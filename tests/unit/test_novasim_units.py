"""novasim's pure pieces: tokens, policy checks, routing, status map, webob bodies and
the recorder (its action tables: test_novasim_tables.py)."""

from __future__ import annotations

import json

import pytest

from novasim import policy
from novasim.identity import Caller, Unauthenticated, authenticate, caller_from_token
from novasim.model import status_from_state
from novasim.recorder import RecordedRequest, Recorder
from novasim.routing import Resource, match
from novasim.wire import webob_error

# --- identity ----------------------------------------------------------------------------


def test_token_without_roles_is_member_with_implied_reader() -> None:
    caller = caller_from_token("alice:p1")
    assert caller == Caller("alice", "p1", frozenset({"member", "reader"}))
    assert not caller.is_admin and caller.project_scoped


def test_admin_user_defaults_to_admin_and_expands_every_implied_role() -> None:
    caller = caller_from_token("admin:admin")
    assert caller.roles == {"admin", "manager", "member", "reader"} and caller.is_admin


def test_roles_are_expanded_and_lower_cased() -> None:
    assert caller_from_token("m:p1:Manager").roles == {"manager", "member", "reader"}
    assert caller_from_token("c:p1:reader").roles == {"reader"}
    assert caller_from_token("s:p1:service").roles == {"service"}


def test_system_and_domain_scoped_tokens() -> None:
    system = caller_from_token("root::admin:system")
    assert system.system_scope == "all" and system.project_id is None and system.is_admin
    domain = caller_from_token("d:p1:admin:domain=default")
    assert domain.domain_id == "default" and not domain.project_scoped


@pytest.mark.parametrize("token", ["alice", "alice:", ":p1", "a:b:c:d:e", "a:p1:r:planet"])
def test_malformed_tokens_are_unauthenticated(token: str) -> None:
    with pytest.raises(Unauthenticated):
        caller_from_token(token)


def test_identity_headers_need_explicit_trust() -> None:
    headers = {"X-User-Id": "u", "X-Project-Id": "p1", "X-Roles": "Member,reader"}
    with pytest.raises(Unauthenticated):
        authenticate(headers, trust_identity_headers=False)
    caller = authenticate(headers, trust_identity_headers=True)
    assert caller.roles == {"member", "reader"} and caller.project_id == "p1"


# --- policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "check", "target", "allowed"),
    [
        ("alice:p1", "rule:project_member_or_admin", "p1", True),
        ("alice:p1", "rule:project_member_or_admin", "p2", False),
        ("carol:p1:reader", "rule:project_member_or_admin", "p1", False),
        ("carol:p1:reader", "rule:project_reader_or_admin", "p1", True),
        ("alice:p1", "rule:project_manager_or_admin", "p1", False),
        ("mgr:p1:manager", "rule:project_manager_or_admin", "p1", True),
        ("admin:admin", "rule:project_member_or_admin", "p1", True),
        ("admin:admin", "rule:context_is_admin", None, True),
        ("alice:p1", "rule:project_member_or_admin", None, False),
        ("admin:admin", "!", "p1", False),
        ("alice:p1", "@", None, True),
        ("root::admin:system", "rule:context_is_admin", "p1", False),
        ("root::admin:system", "@", None, False),
    ],
)
def test_default_rules(token: str, check: str, target: str | None, allowed: bool) -> None:
    assert policy.allows(check, caller_from_token(token), target) is allowed


def test_policy_refusal_is_novas_403() -> None:
    with pytest.raises(Exception) as refused:
        policy.enforce("os_compute_api:x", "rule:context_is_admin", caller_from_token("a:p1"), "p1")
    fault = refused.value
    assert getattr(fault, "status", None) == 403
    assert str(fault) == "Policy doesn't allow os_compute_api:x to be performed."


# --- routing -----------------------------------------------------------------------------

SID = "9b0c8d2e-1111-4222-8333-444455556666"


@pytest.mark.parametrize(
    ("method", "path", "resource", "project"),
    [
        ("GET", "/servers", Resource.SERVER_LIST, None),
        ("GET", "/servers/detail", Resource.SERVER_DETAIL, None),
        ("POST", "/servers", Resource.SERVER_CREATE, None),
        ("GET", f"/servers/{SID}", Resource.SERVER_SHOW, None),
        ("PUT", "/servers/detail", Resource.SERVER_UPDATE, None),
        ("DELETE", f"/servers/{SID}", Resource.SERVER_DELETE, None),
        ("POST", f"/servers/{SID}/action", Resource.SERVER_ACTION, None),
        ("POST", f"/0a1b-ff/servers/{SID}/action", Resource.SERVER_ACTION, "0a1b-ff"),
        ("GET", f"/servers/{SID}/os-instance-actions", Resource.INSTANCE_ACTIONS, None),
        ("GET", f"/servers/{SID}/os-instance-actions/req-1", Resource.INSTANCE_ACTION, None),
        ("GET", "/abc/flavors/detail", Resource.FLAVOR_DETAIL, "abc"),
        ("GET", "/flavors/1", Resource.FLAVOR_SHOW, None),
        ("GET", "/limits", Resource.LIMITS, None),
    ],
)
def test_routes(method: str, path: str, resource: Resource, project: str | None) -> None:
    found = match(method, path)
    assert found is not None
    assert found.resource is resource and found.url_project == project


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/servers/{SID}/action"),
        ("PUT", f"/servers/{SID}/action"),
        ("DELETE", f"/servers/{SID}/action"),
        ("POST", f"/servers/{SID}/action/"),
        ("POST", f"/servers/{SID}/Action"),
        ("POST", f"/p1/servers/{SID}/action"),  # 'p1' is not a Nova project-id segment
        ("GET", "/servers/"),
        ("GET", "/nothing"),
        ("POST", "/flavors"),
        ("GET", "/abc"),
    ],
)
def test_router_misses(method: str, path: str) -> None:
    assert match(method, path) is None


# --- model -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vm_state", "task_state", "status"),
    [
        ("active", None, "ACTIVE"),
        ("active", "rebooting", "REBOOT"),
        ("active", "rebooting_hard", "HARD_REBOOT"),
        ("active", "pausing", "ACTIVE"),
        ("stopped", "resize_prep", "RESIZE"),
        ("resized", None, "VERIFY_RESIZE"),
        ("resized", "resize_reverting", "REVERT_RESIZE"),
        ("paused", "migrating", "MIGRATING"),
        ("error", "rebuilding", "REBUILD"),
        ("soft-delete", None, "SOFT_DELETED"),
        ("shelved_offloaded", None, "SHELVED_OFFLOADED"),
        ("nonsense", None, "UNKNOWN"),
    ],
)
def test_status_from_state(vm_state: str, task_state: str | None, status: str) -> None:
    assert status_from_state(vm_state, task_state) == status


# --- webob bodies ------------------------------------------------------------------------


def test_webob_404_follows_accept_like_webob() -> None:
    plain = webob_error("req-1", 404, "The resource could not be found.", "")
    assert plain.content_type == "text/plain"
    assert plain.body == b"404 Not Found\n\nThe resource could not be found.\n\n   "
    html = webob_error("req-1", 404, "The resource could not be found.", "*/*")
    assert html.content_type == "text/html" and isinstance(html.body, bytes)
    assert b"<title>404 Not Found</title>" in html.body
    as_json = webob_error("req-1", 404, "x", "text/html;q=0.5, application/json")
    assert isinstance(as_json.body, bytes)
    assert json.loads(as_json.body) == {
        "message": "x<br /><br />\n\n\n",
        "code": "404 Not Found",
        "title": "Not Found",
    }
    assert "OpenStack-API-Version" not in as_json.headers


# --- recorder ----------------------------------------------------------------------------


def test_recorder_is_a_bounded_ring() -> None:
    recorder = Recorder(2)
    for index in range(3):
        recorder.record("GET", f"/{index}", ((b"X-A", b"1"),), b"", f"req-{index}")
    assert [r.path for r in recorder.records()] == ["/1", "/2"]
    recorder.clear()
    assert len(recorder) == 0


def test_recorded_bodies_round_trip_as_text_or_base64() -> None:
    recorder = Recorder(5)
    text = recorder.record("POST", "/a?x=1", ((b"Content-Type", b"a"),), b'{"pause": null}', "r")
    binary = recorder.record("POST", "/b", (), b"\xff\x00", "r")
    assert text.header("content-type") == "a"
    assert text.to_json()["body_encoding"] == "utf-8"
    assert binary.to_json()["body_encoding"] == "base64"
    for record in (text, binary):
        assert RecordedRequest.decode_body(record.to_json()) == record.body

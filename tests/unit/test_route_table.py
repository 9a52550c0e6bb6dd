"""Nova's router as a table: which methods a path is routed for (compared exhaustively
with the installed Nova's mapper in tests/property/test_route_oracle.py)."""

from __future__ import annotations

import pytest

from gateway.nova.route_table import ROUTES, served_methods

SID = "9b0c8d2e-1111-4222-8333-444455556666"


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/servers", {"GET", "POST"}),
        ("/servers/detail", {"GET", "PUT", "DELETE"}),  # also /servers/{id}, as at Nova
        (f"/servers/{SID}", {"GET", "PUT", "DELETE"}),
        (f"/servers/{SID}/action", {"POST"}),
        (f"/servers/{SID}/tags/web", {"GET", "PUT", "DELETE"}),
        ("/flavors/1/os-extra_specs/hw:cpu_policy", {"GET", "PUT", "DELETE"}),
        (f"/0abc-12/servers/{SID}/action", {"POST"}),  # a project id: hex digits, dashes
        ("/0abc/", {"GET"}),
        (f"/servers/{SID}.json", {"GET", "PUT", "DELETE"}),  # no format suffix is stripped
    ],
)
def test_routed_paths(path: str, methods: set[str]) -> None:
    assert served_methods(path) == methods


@pytest.mark.parametrize(
    "path",
    [
        "/servers/",  # trailing slash
        f"/servers/{SID}/action/",
        f"/servers/{SID}/Action",
        f"/servers/{SID}/actions",
        f"/servers//{SID}",  # empty segment: a variable is never empty
        f"/P1/servers/{SID}/action",  # not a project id Nova's mapper takes
        f"/p1/servers/{SID}/action",
        "/0abc",  # a project id alone
        "/nothing",
        "/servers/a/b/c/d/e/f/g/h/i/j",
    ],
)
def test_paths_routed_nowhere(path: str) -> None:
    assert served_methods(path) == frozenset()


def test_head_and_options_are_never_routed() -> None:
    """Nova's router routes neither (a HEAD is 404 there, OPTIONS too, before CORS)."""
    assert all("HEAD" not in methods and "OPTIONS" not in methods for _, methods in ROUTES)

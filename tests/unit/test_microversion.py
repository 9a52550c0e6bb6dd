"""Microversion negotiation against the cases nova-actions.md §A.1 verified on Nova."""

from __future__ import annotations

import pytest

from gateway.nova.faults import Fault
from gateway.nova.microversion import negotiate, response_headers
from gateway.nova.types import Version

LOW, HIGH = Version(2, 1), Version(2, 104)


def decide(*headers: tuple[str, str]) -> Version:
    return negotiate(list(headers), LOW, HIGH)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), Version(2, 1)),
        ((("OpenStack-API-Version", "compute 2.40"),), Version(2, 40)),
        ((("OpenStack-API-Version", "COMPUTE 2.40"),), Version(2, 40)),
        ((("openstack-api-version", "compute 2.40"),), Version(2, 40)),
        ((("OpenStack-API-Version", "compute 2.3, compute 2.60"),), Version(2, 60)),
        (
            (("OpenStack-API-Version", "compute 2.3"), ("OpenStack-API-Version", "compute 2.9")),
            Version(2, 9),
        ),
        ((("OpenStack-API-Version", "volume 3.1, compute 2.5, image 2.0"),), Version(2, 5)),
        ((("OpenStack-API-Version", "compute"),), Version(2, 1)),
        (
            (("OpenStack-API-Version", "volume 3.1"), ("X-OpenStack-Nova-API-Version", "2.40")),
            Version(2, 40),
        ),
        ((("X-OpenStack-Nova-API-Version", "2.30"),), Version(2, 30)),
        ((("X-OpenStack-Nova-API-Version", "2.3, 2.31 "),), Version(2, 31)),
        (
            (("OpenStack-API-Version", "compute 2.50"), ("X-OpenStack-Nova-API-Version", "2.2")),
            Version(2, 50),
        ),
        ((("OpenStack-API-Version", "compute latest"),), HIGH),
        ((("X-OpenStack-Nova-API-Version", "latest"),), HIGH),
        ((("OpenStack-API-Version", "compute 2.104"),), HIGH),
    ],
)
def test_accepted(headers: tuple[tuple[str, str], ...], expected: Version) -> None:
    assert decide(*headers) == expected


@pytest.mark.parametrize(
    "value", ["2.01", "abc", "LATEST", "2", "2.1.1", "02.1", " 2.1x", "2.-1", "2.1 extra"]
)
def test_malformed_is_400_without_version_headers(value: str) -> None:
    with pytest.raises(Fault) as caught:
        decide(("OpenStack-API-Version", f"compute {value}"))
    assert caught.value.status == 400
    assert caught.value.message == (
        f"API Version String {value.strip()} is of invalid format. "
        "Must be of format MajorNum.MinorNum."
    )
    assert caught.value.version_headers is False
    assert caught.value.name == "badRequest"


def test_empty_legacy_value_is_400() -> None:
    with pytest.raises(Fault) as caught:
        decide(("X-OpenStack-Nova-API-Version", ""))
    assert caught.value.status == 400


@pytest.mark.parametrize("value", ["2.0", "2.105", "3.0", "1.1"])
def test_out_of_range_is_406_and_echoes_the_version(value: str) -> None:
    with pytest.raises(Fault) as caught:
        decide(("OpenStack-API-Version", f"compute {value}"))
    fault = caught.value
    assert fault.status == 406 and fault.name == "computeFault"
    assert fault.message == (
        f"Version {value} is not supported by the API. Minimum is 2.1 and maximum is 2.104."
    )
    assert fault.headers["OpenStack-API-Version"] == f"compute {value}"
    assert fault.headers["X-OpenStack-Nova-API-Version"] == value
    # ... and its answer carries them with Vary, as any answer naming a version.
    assert str(fault.version) == value


def test_range_comes_from_the_caller() -> None:
    assert negotiate([("OpenStack-API-Version", "compute latest")], LOW, Version(2, 95)) == (
        Version(2, 95)
    )
    with pytest.raises(Fault):
        negotiate([("OpenStack-API-Version", "compute 2.96")], LOW, Version(2, 95))


def test_response_headers() -> None:
    assert response_headers(Version(2, 73)) == {
        "OpenStack-API-Version": "compute 2.73",
        "X-OpenStack-Nova-API-Version": "2.73",
    }


def test_versions_order_numerically() -> None:
    assert Version(2, 9) < Version(2, 10) < Version(2, 100)

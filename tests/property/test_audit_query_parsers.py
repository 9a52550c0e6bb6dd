"""Fuzzing what `audit query` reads from an auditor and from a trail: time expressions and lines.

Owns the properties: every time the auditor can write reads back as that moment, anything else
is a usage error (never a crash); any line, however damaged, is an unsealed entry and never
stops the read. It must never need a socket.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.audit.ledger import Ledger, read_trail
from gateway.audit.query import QueryError, parse_moment

BOUNDED = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NOW = datetime(2026, 12, 6, 15, 30, 45, 123456, tzinfo=UTC)
KEY = b"a-key-for-the-query-fuzzer-0123456789abcdef"

moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@BOUNDED
@given(moments, offsets)
def test_an_iso_moment_reads_as_itself_in_any_zone(moment: datetime, zone: timezone) -> None:
    local = moment.astimezone(zone)
    assert parse_moment(local.isoformat(), NOW) == moment
    assert parse_moment(local.isoformat().replace("+00:00", "Z"), NOW) == moment


@BOUNDED
@given(moments)
def test_a_moment_without_a_zone_is_utc(moment: datetime) -> None:
    naive = moment.replace(tzinfo=None).isoformat()
    assert parse_moment(naive, NOW) == moment


@BOUNDED
@given(st.integers(min_value=0, max_value=10**5), st.sampled_from("smhd"))
def test_a_duration_is_that_long_before_now(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] * amount
    assert parse_moment(f"{amount}{unit}", NOW) == NOW - timedelta(seconds=seconds)


def test_named_days_start_at_midnight_utc() -> None:
    assert parse_moment("today", NOW) == datetime(2026, 12, 6, tzinfo=UTC)
    assert parse_moment("yesterday", NOW) == datetime(2026, 12, 5, tzinfo=UTC)
    assert parse_moment("now", NOW) == NOW


@BOUNDED
@given(st.text(max_size=40))
def test_any_other_text_is_a_usage_error_not_a_crash(text: str) -> None:
    try:
        moment = parse_moment(text, NOW)
    except QueryError:
        return
    assert moment.tzinfo is not None  # comparable with every record's time


@BOUNDED
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80).filter(lambda text: "\n" not in text and "\r" not in text),
            st.dictionaries(
                st.sampled_from(["event", "request_id", "seq", "chain", "hmac", "time"]),
                st.one_of(st.none(), st.integers(), st.text(max_size=12)),
            ).map(json.dumps),
        ),
        max_size=12,
    )
)
def test_any_damaged_line_is_an_unsealed_entry(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    path = tmp_path_factory.mktemp("lines") / "audit-x-000001.jsonl"
    path.write_text(
        "".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogateescape"
    )
    ledger = Ledger()
    read = 0
    for entry, record in read_trail([path], KEY):
        read += 1
        assert not entry.sealed
        ledger.add(entry, record)
    assert read == sum(1 for line in lines if line.strip())

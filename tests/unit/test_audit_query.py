"""`audit query` as an auditor uses it: filters, the three outputs, rotated and CADF files, and
the seals of what it read; every answer is checked against the requests the test itself sent.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import cli as audit_cli
from tests.support.audit import Answer, audit_overrides, send, simulator, write_key
from tests.support.gateway import base_url, running_gateway

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")


@dataclass(frozen=True)
class Traffic:
    trail: Path
    key_file: Path
    server: str  # p1's server every action below was sent to
    sent: dict[str, Answer]


async def send_traffic(tmp_path: Path, record_format: str) -> Traffic:
    trail = tmp_path / f"trail-{record_format}"
    key_file = write_key(tmp_path)
    overrides = audit_overrides(trail, key_file, file_format=record_format, file_rotate_bytes=2500)
    sent: dict[str, Answer] = {}
    async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
        base = base_url(listeners)
        server = sim.seeded("p1")
        action = f"/v2.1/servers/{server}/action"
        sent["pause"] = await send(base, "POST", action, body={"pause": None})
        sent["unpause"] = await send(base, "POST", action, body={"unpause": None})
        sent["reader_lock"] = await send(
            base, "POST", action, body={"lock": None}, token="carol:p1:reader"
        )
        sent["other_project"] = await send(
            base, "POST", action, body={"pause": None}, token="eve:p2"
        )
        sent["list"] = await send(base, "GET", "/v2.1/servers")
        own = f"/v2.1/servers/{sim.seeded('p2')}/action"
        sent["p2_pause"] = await send(base, "POST", own, body={"pause": None}, token="eve:p2")
    assert {name: answer.status for name, answer in sent.items()} == {
        "pause": 202, "unpause": 202, "reader_lock": 403, "other_project": 404, "list": 200,
        "p2_pause": 202,
    }  # fmt: skip
    assert len(list(trail.glob("*.jsonl"))) > 1, "the trail should have rotated"
    return Traffic(trail, key_file, server, sent)


@pytest.fixture(params=["json", "cadf"])
async def traffic(request: pytest.FixtureRequest, tmp_path: Path) -> Traffic:
    return await send_traffic(tmp_path, request.param)


def query(traffic: Traffic, *args: str, key: bool = True) -> tuple[int, str]:
    out = io.StringIO()
    key_args = ["--key-file", str(traffic.key_file)] if key else []
    code = audit_cli.main(["query", *key_args, *args, str(traffic.trail)], out=out)
    return code, out.getvalue()


def jsonl(traffic: Traffic, *args: str) -> list[dict[str, Any]]:
    code, out = query(traffic, "--format", "jsonl", *args)
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


def global_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["global_request_id"] for row in rows]


def sent_ids(traffic: Traffic, *names: str) -> list[str]:
    return [traffic.sent[name].global_id for name in names]


async def test_every_denial_for_a_project(traffic: Traffic) -> None:
    rows = jsonl(traffic, "--decision", "deny", "--project", "p1")
    assert global_ids(rows) == sent_ids(traffic, "reader_lock")
    [row] = rows
    assert (row["user_id"], row["status"], row["rule"]) == (
        "carol", 403, "os_compute_api:os-lock-server:lock",
    )  # fmt: skip
    assert row["forwarded"] is False and row["verified"] == "ok"
    assert global_ids(jsonl(traffic, "--decision", "deny")) == sent_ids(
        traffic, "reader_lock", "other_project"
    )


async def test_every_action_on_a_server_with_its_outcome(traffic: Traffic) -> None:
    rows = jsonl(traffic, "--server", traffic.server, "--actions-only")
    assert global_ids(rows) == sent_ids(traffic, "pause", "unpause", "reader_lock", "other_project")
    assert [row["status"] for row in rows] == [202, 202, 403, 404]
    assert [row["write_ahead"] for row in rows] == [True, True, False, False]
    assert all(row["nova_request_id"] for row in rows[:2])
    assert [row["unfinished"] for row in rows] == [False] * 4
    prefix = traffic.server[:8]  # the table shows 8 characters: enough to ask with
    assert global_ids(jsonl(traffic, "--server", prefix, "--action", "unpause")) == sent_ids(
        traffic, "unpause"
    )


async def test_status_request_id_user_and_time_filters(traffic: Traffic) -> None:
    assert global_ids(jsonl(traffic, "--status", "4xx")) == sent_ids(
        traffic, "reader_lock", "other_project"
    )
    assert global_ids(jsonl(traffic, "--status", "200")) == sent_ids(traffic, "list")
    pause = traffic.sent["pause"].global_id
    [row] = jsonl(traffic, "--request-id", pause)
    nova_id = row["nova_request_id"]
    assert global_ids(jsonl(traffic, "--request-id", nova_id)) == [pause]
    assert global_ids(jsonl(traffic, "--request-id", row["request_id"][:12])) == [pause]
    assert global_ids(jsonl(traffic, "--user", "eve")) == sent_ids(
        traffic, "other_project", "p2_pause"
    )
    assert len(jsonl(traffic, "--since", "1h")) == len(traffic.sent)
    assert jsonl(traffic, "--until", "yesterday") == []
    assert jsonl(traffic, "--since", "2999-01-01T00:00:00Z") == []


async def test_table_and_csv_say_the_same_and_that_the_seals_verified(traffic: Traffic) -> None:
    code, table = query(traffic, "--project", "p1")
    assert code == 0
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "REQUEST"]
    body = lines[1 : lines.index("")]
    assert len(body) == 4 and all(line.rstrip().endswith("ok") for line in body)
    assert "4 call(s) matched, of 6 read from" in table
    assert "chains: 1 of 1 verified intact (every seal and link)" in table
    code, text = query(traffic, "--project", "p1", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["global_request_id"] for row in rows] == global_ids(
        jsonl(traffic, "--project", "p1")
    )
    assert rows[0]["status"] == "202" and rows[0]["verified"] == "ok"


async def test_a_tampered_trail_marks_its_rows_and_fails(traffic: Traffic) -> None:
    path = next(p for p in sorted(traffic.trail.glob("*.jsonl")) if '"p1"' in p.read_text())
    lines = path.read_text().splitlines()
    index = next(n for n, line in enumerate(lines) if '"p1"' in line)
    lines[index] = lines[index].replace('"p1"', '"p9"', 1)
    path.write_text("".join(line + "\n" for line in lines))
    code, out = query(traffic, "--format", "jsonl")
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and all(row["verified"].startswith("FAIL") for row in rows)
    code, table = query(traffic)
    assert code == 1 and "FAIL " in table and "0 of 1 verified intact" in table
    code, out = query(traffic, "--no-verify", "--format", "jsonl", key=False)
    assert code == 0 and all(
        json.loads(line)["verified"] == "not checked" for line in out.splitlines()
    )


@pytest.mark.parametrize(
    "args",
    [["--status", "abc"], ["--server", "abc"], ["--since", "last tuesday"], ["--decision", "x"]],
)
def test_a_question_it_cannot_read_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    key_file = write_key(tmp_path)
    code = audit_cli.main(["query", "--key-file", str(key_file), *args, str(tmp_path)])
    assert code == 2


def test_no_key_no_answer(tmp_path: Path) -> None:
    assert audit_cli.main(["query", str(tmp_path)]) == 2

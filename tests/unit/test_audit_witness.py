"""The chain-head witness: published where the files are not (a second directory, Redis), never
more than ``witness_every`` records behind the file, and what `audit verify` concludes from it:
a cut tail, a rewritten chain, a forged head, a live chain's bound, a chain whose files are gone.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import cli as audit_cli
from gateway.audit.chain import CLOSED, Chain, line_hash
from gateway.audit.records import Instance, Redactor, timestamp
from gateway.audit.sinks import FileSink, Sealed
from gateway.audit.trail import AuditTrail, build_audit_trail, control_record
from gateway.audit.witness import DirectoryWitness, Head, RedisWitness, WitnessError
from gateway.audit.worker import SinkWorker, WitnessPolicy
from tests.conftest import skip_or_fail
from tests.support.audit import KEY, audit_overrides, write_key
from tests.support.gateway import gateway_conf
from tests.support.waiting import wait_until

REDIS_URL = "redis://127.0.0.1:6379/0"


def record(number: int) -> dict[str, Any]:
    return {"event": "request", "time": timestamp(), "request_id": f"req-{number:06d}"}


def run_verify(key_file: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = audit_cli.main(["verify", "--key-file", str(key_file), *args], out=out)
    return code, out.getvalue()


async def witnessed_trail(
    tmp_path: Path, records: int = 30, **options: Any
) -> tuple[Path, Path, Path]:
    """A configured trail with a witness directory; closed. (trail dir, witness dir, key)."""
    key_file = write_key(tmp_path)
    trail_dir, witness_dir = tmp_path / "trail", tmp_path / "witness"
    overrides = audit_overrides(trail_dir, key_file, witness_directory=str(witness_dir), **options)
    trail = build_audit_trail(gateway_conf(overrides))
    assert trail is not None
    for number in range(records):
        trail.offer(record(number))
    await trail.close()
    return trail_dir, witness_dir, key_file


def test_a_head_verifies_only_with_its_key_and_unchanged() -> None:
    head = Head("audit-h-1/file", 12, "ab" * 32, timestamp(), False, 100)
    sealed = head.sealed(KEY)
    assert Head.parse(sealed, KEY) == head
    with pytest.raises(WitnessError, match="seal"):
        Head.parse(sealed, b"another key, also long enough for hmac-sha256")
    forged = json.loads(sealed) | {"seq": 7}
    with pytest.raises(WitnessError, match="seal"):
        Head.parse(json.dumps(forged, separators=(",", ":")), KEY)
    with pytest.raises(WitnessError, match="not a witness head"):
        Head.parse('{"chain": "x"}', KEY)


async def test_a_closed_chain_is_witnessed_closed(tmp_path: Path) -> None:
    trail_dir, witness_dir, key_file = await witnessed_trail(tmp_path)
    [head_file] = witness_dir.glob("*.head")
    head = Head.parse(head_file.read_text(), KEY)
    lines = [line for p in sorted(trail_dir.glob("*.jsonl")) for line in p.read_text().splitlines()]
    assert head.closed and head.seq == len(lines) == 1 + 30 + 1
    assert head.hash == line_hash(lines[-1])
    code, out = run_verify(key_file, "--witness-dir", str(witness_dir), str(trail_dir))
    assert code == 0, out
    assert f"closed (witnessed at seq {head.seq})" in out


async def test_a_cut_tail_is_named_with_how_many_records_are_gone(tmp_path: Path) -> None:
    trail_dir, witness_dir, key_file = await witnessed_trail(tmp_path)
    [path] = sorted(trail_dir.glob("*.jsonl"))
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in lines[:-3]))
    code, out = run_verify(key_file, str(trail_dir))
    assert code == 0 and "no witness head" in out  # alone, the cut looks like a live chain
    code, out = run_verify(key_file, "--witness-dir", str(witness_dir), str(trail_dir))
    assert code == 1, out
    assert "truncated" in out and "3 record(s) cut from the tail" in out
    assert f"the files end at seq {len(lines) - 3}" in out


async def test_a_rewritten_chain_is_caught_by_the_witnessed_hash(tmp_path: Path) -> None:
    """Whoever holds the key can re-seal a whole chain; the head published elsewhere still
    names the original last record."""
    trail_dir, witness_dir, key_file = await witnessed_trail(tmp_path, records=5)
    [path] = sorted(trail_dir.glob("*.jsonl"))
    documents = [json.loads(line) for line in path.read_text().splitlines()]
    chain = Chain(KEY, documents[0]["chain"])
    rewritten = []
    for document in documents:
        if document.get("request_id") == "req-000002":
            document["request_id"] = "req-999999"
        rewritten.append(chain.seal(document)[1])
    path.write_text("".join(line + "\n" for line in rewritten))
    code, out = run_verify(key_file, str(trail_dir))
    assert code == 0  # the chain alone verifies: it was re-sealed
    code, out = run_verify(key_file, "--witness-dir", str(witness_dir), str(trail_dir))
    assert code == 1 and "altered" in out and "is not the one the witness saw" in out


async def test_a_forged_head_and_a_chain_whose_files_are_gone_are_reported(
    tmp_path: Path,
) -> None:
    trail_dir, witness_dir, key_file = await witnessed_trail(tmp_path, records=3)
    [head_file] = witness_dir.glob("*.head")
    original = head_file.read_text()
    head_file.write_text(original.replace('"closed":true', '"closed":false'))
    code, out = run_verify(key_file, "--witness-dir", str(witness_dir), str(trail_dir))
    assert code == 1 and "FAIL witness" in out and "does not match its seal" in out
    head_file.write_text(original)
    # Verify another chain's files against this witness: the witnessed chain is absent.
    other_trail = tmp_path / "other"
    conf = gateway_conf(audit_overrides(other_trail, key_file))
    trail = build_audit_trail(conf)
    assert trail is not None
    await trail.close()
    code, out = run_verify(key_file, "--witness-dir", str(witness_dir), str(other_trail))
    assert code == 0, out
    head = Head.parse(original, KEY)
    assert f"ABSENT {head.chain}: witnessed up to seq {head.seq}" in out
    assert out.splitlines()[0].endswith("records in 1 file(s), closed")  # never witnessed


class Recorded:
    """The order of writes and publications, seen from the sink and the witness."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def add(self, kind: str, seq: int) -> None:
        with self.lock:
            self.events.append((kind, seq))


class RecordingSink(FileSink):
    recorded: Recorded

    def write(self, batch: Sequence[Sealed]) -> None:
        super().write(batch)
        self.recorded.add("write", int(batch[-1].record["seq"]))


class RecordingWitness(DirectoryWitness):
    recorded: Recorded

    def publish(self, chain: str, sealed_head: str) -> None:
        super().publish(chain, sealed_head)
        self.recorded.add("head", json.loads(sealed_head)["seq"])


async def test_the_writer_never_runs_more_than_every_records_ahead_of_its_witness(
    tmp_path: Path,
) -> None:
    recorded = Recorded()
    sink = RecordingSink(tmp_path / "trail", "audit-w", fsync="never")
    sink.recorded = recorded
    witness = RecordingWitness(tmp_path / "witness")
    witness.recorded = recorded
    every = 7
    worker = SinkWorker(
        sink,
        Chain(KEY, "audit-w/file"),
        "json",
        tick_interval=0.05,
        closing_record=lambda: control_record(CLOSED, Instance.current()),
        witness=WitnessPolicy([witness], KEY, every=every, interval=3600.0),
    )
    trail = AuditTrail([worker], Instance.current(), Redactor())
    trail.start()
    for number in range(100):  # one burst: the writer would batch them all at once
        trail.offer(record(number))
    await trail.close()
    published = 0
    for kind, seq in recorded.events:
        if kind == "head":
            published = seq
        else:
            assert seq - published <= every, recorded.events
    assert recorded.events[-1] == ("head", 1 + 100 + 1)  # the close is witnessed


async def test_a_live_chain_says_how_many_records_a_cut_could_hide(tmp_path: Path) -> None:
    key_file = write_key(tmp_path)
    trail_dir, witness_dir = tmp_path / "trail", tmp_path / "witness"
    overrides = audit_overrides(
        trail_dir,
        key_file,
        witness_directory=str(witness_dir),
        witness_every=50,
        witness_interval=0.05,
    )
    trail = build_audit_trail(gateway_conf(overrides))
    assert trail is not None
    try:
        for number in range(10):
            trail.offer(record(number))

        def witnessed() -> bool:
            heads = list(witness_dir.glob("*.head"))
            return bool(heads) and Head.parse(heads[0].read_text(), KEY).seq == 11

        await wait_until(witnessed, what="the head of 11 records to be published")
        code, out = run_verify(key_file, "--witness-dir", str(witness_dir), str(trail_dir))
        assert code == 0, out
        assert "open: live or stopped without closing; witnessed up to seq 11" in out
        assert "a cut tail hides at most 50 record(s) after seq 11" in out
    finally:
        await trail.close()


async def test_a_failing_witness_stops_the_writer_at_its_bound_until_it_recovers(
    tmp_path: Path,
) -> None:
    key_file = write_key(tmp_path)
    witness_dir = tmp_path / "witness"
    witness_dir.write_text("not a directory")  # publishing fails (root ignores chmod)
    overrides = audit_overrides(
        tmp_path / "trail",
        key_file,
        witness_directory=str(witness_dir),
        witness_every=5,
        witness_interval=3600,
    )
    trail = build_audit_trail(gateway_conf(overrides))
    assert trail is not None
    for number in range(20):
        trail.offer(record(number))
    await wait_until(lambda: not trail.healthy, what="the witness failure")
    assert trail.workers[0].written <= 5  # the opening record and at most 4 more
    witness_dir.unlink()
    await wait_until(lambda: trail.healthy and trail.depth() == 0, what="recovery")
    await trail.close()
    code, out = run_verify(key_file, "--witness-dir", str(witness_dir), str(tmp_path / "trail"))
    assert code == 0 and "closed (witnessed at seq 22)" in out


@pytest.fixture
def redis_witness() -> Iterator[RedisWitness]:
    witness = RedisWitness(REDIS_URL, f"nova-gateway-test:{uuid.uuid4().hex}:witness:")
    try:
        witness._client.ping()
    except Exception as exc:
        skip_or_fail(f"Redis not reachable at {REDIS_URL}: {exc}")
    try:
        yield witness
    finally:
        for key in witness._client.scan_iter(match=witness.prefix + "*"):
            witness._client.delete(key)
        witness.close()


async def test_heads_in_redis_tell_verify_the_same(
    tmp_path: Path, redis_witness: RedisWitness
) -> None:
    key_file = write_key(tmp_path)
    trail_dir = tmp_path / "trail"
    overrides = audit_overrides(
        trail_dir,
        key_file,
        witness_redis_url=REDIS_URL,
        witness_key_prefix=redis_witness.prefix,
    )
    trail = build_audit_trail(gateway_conf(overrides))
    assert trail is not None
    for number in range(4):
        trail.offer(record(number))
    await trail.close()
    [(where, text)] = list(redis_witness.heads())
    head = Head.parse(text, KEY)
    assert where.startswith(f"redis:{redis_witness.prefix}") and head.closed and head.seq == 6
    args = ["--witness-redis", REDIS_URL, "--witness-prefix", redis_witness.prefix]
    code, out = run_verify(key_file, *args, str(trail_dir))
    assert code == 0 and "closed (witnessed at seq 6)" in out
    [path] = trail_dir.glob("*.jsonl")
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))
    code, out = run_verify(key_file, *args, str(trail_dir))
    assert code == 1 and "1 record(s) cut from the tail" in out


def test_the_witness_may_not_live_with_the_files(tmp_path: Path) -> None:
    from gateway.config import ConfigError

    trail = tmp_path / "trail"
    with pytest.raises(ConfigError, match="witness_directory"):
        gateway_conf(audit_overrides(trail, write_key(tmp_path), witness_directory=str(trail)))

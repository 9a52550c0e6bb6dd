"""The sealed chain: `audit verify` passes untouched trails across rotation and names the
first altered, deleted, inserted or reordered record of a tampered one."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import cli as audit_cli
from gateway.audit.chain import Chain, line_hash, line_of, read_files, verify
from gateway.audit.records import SCHEMA, timestamp
from gateway.audit.trail import AuditTrail, build_audit_trail
from tests.support.audit import KEY, audit_overrides, write_key
from tests.support.gateway import gateway_conf

RECORDS = 60


def request_record(number: int) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "event": "request",
        "time": timestamp(),
        "request_id": f"req-{number:08d}",
        "decision": {"outcome": "allow", "status": 202, "verdicts": []},
        "latency_us": {"decided": number, "total": number * 2},
    }


async def write_trail(directory: Path, key_file: Path, records: int = RECORDS) -> list[Path]:
    """A real trail (writer thread, file sink) rotated every ~2 KB; its files in order."""
    conf = gateway_conf(audit_overrides(directory, key_file, file_rotate_bytes=2048))
    trail = build_audit_trail(conf)
    assert isinstance(trail, AuditTrail)
    for number in range(records):
        trail.offer(request_record(number))
    await trail.close()
    return sorted(directory.glob("*.jsonl"))


@pytest.fixture
async def trail(tmp_path: Path) -> tuple[list[Path], Path]:
    key_file = write_key(tmp_path)
    files = await write_trail(tmp_path / "trail", key_file)
    return files, key_file


def run_verify(key_file: Path, *paths: Path | str, partial: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["verify", "--key-file", str(key_file), *(["--partial"] if partial else [])]
    code = audit_cli.main([*argv, *map(str, paths)], out=out)
    return code, out.getvalue()


def lines_of(files: list[Path]) -> list[tuple[Path, list[str]]]:
    return [(path, path.read_text().splitlines()) for path in files]


def rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def locate(files: list[Path], seq: int) -> tuple[Path, int]:
    """The file and 0-based line index of the record with this seq."""
    for path, lines in lines_of(files):
        for index, line in enumerate(lines):
            if json.loads(line)["seq"] == seq:
                return path, index
    raise AssertionError(f"no seq {seq}")


def test_untouched_trail_verifies_across_rotation(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    assert len(files) >= 3, "the trail should have rotated"
    code, out = run_verify(key_file, *files)
    assert code == 0, out
    # chain_opened + the records + chain_closed, in one chain over every file.
    assert f"seq 1..{RECORDS + 2}, {RECORDS + 2} records in {len(files)} file(s), closed" in out
    first_of_second = json.loads(files[1].read_text().splitlines()[0])
    last_of_first = files[0].read_text().splitlines()[-1]
    assert first_of_second["prev"] == line_hash(last_of_first)  # files link up
    assert run_verify(key_file, files[0].parent)[0] == 0  # a directory means its files


def test_altered_record_is_named(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    path, index = locate(files, 20)
    lines = path.read_text().splitlines()
    record = json.loads(lines[index])
    record["decision"]["outcome"] = "deny"
    lines[index] = line_of(record)  # well-formed, old seal
    rewrite(path, lines)
    code, out = run_verify(key_file, *files)
    assert code == 1
    assert f"{path}:{index + 1}: altered: record seq 20 does not match its seal" in out


def test_a_byte_outside_the_parsed_value_is_tampering(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    path, index = locate(files, 7)
    lines = path.read_text().splitlines()
    lines[index] = lines[index].replace('"event":', '"event": ')  # same JSON value
    rewrite(path, lines)
    code, out = run_verify(key_file, *files)
    assert code == 1 and f"{path}:{index + 1}: altered" in out


def test_deleted_record_is_named(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    path, index = locate(files, 30)
    lines = path.read_text().splitlines()
    del lines[index]
    rewrite(path, lines)
    code, out = run_verify(key_file, *files)
    assert code == 1
    assert "deleted: seq 30 missing before seq 31" in out


def test_deleted_file_in_the_middle_is_named(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    first_missing = json.loads(files[1].read_text().splitlines()[0])["seq"]
    next_seq = json.loads(files[2].read_text().splitlines()[0])["seq"]
    code, out = run_verify(key_file, files[0], *files[2:])
    assert code == 1
    assert f"{files[2]}:1: deleted: seq {first_missing}..{next_seq - 1} missing" in out


def test_forged_insertion_is_named(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    path, index = locate(files, 12)
    lines = path.read_text().splitlines()
    forged = json.loads(lines[index])
    forged["request_id"] = "req-forged"  # a plausible record without the key
    lines.insert(index, line_of(forged))
    rewrite(path, lines)
    code, out = run_verify(key_file, *files)
    assert code == 1
    assert f"{path}:{index + 1}: inserted: record seq 12 does not match its seal" in out


def test_replayed_copy_is_named_as_inserted(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    path, index = locate(files, 5)
    copy = path.read_text().splitlines()[index]
    later, later_index = locate(files, 40)
    lines = later.read_text().splitlines()
    lines.insert(later_index, copy)
    rewrite(later, lines)
    code, out = run_verify(key_file, *files)
    assert code == 1
    assert f"{later}:{later_index + 1}: inserted: a second copy of record seq 5" in out


def test_reordered_records_are_named(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    path, index = locate(files, 25)
    lines = path.read_text().splitlines()
    if index + 1 >= len(lines):  # keep the swap inside one file
        path, index = locate(files, 24)
        lines = path.read_text().splitlines()
    seq = json.loads(lines[index])["seq"]
    lines[index], lines[index + 1] = lines[index + 1], lines[index]
    rewrite(path, lines)
    code, out = run_verify(key_file, *files)
    assert code == 1
    assert f"{path}:{index + 1}: reordered: record seq {seq + 1} comes before seq {seq}" in out


def test_files_given_out_of_order_are_reordered(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    code, out = run_verify(key_file, files[1], files[0], *files[2:])
    assert code == 1 and "missing-start" in out  # the chain does not start at seq 1
    code, out = run_verify(key_file, files[1], files[0], *files[2:], partial=True)
    assert code == 1 and "reordered" in out


def test_missing_start_fails_unless_partial(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    code, out = run_verify(key_file, *files[1:])
    assert code == 1 and "missing-start" in out
    code, out = run_verify(key_file, *files[1:], partial=True)
    assert code == 0 and "closed" in out


def test_cut_tail_verifies_but_shows_the_chain_open(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    last = files[-1]
    rewrite(last, last.read_text().splitlines()[:-2])
    code, out = run_verify(key_file, *files)
    assert code == 0 and "open (no witness head: still running, or its tail was cut)" in out


def test_wrong_key_fails_at_the_first_record(
    trail: tuple[list[Path], Path], tmp_path: Path
) -> None:
    files, _ = trail
    other = tmp_path / "other.key"
    other.write_bytes(b"x" * 40)
    code, out = run_verify(other, *files)
    assert code == 1 and f"{files[0]}:1: altered" in out


def test_truncated_last_line_is_named(trail: tuple[list[Path], Path]) -> None:
    files, key_file = trail
    text = files[-1].read_text()
    files[-1].write_text(text[: len(text) - 40])
    code, out = run_verify(key_file, *files)
    assert code == 1 and "altered" in out


async def test_each_process_chain_verifies_on_its_own(tmp_path: Path) -> None:
    key_file = write_key(tmp_path)
    first = await write_trail(tmp_path / "trail", key_file, records=10)
    second = await write_trail(tmp_path / "trail", key_file, records=5)
    assert set(first) < set(second)  # same directory, two file sets
    code, out = run_verify(key_file, tmp_path / "trail")
    assert code == 0, out
    assert out.count("OK   ") == 2
    # Tampering with one chain fails that chain only.
    victim = sorted(set(second) - set(first))[0]
    lines = victim.read_text().splitlines()
    del lines[1]
    rewrite(victim, lines)
    code, out = run_verify(key_file, tmp_path / "trail")
    assert code == 1 and out.count("OK   ") == 1 and out.count("FAIL ") == 1


def test_chain_seal_is_hmac_sha256_over_canonical_json() -> None:
    import hashlib
    import hmac

    chain = Chain(KEY, "c")
    sealed, line = chain.seal({"event": "x", "n": 1})
    unsealed = {k: v for k, v in sealed.items() if k != "hmac"}
    body = json.dumps(unsealed, sort_keys=True, separators=(",", ":")).encode()
    assert sealed["hmac"] == hmac.new(KEY, body, hashlib.sha256).hexdigest()
    # The line is that same JSON with the seal appended as its last member.
    assert line == body.decode()[:-1] + f',"hmac":"{sealed["hmac"]}"}}'
    assert json.loads(line) == sealed
    assert (sealed["seq"], sealed["prev"]) == (1, "0" * 64)
    second, _ = chain.seal({"event": "y"})
    assert second["prev"] == hashlib.sha256(line.encode()).hexdigest()


def test_verify_needs_a_key(tmp_path: Path) -> None:
    out = io.StringIO()
    assert audit_cli.main(["verify", str(tmp_path)], out=out) == 2
    short = tmp_path / "short.key"
    short.write_bytes(b"too short")
    assert audit_cli.main(["verify", "--key-file", str(short), str(tmp_path)], out=out) == 2


def test_read_files_reports_every_line(tmp_path: Path) -> None:
    chain = Chain(KEY, "c")
    path = tmp_path / "a.jsonl"
    path.write_text("".join(chain.seal({"event": "x", "n": n})[1] + "\n" for n in range(3)))
    shutil.copy(path, tmp_path / "b.jsonl")
    entries = list(read_files([path], KEY))
    assert [e.seq for e in entries] == [1, 2, 3] and all(e.sealed for e in entries)
    assert verify(entries)[0].problem is None

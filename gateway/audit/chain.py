"""The tamper-evident chain: canonical JSON lines with a sequence number, a link and a seal.

Owns sealing records (``seq``, ``prev``, ``hmac``) and verifying sealed lines; it must
never write a file, nor keep the key anywhere but in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gateway.audit.records import gateway_record

log = structlog.get_logger(__name__)

GENESIS = "0" * 64  # the ``prev`` of a chain's first record
MIN_KEY_BYTES = 32
CHAIN_FIELDS = ("chain", "seq", "prev", "hmac")
CLOSED = "chain_closed"

# JSON made canonical: sorted keys, no spaces, ASCII only, so the bytes that are sealed
# are the bytes written and anyone can recompute them. The bytes structlog's
# JSONRenderer(sort_keys=True, separators=(",", ":")) wrote for the first chains: a value
# JSON has no form for is written as its repr(). One encoder, not one per record.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr)


def canonical(record: Mapping[str, Any]) -> str:
    return _ENCODER.encode(record if type(record) is dict else dict(record))


def line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("ascii")).hexdigest()


def mac_of(key: bytes, unsealed_text: str) -> str:
    return hmac.new(key, unsealed_text.encode("ascii"), hashlib.sha256).hexdigest()


def with_seal(unsealed_text: str, mac: str) -> str:
    """The line: the unsealed canonical JSON with ``hmac`` appended as its last member."""
    return f'{unsealed_text[:-1]},"hmac":"{mac}"}}'


def line_of(sealed: Mapping[str, Any]) -> str:
    """The line of a sealed record (e.g. a notification payload), to verify it."""
    unsealed = {key: value for key, value in sealed.items() if key != "hmac"}
    return with_seal(canonical(unsealed), str(sealed.get("hmac")))


class KeyFileError(Exception):
    """The audit key file is missing, unreadable or too short; the message says which."""


def load_key(path: str | os.PathLike[str]) -> bytes:
    """The HMAC key: the file's bytes without surrounding whitespace, at least 32 of them."""
    try:
        raw = Path(path).read_bytes()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise KeyFileError(
            f"cannot read audit key file {os.fspath(path)!r}: {exc.strerror}"
        ) from None
    key = raw.strip()
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"audit key file {os.fspath(path)!r} holds {len(key)} bytes; at least "
            f"{MIN_KEY_BYTES} are needed (e.g. `openssl rand -hex 32 > FILE`)"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Anyone who reads the key can forge records: say so, but an operator may have
        # a group-readable key on purpose (a separate verifier account).
        log.warning("audit key file is readable by others", path=os.fspath(path))
    return key


@dataclass
class Chain:
    """One writer's chain: call ``seal`` once per record, in the order they are written.

    A line is the canonical JSON of the record without ``hmac`` (sorted keys, no spaces,
    ASCII) with ``"hmac":"<hex>"`` appended as its last member, ``hmac`` being
    HMAC-SHA256 of that canonical JSON and ``prev`` the SHA-256 of the line before: the
    sealed bytes are the line's own, rendered once.
    """

    key: bytes
    chain_id: str
    seq: int = 0
    last_hash: str = GENESIS

    def seal(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """The sealed record and its line (no newline); the chain moves on to it."""
        sealed = {key: value for key, value in record.items() if key not in CHAIN_FIELDS}
        sealed.update(chain=self.chain_id, seq=self.seq + 1, prev=self.last_hash)
        unsealed = canonical(sealed)
        sealed["hmac"] = mac_of(self.key, unsealed)
        line = with_seal(unsealed, sealed["hmac"])
        self.seq += 1
        self.last_hash = line_hash(line)
        return sealed, line


# --------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Entry:
    """One line as read back, with what verification needs to know about it."""

    where: Where
    chain: str | None
    seq: int | None
    prev: str | None
    hash: str
    sealed: bool  # canonical, and the HMAC matches
    event: str | None  # the gateway record's (inside a CADF event too)
    request_id: str | None = None  # the gateway's: links a decision, its outcome, executions


@dataclass(frozen=True)
class Problem:
    kind: str  # altered | inserted | deleted | reordered | missing-start
    where: Where
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.detail}"


@dataclass
class ChainReport:
    chain: str
    records: int = 0
    files: list[str] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    closed: bool = False
    problem: Problem | None = None
    last_where: Where | None = None
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> line hash, as verified


def read_entry(where: Where, text: str, key: bytes) -> Entry:
    """Parse and check one line; a line that is not a sealed JSON object is unsealed."""
    line = text.rstrip("\n")
    try:
        document = json.loads(line)
    except ValueError:
        document = None
    return entry_of(where, line, document, key)


def entry_of(where: Where, line: str, document: Any, key: bytes) -> Entry:
    """Check one line already parsed into ``document`` (None if it was not JSON)."""
    if not isinstance(document, dict):
        return Entry(where, None, None, None, _safe_hash(line), False, None)
    seq = document.get("seq")
    claimed = document.get("hmac")
    unsealed = canonical({k: v for k, v in document.items() if k != "hmac"})
    sealed = (
        isinstance(claimed, str)
        and with_seal(unsealed, claimed) == line  # any other byte is tampering
        and hmac.compare_digest(claimed, mac_of(key, unsealed))
    )
    chain = document.get("chain")
    record = gateway_record(document)
    event = record.get("event")
    request_id = record.get("request_id")
    return Entry(
        where,
        chain if isinstance(chain, str) else None,
        seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        document.get("prev") if isinstance(document.get("prev"), str) else None,
        _safe_hash(line),
        sealed,
        str(event) if event is not None else None,
        request_id if isinstance(request_id, str) else None,
    )


def _safe_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8", "surrogateescape")).hexdigest()


def read_files(paths: Iterable[str | os.PathLike[str]], key: bytes) -> Iterator[Entry]:
    for path in paths:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield read_entry(Where(os.fspath(path), number), text, key)


def _group(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    """Entries per chain, in reading order; an unreadable line joins the chain it sits in."""
    chains: dict[str, list[Entry]] = {}
    current_by_file: dict[str, str] = {}
    for entry in entries:
        name = entry.chain if entry.sealed and entry.chain else None
        if name is None:
            # A forged or damaged line: attribute it to the chain around it in its file.
            name = entry.chain or current_by_file.get(entry.where.file) or f"?{entry.where.file}"
        current_by_file[entry.where.file] = name
        chains.setdefault(name, []).append(entry)
    return chains


def _classify_unsealed(entries: list[Entry], index: int, last_hash: str) -> str:
    """Altered in place, or inserted: does the chain carry on as if this line were absent?"""
    following = entries[index + 1] if index + 1 < len(entries) else None
    if following is not None and following.sealed and following.prev == last_hash:
        return "inserted"  # the next record links to the one before: this line is extra
    return "altered"


def verify_chain(name: str, entries: list[Entry], *, partial: bool = False) -> ChainReport:
    """Check one chain; the report names the first problem (later ones follow from it)."""
    report = ChainReport(name)
    expected: int | None = None
    last_hash = GENESIS
    seen = report.hashes
    later = {entry.seq for entry in entries if entry.sealed and entry.seq is not None}
    for index, entry in enumerate(entries):
        if entry.where.file not in report.files:
            report.files.append(entry.where.file)
        report.records += 1
        problem: Problem | None = None
        if not entry.sealed or entry.seq is None:
            kind = _classify_unsealed(entries, index, last_hash)
            what = f"record seq {entry.seq}" if entry.seq is not None else "line"
            problem = Problem(kind, entry.where, f"{what} does not match its seal")
        elif expected is None:
            if (entry.seq != 1 or entry.prev != GENESIS) and not partial:
                problem = Problem(
                    "missing-start",
                    entry.where,
                    f"chain starts at seq {entry.seq}: records 1..{entry.seq - 1} are missing "
                    "(deleted, or in files not given; --partial accepts a later start)",
                )
        elif entry.seq == expected and entry.prev != last_hash:
            problem = Problem(
                "altered", entry.where, f"record seq {entry.seq} does not link to the one before"
            )
        elif entry.seq > expected:
            if expected in later:
                problem = Problem(
                    "reordered",
                    entry.where,
                    f"record seq {entry.seq} comes before seq {expected}",
                )
            else:
                missing = (
                    f"seq {expected}"
                    if entry.seq == expected + 1
                    else f"seq {expected}..{entry.seq - 1}"
                )
                problem = Problem(
                    "deleted", entry.where, f"{missing} missing before seq {entry.seq}"
                )
        elif entry.seq < expected:
            if seen.get(entry.seq) == entry.hash:
                problem = Problem(
                    "inserted", entry.where, f"a second copy of record seq {entry.seq}"
                )
            else:
                problem = Problem(
                    "reordered",
                    entry.where,
                    f"record seq {entry.seq} comes after seq {expected - 1}",
                )
        if problem is not None:
            report.problem = problem
            return report
        assert entry.seq is not None
        if report.first_seq is None:
            report.first_seq = entry.seq
        report.last_seq = entry.seq
        report.last_where = entry.where
        seen[entry.seq] = entry.hash
        expected = entry.seq + 1
        last_hash = entry.hash
        report.closed = entry.event == CLOSED
    return report


def verify(entries: Iterable[Entry], *, partial: bool = False) -> list[ChainReport]:
    return [
        verify_chain(name, chain_entries, partial=partial)
        for name, chain_entries in _group(entries).items()
    ]

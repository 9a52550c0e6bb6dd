"""The witness of each chain's head: published where the audit files are not, read by verify.

Owns the head's sealed form, its publication to a second directory or to Redis, and judging
a verified chain against it; it must never run on the event loop (every call blocks), nor
believe a head whose seal does not verify.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.audit.chain import ChainReport, Problem, canonical, mac_of, with_seal

HEAD_SUFFIX = ".head"
REDIS_TIMEOUT_SECONDS = 2.0


class WitnessError(Exception):
    """A head could not be published or read; the message says where and why."""


@dataclass(frozen=True)
class Head:
    """A chain's head as its writer published it: the last record written, sealed with the key.

    ``every`` is the writer's promise: it never writes more than ``every`` records past
    the head it last published, so a cut tail beyond a published head is bounded.
    """

    chain: str
    seq: int
    hash: str  # SHA-256 of the line with this seq
    time: str
    closed: bool
    every: int

    def sealed(self, key: bytes) -> str:
        unsealed = canonical(
            {
                "chain": self.chain,
                "seq": self.seq,
                "hash": self.hash,
                "time": self.time,
                "closed": self.closed,
                "every": self.every,
            }
        )
        return with_seal(unsealed, mac_of(key, unsealed))

    @classmethod
    def parse(cls, text: str, key: bytes) -> Head:
        """A published head; WitnessError if it is not one, or its seal does not verify."""
        try:
            document = json.loads(text)
            head = cls(
                chain=str(document["chain"]),
                seq=int(document["seq"]),
                hash=str(document["hash"]),
                time=str(document["time"]),
                closed=bool(document["closed"]),
                every=int(document["every"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise WitnessError(f"not a witness head: {exc}") from None
        if head.sealed(key) != text.strip():
            raise WitnessError(f"witness head of {head.chain} does not match its seal")
        return head


class Witness(Protocol):
    """Somewhere a chain's head survives what happens to the audit files."""

    name: str

    def publish(self, chain: str, sealed_head: str) -> None:
        """Replace the chain's head; raise WitnessError on failure."""
        ...

    def heads(self) -> Iterator[tuple[str, str]]:
        """(where, sealed head) of every chain the witness holds."""
        ...

    def close(self) -> None: ...


class DirectoryWitness:
    """One file per chain in a second directory (another disk or mount), replaced atomically."""

    name = "directory"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_of(self, chain: str) -> Path:
        safe = "".join(char if char.isalnum() or char in ".-_" else "." for char in chain)
        return self.directory / f"{safe}{HEAD_SUFFIX}"

    def publish(self, chain: str, sealed_head: str) -> None:
        path = self.path_of(chain)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
            try:
                os.write(fd, (sealed_head + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            # rename is atomic: a reader sees the old head or the new one, never half.
            os.replace(temporary, path)
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise WitnessError(
                f"cannot publish the witness head in {self.directory}: {exc}"
            ) from exc

    def heads(self) -> Iterator[tuple[str, str]]:
        try:
            paths = sorted(self.directory.glob(f"*{HEAD_SUFFIX}"))
        except OSError as exc:
            raise WitnessError(
                f"cannot read the witness directory {self.directory}: {exc}"
            ) from exc
        for path in paths:
            try:
                yield str(path), path.read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise WitnessError(f"cannot read {path}: {exc}") from exc

    def close(self) -> None:
        return None


class RedisWitness:
    """One key per chain in Redis (``<prefix><chain>``), e.g. the rate limiter's Redis."""

    name = "redis"

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.prefix = prefix
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            decode_responses=True,
        )

    def publish(self, chain: str, sealed_head: str) -> None:
        import redis

        try:
            self._client.set(self.prefix + chain, sealed_head)
        except redis.RedisError as exc:
            raise WitnessError(f"cannot publish the witness head to Redis: {exc}") from exc

    def heads(self) -> Iterator[tuple[str, str]]:
        import redis

        try:
            keys = sorted(self._client.scan_iter(match=_glob_escape(self.prefix) + "*", count=500))
            for key in keys:
                value = self._client.get(key)
                if isinstance(value, str):
                    yield f"redis:{key}", value
        except redis.RedisError as exc:
            raise WitnessError(f"cannot read witness heads from Redis: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def read_heads(witnesses: Iterable[Witness], key: bytes) -> tuple[dict[str, Head], list[str]]:
    """The newest sealed head of every chain the witnesses hold, and what was not believed."""
    heads: dict[str, Head] = {}
    rejected: list[str] = []
    for witness in witnesses:
        for where, text in witness.heads():
            try:
                head = Head.parse(text, key)
            except WitnessError as exc:
                rejected.append(f"{where}: {exc}")
                continue
            current = heads.get(head.chain)
            if current is None or head.seq > current.seq:
                heads[head.chain] = head
    return heads, rejected


# --------------------------------------------------------------------------------------
# Judging a verified chain against its witnessed head


@dataclass(frozen=True)
class Judgement:
    problem: Problem | None  # truncated or altered, as seen against the witness
    state: str  # what the witness says about the chain's end, for the report line


def judge(report: ChainReport, head: Head | None) -> Judgement:
    """What the witnessed head says about a chain that verified on its own."""
    if head is None:
        state = (
            "closed"
            if report.closed
            else "open (no witness head: still running, or its tail was cut)"
        )
        return Judgement(None, state)
    last = report.last_seq or 0
    where = report.last_where
    witnessed = f"the witness saw seq {head.seq} at {head.time}"
    if head.seq > last:
        assert where is not None
        missing = head.seq - last
        return Judgement(
            Problem(
                "truncated",
                where,
                f"{witnessed}; the files end at seq {last}: {missing} record(s) cut from the tail",
            ),
            "truncated",
        )
    if report.first_seq is not None and head.seq < report.first_seq:
        return Judgement(None, f"{_closed(report)}; {witnessed}, before the files read")
    if report.hashes.get(head.seq) != head.hash:
        assert where is not None
        return Judgement(
            Problem("altered", where, f"record seq {head.seq} is not the one {witnessed}"),
            "altered",
        )
    if head.closed and last > head.seq:
        assert where is not None
        return Judgement(
            Problem("inserted", where, f"{last - head.seq} record(s) after the witnessed close"),
            "inserted",
        )
    if report.closed or head.closed:
        return Judgement(None, f"closed (witnessed at seq {head.seq})")
    bound = head.seq + head.every - last
    return Judgement(
        None,
        f"open: live or stopped without closing; witnessed up to seq {head.seq} at "
        f"{head.time}, so a cut tail hides at most {bound} record(s) after seq {last}",
    )


def _closed(report: ChainReport) -> str:
    return "closed" if report.closed else "open"


def build_witnesses(directory: str | None, redis_url: str | None, prefix: str) -> list[Witness]:
    """The witnesses [audit] configures: a second directory, Redis, both, or none."""
    witnesses: list[Witness] = []
    if directory:
        witnesses.append(DirectoryWitness(Path(directory).expanduser()))
    if redis_url:
        witnesses.append(RedisWitness(redis_url, prefix))
    return witnesses

"""The server facts a worker decides on: a mirror fed by Nova's notifications, or a short
cache of reads when there is no bus; and when either must give way to a read of Nova.

Owns the coherence rules (README, "Server facts"): what is current enough for a decision,
what an action this worker forwarded does to it (pending), degraded mode; it must never
decide on a request (the gates do) nor let a copy outlive its bound (LRU, TTL, epoch).
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

import cachetools
import structlog

from gateway.notifications.events import InstanceEvent
from gateway.notifications.feed import NotificationFeed
from gateway.nova.catalogue import FactsEffect
from gateway.servers.facts import Grade, Known, ReadReason, ServerFacts
from gateway.servers.lookup import ServerReader

log = structlog.get_logger(__name__)

_SEEN_REQUEST_IDS = 8  # per server: Nova request ids whose notification already came


@dataclass(eq=False)
class Entry:
    """What one worker holds about one server."""

    facts: ServerFacts | None
    locked_by: str | None
    # The feed's epoch when it was learnt (None: not while the feed was connected);
    # without a bus, the monotonic time after which it is no longer used.
    epoch: int | None = None
    expires: float = 0.0
    version: int = 0  # bumped by every notification applied


@dataclass(eq=False)
class Pending:
    """Actions this worker forwarded on one server whose notification has not come yet."""

    # Nova request id -> monotonic time Nova's answer came back.
    answers: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class StoreSettings:
    size: int
    cache_ttl: float  # without a bus
    pending_wait: float  # with a bus
    max_lag: float  # with a bus


class FactsStore:
    """Server facts for decisions: ``known()`` answers from memory when that is coherent
    (mirror) or allowed (cache), and reads Nova otherwise."""

    def __init__(
        self,
        reader: ServerReader,
        settings: StoreSettings,
        feed: NotificationFeed | None = None,
    ) -> None:
        self.reader = reader
        self.settings = settings
        self.feed = feed
        size = settings.size
        self._entries: cachetools.LRUCache[str, Entry] = cachetools.LRUCache(size)
        self._pending: cachetools.LRUCache[str, Pending] = cachetools.LRUCache(size)
        # Nova request ids whose notification came, per server (the answer may come after).
        self._seen: cachetools.LRUCache[str, collections.deque[str]] = cachetools.LRUCache(size)
        if feed is not None:
            feed.subscribe(self.on_event)
        self.hits = 0  # decisions taken without reading the server from Nova
        self.misses = 0  # decisions that read it

    def degraded(self, now: float | None = None) -> bool:
        """With a bus: the feed is down, lagging, or not yet proven by its heartbeat."""
        if self.feed is None:
            return False
        return self.feed.live_epoch(self.settings.max_lag, now) is None

    def peek(self, server_id: str) -> Entry | None:
        """What is held for a server, as it is (for operators' tools and tests)."""
        return self._entries.get(server_id)

    @property
    def held(self) -> int:
        """Servers held now."""
        return len(self._entries)

    # -- decisions ---------------------------------------------------------------------

    async def known(
        self,
        server_id: str,
        *,
        not_before: float,
        locked_by: bool = False,
        read: ReadReason | None = None,
        reads: list[str] | None = None,
    ) -> Known:
        """The facts to decide on. ``read`` forces a read of Nova (with that reason);
        ``locked_by`` asks who locked the server when it is locked; ``reads`` collects the
        reason of every read made; nothing read before ``not_before`` (monotonic)."""
        reasons = reads if reads is not None else []
        if read is None:
            entry, read = await self._usable(server_id)
            if entry is not None:
                self.hits += 1
                holder = entry.locked_by
                if locked_by and entry.facts is not None and entry.facts.locked and not holder:
                    reasons.append(ReadReason.LOCKED_BY.value)
                    holder = await self.reader.locked_by(entry.facts)
                    entry.locked_by = entry.locked_by or holder
                grade = Grade.COHERENT if self.feed is not None else Grade.CACHED
                return Known(entry.facts, holder if _is_locked(entry.facts) else None, grade)
        assert read is not None
        self.misses += 1
        reasons.append(read.value)
        return await self._read(server_id, locked_by=locked_by, not_before=not_before)

    async def _usable(self, server_id: str) -> tuple[Entry, None] | tuple[None, ReadReason]:
        """The entry a decision may use, or why Nova must be read instead."""
        now = time.monotonic()
        entry = self._entries.get(server_id)
        if self.feed is None:
            if entry is not None and entry.expires > now:
                return entry, None
            return None, ReadReason.EXPIRED if entry is not None else ReadReason.MISS
        epoch = self.feed.live_epoch(self.settings.max_lag, now)
        if epoch is None:
            return None, ReadReason.DEGRADED
        if server_id in self._pending and not await self._wait_pending(server_id, now):
            return None, ReadReason.PENDING
        entry = self._entries.get(server_id)  # a notification may have brought it meanwhile
        if entry is None or entry.epoch != epoch:
            return None, ReadReason.MISS
        if self.feed.live_epoch(self.settings.max_lag) != epoch:
            return None, ReadReason.DEGRADED  # the feed went away while we waited
        return entry, None

    async def _wait_pending(self, server_id: str, since: float) -> bool:
        """Wait up to pending_wait for Nova's notifications of what this worker forwarded."""
        deadline = since + self.settings.pending_wait
        while (pending := self._pending.get(server_id)) is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(pending.changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def _read(self, server_id: str, *, locked_by: bool, not_before: float) -> Known:
        feed = self.feed
        epoch = feed.epoch if feed is not None and feed.connected else None
        started = time.monotonic()
        before = self._entries.get(server_id)
        version = before.version if before is not None else None
        facts, holder = await self.reader.read(
            server_id, locked_by=locked_by, not_before=not_before
        )
        if not locked_by and before is not None and _is_locked(before.facts) and _is_locked(facts):
            holder = before.locked_by  # not asked this time: still locked, by the same side
        if feed is None:
            self._cache_read(server_id, facts, holder, started)
        else:
            self._mirror_read(server_id, facts, holder, epoch, started, version)
        return Known(facts, holder, Grade.FRESH)

    def _cache_read(
        self, server_id: str, facts: ServerFacts | None, holder: str | None, started: float
    ) -> None:
        # A server with a task in progress is about to change state by itself (pausing
        # becomes paused): a copy of it would refuse the next valid action.
        ttl = self.settings.cache_ttl
        if ttl > 0 and (facts is None or facts.task_state is None):
            self._entries[server_id] = Entry(facts, holder, expires=started + ttl)
        else:
            self._entries.pop(server_id, None)

    def _mirror_read(
        self,
        server_id: str,
        facts: ServerFacts | None,
        holder: str | None,
        epoch: int | None,
        started: float,
        version: int | None,
    ) -> None:
        pending = self._pending.get(server_id)
        if pending is not None:
            # The read began after those answers came back: it shows what they did.
            pending.answers = {rid: at for rid, at in pending.answers.items() if at > started}
            if not pending.answers:
                self._settle(server_id)
        entry = self._entries.get(server_id)
        if entry is not None and entry.version != version:
            # A notification came in while we read: which of the two is newer cannot be
            # told, and the notification is the one the next notification follows.
            return
        self._entries[server_id] = Entry(facts, holder, epoch, version=(version or 0))

    # -- what happens to a server ------------------------------------------------------

    def forwarded(
        self,
        server_id: str,
        effect: FactsEffect,
        status: int | None,
        nova_request_id: str | None,
        *,
        caller_project: str | None,
    ) -> None:
        """Nova answered an action this worker forwarded (the catalogue row's effect)."""
        if effect is FactsEffect.NONE or (status is not None and 300 <= status < 500):
            return  # nothing the gates read changed (or Nova refused it: nothing did)
        entry = self._entries.get(server_id)
        facts = entry.facts if entry is not None else None
        if status is None or status >= 500:
            self._entries.pop(server_id, None)  # did it run? Nobody knows: read next time
            return
        caller_side = (
            "owner" if facts is not None and caller_project == facts.project_id else "admin"
        )
        if (
            effect is FactsEffect.LOCK
            and facts is not None
            and facts.locked
            and caller_side == "owner"
        ):
            return  # Nova's lock by the owner of a locked server changes nothing
        if self.feed is not None:
            if nova_request_id is None:
                self._entries.pop(server_id, None)
            elif nova_request_id not in self._seen.get(server_id, ()):
                pending = self._pending.get(server_id)
                if pending is None:
                    pending = self._pending[server_id] = Pending()
                pending.answers[nova_request_id] = time.monotonic()
            return
        # Without a bus the effect is applied to the copy where it is known exactly.
        if entry is None or facts is None:
            return
        if effect is FactsEffect.LOCK:
            entry.facts, entry.locked_by = facts.locked_now(), caller_side
        elif effect is FactsEffect.UNLOCK:
            entry.facts, entry.locked_by = facts.unlocked_now(), None
        else:
            self._entries.pop(server_id, None)

    def on_event(self, event: InstanceEvent) -> None:
        """A notification from the feed (on the event loop, in the bus's order)."""
        assert self.feed is not None
        server_id, epoch = event.server_id, self.feed.epoch
        if event.request_id is not None:
            seen = self._seen.get(server_id)
            if seen is None:
                seen = self._seen[server_id] = collections.deque(maxlen=_SEEN_REQUEST_IDS)
            seen.append(event.request_id)
        entry = self._entries.get(server_id)
        if event.gone:
            self._entries.pop(server_id, None)
        else:
            facts = ServerFacts.from_event(event)
            holder = event.lock_holder
            if holder is None and facts.locked and entry is not None and entry.epoch == epoch:
                # instance.update of a locked server does not say who locked it: keep what
                # instance.lock (or the instance-action log) said in this epoch.
                holder = entry.locked_by if entry.facts is not None and entry.facts.locked else None
            version = entry.version + 1 if entry is not None else 1
            self._entries[server_id] = Entry(facts, holder, epoch, version=version)
        pending = self._pending.get(server_id)
        if pending is None:
            return
        if event.gone:
            pending.answers.clear()
        elif event.request_id is not None:
            pending.answers.pop(event.request_id, None)
        if not pending.answers:
            self._settle(server_id)

    def _settle(self, server_id: str) -> None:
        pending = self._pending.pop(server_id, None)
        if pending is not None:
            pending.changed.set()


def _is_locked(facts: ServerFacts | None) -> bool:
    return facts is not None and facts.locked

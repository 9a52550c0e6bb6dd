"""The server-facts store: when a copy may back a decision and when Nova must be read.

With a bus (a NotificationFeed whose state is set as its thread would set it) and without
(the short cache); the reader stands in for Nova and counts its reads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from gateway.notifications.events import InstanceEvent
from gateway.notifications.feed import FeedSettings, NotificationFeed
from gateway.nova.catalogue import FactsEffect
from gateway.servers.facts import Grade, ServerFacts
from gateway.servers.store import FactsStore, StoreSettings
from tests.support.waiting import wait_until

SERVER = "6c2ad1a2-7a3c-4b9d-9a86-8e6d7d2b2f4e"


def facts(**changes: Any) -> ServerFacts:
    base = ServerFacts(
        id=SERVER,
        project_id="p1",
        user_id="u1",
        status="ACTIVE",
        vm_state="active",
        task_state=None,
        launched_at="2026-01-01T00:00:00Z",
        locked=False,
        locked_reason=None,
        flavor="m1.tiny",
        image="img",
    )
    return dataclasses.replace(base, **changes)


def event(
    event_type: str = "instance.update", request_id: str | None = None, **data: Any
) -> InstanceEvent:
    values: dict[str, Any] = {
        "event_type": event_type,
        "server_id": SERVER,
        "project_id": "p1",
        "user_id": "u1",
        "vm_state": "active",
        "task_state": None,
        "power_state": "running",
        "locked": False,
        "locked_reason": None,
        "initiator_user": "alice",
        "initiator_project": "p1",
        "request_id": request_id,
        "global_request_id": None,
        "flavor": "m1.tiny",
        "image": "img",
        "launched_at": "2026-01-01T00:00:00Z",
        "published": None,
        "publisher_id": "nova-compute:h",
    }
    values.update(data)
    return InstanceEvent(**values)


class Nova:
    """What the reader reads: one server's current facts and who locked it."""

    def __init__(self) -> None:
        self.facts: ServerFacts | None = facts()
        self.holder: str | None = None
        self.reads: list[str] = []

    async def read(self, server_id: str, *, locked_by: bool, not_before: float) -> Any:
        self.reads.append("server")
        holder = self.holder if locked_by and self.facts is not None and self.facts.locked else None
        return self.facts, holder

    async def locked_by(self, server: ServerFacts) -> str | None:
        self.reads.append("locked_by")
        return self.holder


def live_feed() -> NotificationFeed:
    feed = NotificationFeed(FeedSettings("rabbit://h:5672/", "nova", ("versioned",), "t", 0.5))
    feed.connected, feed.epoch, feed.last_heartbeat = True, 1, time.monotonic()
    return feed


def store(nova: Nova, *, feed: NotificationFeed | None = None, ttl: float = 2.0) -> FactsStore:
    settings = StoreSettings(size=100, cache_ttl=ttl, pending_wait=0.05, max_lag=2.0)
    return FactsStore(nova, settings, feed)  # type: ignore[arg-type]


async def known(facts_store: FactsStore, **kw: Any) -> Any:
    reads: list[str] = []
    result = await facts_store.known(SERVER, not_before=time.monotonic(), reads=reads, **kw)
    return result, reads


# -- without a bus -----------------------------------------------------------------------


async def test_without_a_bus_a_read_is_reused_until_cache_ttl() -> None:
    nova = Nova()
    cache = store(nova, ttl=60)
    first, reads = await known(cache)
    assert first.grade is Grade.FRESH and reads == ["miss"]
    nova.facts = facts(vm_state="stopped", status="SHUTOFF")
    second, reads = await known(cache)
    assert second.grade is Grade.CACHED and second.facts.vm_state == "active" and reads == []


async def test_without_a_bus_an_expired_copy_is_read_again() -> None:
    nova = Nova()
    cache = store(nova, ttl=0.01)
    await known(cache)
    entry = cache.peek(SERVER)
    assert entry is not None
    await wait_until(lambda: time.monotonic() >= entry.expires, what="the copy's expiry")
    again, reads = await known(cache)
    assert again.grade is Grade.FRESH and reads == ["expired"]


async def test_a_server_with_a_task_in_progress_is_never_kept() -> None:
    nova = Nova()
    nova.facts = facts(task_state="pausing")
    cache = store(nova, ttl=60)
    await known(cache)
    _, reads = await known(cache)
    assert reads == ["miss"]


async def test_a_forced_read_says_why() -> None:
    from gateway.servers.facts import ReadReason

    cache = store(Nova(), ttl=60)
    await known(cache)
    result, reads = await known(cache, read=ReadReason.CONFIRM)
    assert result.grade is Grade.FRESH and reads == ["confirm"]


async def test_without_a_bus_a_forwarded_lock_is_applied_to_the_copy() -> None:
    nova = Nova()
    cache = store(nova, ttl=60)
    await known(cache)
    cache.forwarded(SERVER, FactsEffect.LOCK, 202, "req-1", caller_project="p9")
    locked, reads = await known(cache, locked_by=True)
    assert locked.facts.locked and locked.locked_by == "admin" and reads == []
    cache.forwarded(SERVER, FactsEffect.UNLOCK, 202, "req-2", caller_project="p9")
    unlocked, _ = await known(cache, locked_by=True)
    assert not unlocked.facts.locked and unlocked.locked_by is None


async def test_without_a_bus_a_forwarded_state_change_drops_the_copy() -> None:
    cache = store(Nova(), ttl=60)
    await known(cache)
    cache.forwarded(SERVER, FactsEffect.NONE, 200, "req-1", caller_project="p1")
    assert (await known(cache))[1] == []
    cache.forwarded(SERVER, FactsEffect.STATE, 409, "req-2", caller_project="p1")
    assert (await known(cache))[1] == []  # Nova refused it: nothing changed
    cache.forwarded(SERVER, FactsEffect.STATE, 202, "req-3", caller_project="p1")
    assert (await known(cache))[1] == ["miss"]


async def test_who_locked_is_read_from_the_action_log_when_unknown() -> None:
    nova = Nova()
    nova.facts, nova.holder = facts(locked=True), "admin"
    cache = store(nova, ttl=60)
    first, reads = await known(cache, locked_by=True)
    assert first.locked_by == "admin" and reads == ["miss"]
    assert nova.reads == ["server"]  # one read answered both (the lookup asked for it)


# -- with a bus --------------------------------------------------------------------------


async def test_the_mirror_answers_from_notifications_without_reading() -> None:
    nova = Nova()
    feed = live_feed()
    mirror = store(nova, feed=feed)
    mirror.on_event(event(vm_state="stopped", task_state=None))
    result, reads = await known(mirror)
    assert result.grade is Grade.COHERENT and result.facts.status == "SHUTOFF"
    assert reads == [] and nova.reads == []


async def test_the_mirror_learns_who_locked_from_instance_lock() -> None:
    mirror = store(Nova(), feed=live_feed())
    mirror.on_event(event(locked=True, request_id="req-l"))
    mirror.on_event(
        event("instance.lock", locked=True, request_id="req-l", initiator_project="admin")
    )
    mirror.on_event(event(locked=True, task_state="pausing"))  # an update keeps the holder
    result, reads = await known(mirror, locked_by=True)
    assert result.locked_by == "admin" and reads == []


async def test_a_forwarded_action_is_pending_until_its_notification() -> None:
    nova = Nova()
    mirror = store(nova, feed=live_feed())
    mirror.on_event(event())
    mirror.forwarded(SERVER, FactsEffect.STATE, 202, "req-p", caller_project="p1")
    waiting = asyncio.ensure_future(known(mirror))
    await asyncio.sleep(0)  # one turn of the loop: known() now waits on the pending mark
    assert not waiting.done()
    mirror.on_event(event(vm_state="paused", request_id="req-p"))
    result, reads = await waiting
    assert result.grade is Grade.COHERENT and result.facts.vm_state == "paused" and reads == []


async def test_a_late_notification_gives_way_to_a_read() -> None:
    nova = Nova()
    nova.facts = facts(vm_state="paused", status="PAUSED")
    mirror = store(nova, feed=live_feed())
    mirror.on_event(event())
    mirror.forwarded(SERVER, FactsEffect.STATE, 202, "req-p", caller_project="p1")
    result, reads = await known(mirror)
    assert result.grade is Grade.FRESH and result.facts.vm_state == "paused"
    assert reads == ["pending"]
    again, reads = await known(mirror)  # the read showed what the action did
    assert again.grade is Grade.COHERENT and reads == []


async def test_a_notification_that_came_before_the_answer_is_not_waited_for() -> None:
    mirror = store(Nova(), feed=live_feed())
    mirror.on_event(event(vm_state="paused", request_id="req-p"))
    mirror.forwarded(SERVER, FactsEffect.STATE, 202, "req-p", caller_project="p1")
    _, reads = await known(mirror)
    assert reads == []


async def test_actions_that_change_nothing_are_not_pending() -> None:
    mirror = store(Nova(), feed=live_feed())
    mirror.on_event(event(locked=True))
    mirror.forwarded(SERVER, FactsEffect.NONE, 200, "req-c", caller_project="p1")
    mirror.forwarded(SERVER, FactsEffect.LOCK, 202, "req-l", caller_project="p1")
    mirror.forwarded(SERVER, FactsEffect.STATE, 409, "req-s", caller_project="p1")
    _, reads = await known(mirror)
    assert reads == []


async def test_a_degraded_feed_means_reading_nova() -> None:
    nova = Nova()
    feed = live_feed()
    mirror = store(nova, feed=feed)
    mirror.on_event(event())
    feed.last_heartbeat = time.monotonic() - 10  # lagging past max_lag
    assert mirror.degraded()
    _, reads = await known(mirror)
    assert reads == ["degraded"]
    feed.connected = False
    _, reads = await known(mirror)
    assert reads == ["degraded"]


async def test_facts_from_before_a_reconnect_are_not_trusted() -> None:
    feed = live_feed()
    mirror = store(Nova(), feed=feed)
    mirror.on_event(event())
    feed.epoch = 2  # the feed reconnected: messages may have been lost meanwhile
    _, reads = await known(mirror)
    assert reads == ["miss"]
    _, reads = await known(mirror)
    assert reads == []


async def test_a_deleted_server_is_forgotten() -> None:
    nova = Nova()
    mirror = store(nova, feed=live_feed())
    mirror.on_event(event())
    mirror.on_event(event("instance.delete.end"))
    nova.facts = None
    result, reads = await known(mirror)
    assert result.facts is None and reads == ["miss"]


async def test_the_mirror_is_bounded() -> None:
    settings = StoreSettings(size=3, cache_ttl=0, pending_wait=0, max_lag=2.0)
    mirror = FactsStore(Nova(), settings, live_feed())  # type: ignore[arg-type]
    for index in range(10):
        mirror.on_event(event(server_id=f"server-{index}"))
    assert mirror.held == 3


@pytest.mark.parametrize("status", [None, 500, 504])
async def test_an_unknown_outcome_drops_the_copy(status: int | None) -> None:
    mirror = store(Nova(), feed=live_feed())
    mirror.on_event(event())
    mirror.forwarded(SERVER, FactsEffect.STATE, status, None, caller_project="p1")
    _, reads = await known(mirror)
    assert reads == ["miss"]

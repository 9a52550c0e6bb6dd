"""What the gateway knows about a server: read from the upstream, cached briefly.

Owns the server lookup (with the gateway's own identity), its cache and who locked a
server; it must never decide on a request (the gates do).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.nova.faults import Fault
from gateway.nova.types import Version

LOOKUP_VERSION = Version(2, 73)  # the first version showing locked_reason
# Path segments Nova's router gives to another resource under GET /servers/{...}.
NOT_SERVER_IDS = frozenset({"detail"})


@dataclass(frozen=True)
class ServerFacts:
    """The fields Nova's gates read (nova-actions.md §A.9)."""

    id: str
    project_id: str
    user_id: str
    status: str
    vm_state: str | None
    task_state: str | None
    launched_at: str | None
    locked: bool
    locked_reason: str | None
    flavor: str | None
    image: str  # "" for a volume-backed server

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> ServerFacts:
        flavor = view.get("flavor") or {}
        image = view.get("image")
        return cls(
            id=str(view["id"]),
            project_id=str(view.get("tenant_id", "")),
            user_id=str(view.get("user_id", "")),
            status=str(view.get("status", "")),
            vm_state=view.get("OS-EXT-STS:vm_state"),
            task_state=view.get("OS-EXT-STS:task_state"),
            launched_at=view.get("OS-SRV-USG:launched_at"),
            locked=bool(view.get("locked", False)),
            locked_reason=view.get("locked_reason"),
            flavor=flavor.get("original_name") or flavor.get("id"),
            image=image.get("id", "") if isinstance(image, dict) else "",
        )

    @property
    def volume_backed(self) -> bool:
        return self.image == ""

    def policy_attributes(self) -> dict[str, Any]:
        """What site rules may read as ``server.<key>``."""
        return {
            "status": self.status,
            "vm_state": self.vm_state,
            "task_state": self.task_state,
            "locked": self.locked,
            "flavor": self.flavor,
            "image": self.image,
        }


TokenSource = Callable[[], Awaitable[str]]


class ServerLookup:
    """Reads ``GET /servers/{id}`` with the gateway's token; caches; coalesces reads."""

    def __init__(
        self,
        session_source: Callable[[], aiohttp.ClientSession],
        api_url: str,
        token: TokenSource,
        ttl: float,
        size: int,
        max_version: Callable[[], Version],
    ) -> None:
        self._session = session_source
        self._api_url = api_url.rstrip("/")
        self._token = token
        self._ttl = ttl
        self._size = size
        self._max_version = max_version
        self._cache: OrderedDict[str, tuple[float, ServerFacts | None]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[ServerFacts | None]] = {}
        self.hits = 0
        self.misses = 0

    def invalidate(self, server_id: str) -> None:
        self._cache.pop(server_id, None)

    async def get(self, server_id: str) -> ServerFacts | None:
        """The server, or None when the upstream has no such server."""
        cached = self._cache.get(server_id)
        if cached is not None and cached[0] > time.monotonic():
            self.hits += 1
            self._cache.move_to_end(server_id)
            return cached[1]
        self.misses += 1
        pending = self._in_flight.get(server_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ServerFacts | None] = asyncio.get_running_loop().create_future()
        self._in_flight[server_id] = future
        try:
            facts = await self._read(server_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._in_flight.pop(server_id, None)
        future.set_result(facts)
        self._remember(server_id, facts)
        return facts

    def _remember(self, server_id: str, facts: ServerFacts | None) -> None:
        # A server with a task in progress is about to change state by itself (pausing
        # becomes paused): a cached reading would refuse the next valid action.
        if self._ttl <= 0 or (facts is not None and facts.task_state is not None):
            return
        self._cache[server_id] = (time.monotonic() + self._ttl, facts)
        self._cache.move_to_end(server_id)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    async def _read(self, server_id: str) -> ServerFacts | None:
        if server_id in NOT_SERVER_IDS:
            # GET /servers/detail is Nova's server list, not a server; Nova's own lookup
            # of ``detail`` (POST /servers/detail/action) finds no instance: its 404.
            return None
        version = min(LOOKUP_VERSION, self._max_version())
        headers = {
            "X-Auth-Token": await self._token(),
            "OpenStack-API-Version": f"compute {version}",
            "Accept": "application/json",
        }
        url = f"{self._api_url}/servers/{server_id}"
        try:
            async with self._session().get(url, headers=headers) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise _lookup_failed(f"the compute API answered {response.status}")
                document = await response.json(content_type=None)
            return ServerFacts.from_view(document["server"])
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _lookup_failed(type(exc).__name__) from None
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _lookup_failed("not a server document") from None

    async def locked_by(self, server: ServerFacts) -> str | None:
        """'owner' or 'admin' from the instance-action log: the last lock's project."""
        if not server.locked:
            return None
        url = f"{self._api_url}/servers/{server.id}/os-instance-actions"
        headers = {"X-Auth-Token": await self._token(), "Accept": "application/json"}
        try:
            async with self._session().get(url, headers=headers) as response:
                if response.status != 200:
                    return None
                document = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError):
            return None
        locks = [
            entry
            for entry in document.get("instanceActions", [])
            if entry.get("action") == "lock"
        ]
        if not locks:
            return None
        latest = max(locks, key=lambda entry: str(entry.get("start_time", "")))
        return "owner" if latest.get("project_id") == server.project_id else "admin"


def _lookup_failed(detail: str) -> Fault:
    return Fault(
        503,
        f"The gateway could not read the server to decide ({detail}); retry later.",
        reason="server_lookup_failed",
    )


class LockRecords:
    """Who locked each server through this gateway: Nova's API does not say."""

    def __init__(self, size: int = 100_000) -> None:
        self._records: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def get(self, server_id: str) -> str | None:
        return self._records.get(server_id)

    def locked(self, server_id: str, locked_by: str) -> None:
        self._records[server_id] = locked_by
        self._records.move_to_end(server_id)
        while len(self._records) > self._size:
            self._records.popitem(last=False)

    def unlocked(self, server_id: str) -> None:
        self._records.pop(server_id, None)

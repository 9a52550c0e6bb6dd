"""Reading a server from Nova: ``GET /servers/{id}`` and, when asked, who locked it.

Owns the read with the gateway's own identity and the coalescing of concurrent reads; it
must never keep what it read (the store does) nor decide on a request (the gates do).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import structlog

from gateway.nova.faults import Fault
from gateway.nova.types import Version
from gateway.servers.facts import ServerFacts
from gateway.tls.contexts import verification_failure

log = structlog.get_logger(__name__)

__all__ = ["LOOKUP_VERSION", "NOT_SERVER_IDS", "ServerFacts", "ServerReader", "TokenSource"]

LOOKUP_VERSION = Version(2, 73)  # the first version showing locked_reason
# Path segments Nova's router gives to another resource under GET /servers/{...}.
NOT_SERVER_IDS = frozenset({"detail"})

TokenSource = Callable[[], Awaitable[str]]
Read = tuple[ServerFacts | None, str | None]


class ServerReader:
    """Reads servers with the gateway's token; concurrent reads of one server share one."""

    def __init__(
        self,
        session_source: Callable[[], aiohttp.ClientSession],
        api_url: str,
        token: TokenSource,
        max_version: Callable[[], Version],
    ) -> None:
        self._session = session_source
        self._api_url = api_url.rstrip("/")
        self._token = token
        self._max_version = max_version
        # (server id, with locked_by) -> (when the read started, its result)
        self._in_flight: dict[tuple[str, bool], tuple[float, asyncio.Future[Read]]] = {}
        self.reads = 0

    async def read(self, server_id: str, *, locked_by: bool, not_before: float) -> Read:
        """The server (None: Nova has no such server) and, with ``locked_by`` and a locked
        server, who locked it. A read already under way is shared if it started at or
        after ``not_before`` (monotonic), so a caller never gets facts older than that."""
        key = (server_id, locked_by)
        shared = self._in_flight.get(key)
        if shared is not None and shared[0] >= not_before:
            return await asyncio.shield(shared[1])
        future: asyncio.Future[Read] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = (time.monotonic(), future)
        try:
            facts = await self._read(server_id)
            holder = await self.locked_by(facts) if locked_by and facts is not None else None
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            if self._in_flight.get(key, (0.0, None))[1] is future:
                del self._in_flight[key]
        future.set_result((facts, holder))
        return facts, holder

    async def _read(self, server_id: str) -> ServerFacts | None:
        if server_id in NOT_SERVER_IDS:
            # GET /servers/detail is Nova's server list, not a server; Nova's own lookup
            # of ``detail`` (POST /servers/detail/action) finds no instance: its 404.
            return None
        self.reads += 1
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
            tls = verification_failure(exc)
            if tls is not None:
                log.error("tls_handshake_failed", peer=self._api_url, error=tls)
            raise _lookup_failed(type(exc).__name__) from None
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _lookup_failed("not a server document") from None

    async def locked_by(self, server: ServerFacts) -> str | None:
        """'owner' or 'admin' from the instance-action log: the last lock's project."""
        if not server.locked:
            return None
        self.reads += 1
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
            entry for entry in document.get("instanceActions", []) if entry.get("action") == "lock"
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

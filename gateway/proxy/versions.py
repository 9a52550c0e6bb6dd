"""What the upstream supports: its microversion range, read from its version document.

Owns the periodic read of ``GET /v2.1/`` and the readiness it implies; it must never
block a request (requests read the last known range, never wait for a refresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiohttp
import structlog

from gateway.nova.catalogue import MAX_VERSION, MIN_VERSION
from gateway.nova.types import Version
from gateway.tls.contexts import verification_failure

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class VersionRange:
    minimum: Version
    maximum: Version


class UpstreamVersions:
    """The supported range, refreshed in the background; overrides win over the upstream."""

    def __init__(
        self,
        document_url: str,
        refresh_interval: float,
        minimum_override: Version | None = None,
        maximum_override: Version | None = None,
    ) -> None:
        self._url = document_url
        self._interval = refresh_interval
        self._min_override = minimum_override
        self._max_override = maximum_override
        self._range = VersionRange(minimum_override or MIN_VERSION, maximum_override or MAX_VERSION)
        self.last_success: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def range(self) -> VersionRange:
        return self._range

    def age(self) -> float | None:
        """Seconds since the upstream last answered its version document."""
        return None if self.last_success is None else time.monotonic() - self.last_success

    async def refresh(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self._url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status != 200:
                    log.warning("upstream_version_document", status=response.status)
                    return False
                document = await response.json(content_type=None)
            version = document["version"]
            upstream = VersionRange(
                Version.parse(version["min_version"]), Version.parse(version["version"])
            )
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            tls = verification_failure(exc)
            if tls is not None:
                log.error("tls_handshake_failed", peer=self._url, error=tls)
            log.warning("upstream_version_document", error=repr(exc))
            return False
        self._range = VersionRange(
            self._min_override or upstream.minimum, self._max_override or upstream.maximum
        )
        self.last_success = time.monotonic()
        return True

    def start(self, session: aiohttp.ClientSession) -> None:
        self._task = asyncio.create_task(self._loop(session))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self, session: aiohttp.ClientSession) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh(session)

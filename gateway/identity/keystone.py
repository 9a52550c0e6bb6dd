"""Keystone identity: validates X-Auth-Token with Keystone v3, caching and coalescing results.

Owns the gateway's service token and the validated-token cache; it must never let a
request through when Keystone cannot answer, nor keep a raw token as a key or log one.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import structlog

from gateway.identity.cache import ExpiringCache, token_key
from gateway.identity.credentials import Credentials
from gateway.identity.refusals import (
    header_values,
    service_unavailable,
    unauthorized,
    unavailable,
    well_formed,
)
from gateway.nova.faults import Fault
from gateway.tls.contexts import verification_failure

log = structlog.get_logger(__name__)

Clock = Callable[[], float]

# keystoneauth renews a token this long before it expires; shorter-lived tokens
# (lab keystones with [token] expiration=3) are renewed at half their life instead.
SERVICE_TOKEN_MARGIN = 120.0


class Refusal(enum.Enum):
    """What a validation that produced no Credentials means for the caller."""

    INVALID = "token_invalid"  # keystone said 404: unknown, expired or revoked -> 401
    UNAVAILABLE = "identity_unavailable"  # keystone down, slow, 5xx, or refusing us -> 503


Outcome = Credentials | Refusal


@dataclass(frozen=True)
class _ServiceToken:
    token: str
    renew_at: float  # our monotonic clock: keystone's clock may be skewed from ours


def renew_deadline(received_at: float, issued_at: float, expires_at: float) -> float:
    """When to renew a token we received at ``received_at`` (monotonic).

    Only keystone's lifetime (expires - issued, both its clock) is used, never its
    absolute times, so a skewed clock cannot make every request re-authenticate.
    """
    lifetime = expires_at - issued_at
    return received_at + lifetime - min(SERVICE_TOKEN_MARGIN, lifetime / 2)


def parse_time(text: str) -> float:
    """Keystone's ``2026-11-27T12:36:00.000000Z`` as epoch seconds."""
    return datetime.fromisoformat(text).timestamp()


def credentials_from_token(body: Any) -> Credentials:
    """Credentials from a v3 token body; KeyError/TypeError/ValueError if it is malformed."""
    token = body["token"]
    user = token["user"]
    role_names = tuple(str(role["name"]) for role in token.get("roles") or [])
    roles = frozenset(name.lower() for name in role_names)
    project = token.get("project")
    domain = token.get("domain")
    system = token.get("system")
    extra = {"user_name": str(user.get("name", ""))}
    if project:
        extra["project_name"] = str(project.get("name", ""))
    is_admin_project = token.get("is_admin_project", True)
    if not isinstance(is_admin_project, bool):
        raise TypeError("is_admin_project is not a boolean")
    return Credentials(
        user_id=str(user["id"]),
        project_id=str(project["id"]) if project else None,
        roles=roles,
        role_names=role_names,  # X-Roles as keystonemiddleware sends it to Nova
        domain_id=str(domain["id"]) if domain else None,
        # keystonemiddleware sends OpenStack-System-Scope: all for {"system": {"all": true}}.
        system_scope="all" if isinstance(system, dict) and system.get("all") is True else None,
        user_domain_id=str(user["domain"]["id"]),
        project_domain_id=str(project["domain"]["id"]) if project else None,
        expires_at=parse_time(token["expires_at"]),
        # keystonemiddleware's default when keystone has no admin project configured.
        is_admin_project=is_admin_project,
        mode="keystone",
        extra=extra,
    )


class KeystoneAuthenticator:
    """keystonemiddleware's auth_token, reduced to what Nova reads, on one aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        keystone_url: str,
        www_authenticate_uri: str | None = None,
        username: str,
        password: str,
        project_name: str,
        user_domain_id: str = "default",
        project_domain_id: str = "default",
        timeout: float = 5.0,
        cache_time: float = 300.0,
        invalid_cache_time: float = 30.0,
        cache_size: int = 10000,
        tls: ssl.SSLContext | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self._session = session
        # Keystone's own CA and client certificate, per request: the session is the
        # upstream's, whose connector verifies nova-api. True: the system's trust store.
        self._ssl: ssl.SSLContext | bool = tls if tls is not None else True
        self._url = keystone_url.rstrip("/")
        # keystonemiddleware names its www_authenticate_uri as configured, path and all.
        self.www_authenticate = f'Keystone uri="{www_authenticate_uri or keystone_url}"'
        self._auth_body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": username,
                            "domain": {"id": user_domain_id},
                            "password": password,
                        }
                    },
                },
                "scope": {"project": {"name": project_name, "domain": {"id": project_domain_id}}},
            }
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._cache_time = cache_time
        self._invalid_cache_time = invalid_cache_time
        self._valid: ExpiringCache[Credentials] = ExpiringCache(cache_size, clock)
        # Separate from the valid cache, so a flood of garbage tokens cannot evict them.
        self._invalid: ExpiringCache[bool] = ExpiringCache(cache_size, clock)
        # Token cache lookups, read by the metrics (as FactsStore's hits/misses).
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._wall = wall_clock
        self._inflight: dict[bytes, asyncio.Task[Outcome]] = {}
        self._service: _ServiceToken | None = None
        self._service_task: asyncio.Task[_ServiceToken | None] | None = None
        self.keystone_calls = 0  # validations and password logins sent (metrics, tests)

    def __repr__(self) -> str:  # says where, never with what: the auth body holds a password
        return f"KeystoneAuthenticator(url={self._url!r})"

    # -- the Authenticator protocol ---------------------------------------------------

    async def authenticate(self, headers: Sequence[tuple[str, str]]) -> Credentials:
        tokens = header_values(headers, "X-Auth-Token")
        if not tokens or not tokens[0].strip():
            raise self._unauthorized("token_missing")
        if len(tokens) > 1:
            raise self._unauthorized("token_ambiguous")
        token = tokens[0].strip()
        if not well_formed(token):
            raise self._unauthorized("token_invalid")
        key = token_key(token)
        outcome = self._cached(key)
        if outcome is None:
            self.misses += 1
            outcome = await self._coalesced(key, token)
        else:
            self.hits += 1
        if isinstance(outcome, Refusal):
            # A fresh Fault per caller: coalesced waiters must not share one traceback.
            if outcome is Refusal.INVALID:
                raise self._unauthorized(outcome.value)
            raise unavailable()
        return outcome

    async def service_token(self) -> str:
        service = await self._service_token()
        if service is None:
            raise service_unavailable()
        return service.token

    async def close(self) -> None:
        tasks = [*self._inflight.values(), *([self._service_task] if self._service_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._valid.clear()
        self._invalid.clear()
        self._service = None

    # -- cache and coalescing ---------------------------------------------------------

    def _unauthorized(self, reason: str) -> Fault:
        return unauthorized(reason, self.www_authenticate)

    def _cached(self, key: bytes) -> Outcome | None:
        credentials = self._valid.get(key)
        if credentials is not None:
            # The TTL already ends at expiry; this also covers a wall clock set back.
            if credentials.expires_at is None or credentials.expires_at > self._wall():
                return credentials
            self._valid.discard(key)
        if self._invalid.get(key):
            return Refusal.INVALID
        return None

    async def _coalesced(self, key: bytes, token: str) -> Outcome:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._validate(key, token))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._settled, key))
        # shield: a client that disconnects must not cancel the others' validation.
        return await asyncio.shield(task)

    def _settled(self, key: bytes, task: asyncio.Task[Outcome]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved even when every waiter went away

    # -- talking to keystone ------------------------------------------------------------

    async def _validate(self, key: bytes, token: str) -> Outcome:
        service = await self._service_token()
        if service is None:
            return Refusal.UNAVAILABLE
        status, body = await self._check(token, service.token)
        if status == 401:
            # Our own token expired or was revoked early: renew once, as keystonemiddleware.
            self._drop_service_token(service)
            service = await self._service_token()
            if service is None:
                return Refusal.UNAVAILABLE
            status, body = await self._check(token, service.token)
        if status == 200:
            return self._accept(key, body)
        if status == 404:
            self._invalid.put(key, True, self._invalid_cache_time)
            return Refusal.INVALID
        if status in (401, 403):
            log.error(
                "keystone_refused_service_user",
                status=status,
                detail="the gateway's service user cannot validate tokens "
                "(needs role service or admin)",
            )
        elif status:
            log.warning("keystone_validation_failed", status=status)
        return Refusal.UNAVAILABLE

    def _accept(self, key: bytes, body: Any) -> Outcome:
        try:
            credentials = credentials_from_token(body)
        except (KeyError, TypeError, ValueError, AttributeError):
            log.error("keystone_token_body_malformed")
            return Refusal.UNAVAILABLE
        remaining = (credentials.expires_at or 0.0) - self._wall()
        if remaining <= 0:
            self._invalid.put(key, True, self._invalid_cache_time)
            return Refusal.INVALID
        self._valid.put(key, credentials, min(self._cache_time, remaining))
        return credentials

    async def _check(self, token: str, service_token: str) -> tuple[int, Any]:
        """GET /auth/tokens: (status, parsed body of a 200) or (0, None) if unreachable."""
        self.keystone_calls += 1
        try:
            async with self._session.get(
                f"{self._url}/auth/tokens",
                params={"nocatalog": ""},
                headers={"X-Auth-Token": service_token, "X-Subject-Token": token},
                timeout=self._timeout,
                ssl=self._ssl,
                allow_redirects=False,  # never carry tokens to wherever a redirect points
            ) as response:
                if response.status != 200:
                    return response.status, None
                return 200, json.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._unreachable(exc, "validate")
            return 0, None

    def _unreachable(self, exc: BaseException, call: str) -> None:
        # Only the type (and OpenSSL's reason for a failed handshake): aiohttp's
        # exceptions carry request_info, i.e. the headers.
        tls = verification_failure(exc)
        if tls is not None:
            log.error("tls_handshake_failed", peer=self._url, error=tls, call=call)
        log.warning("keystone_unreachable", error=type(exc).__name__, call=call)

    async def _service_token(self) -> _ServiceToken | None:
        current = self._service
        if current is not None and self._clock() < current.renew_at:
            return current
        task = self._service_task
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._issue_service_token())
            self._service_task = task
        return await asyncio.shield(task)

    def _drop_service_token(self, used: _ServiceToken) -> None:
        if self._service is used:
            self._service = None

    async def _issue_service_token(self) -> _ServiceToken | None:
        self.keystone_calls += 1
        sent_at = self._clock()
        try:
            async with self._session.post(
                f"{self._url}/auth/tokens",
                params={"nocatalog": ""},
                json=self._auth_body,
                timeout=self._timeout,
                ssl=self._ssl,
                allow_redirects=False,
            ) as response:
                if response.status != 201:
                    log.error("keystone_service_auth_failed", status=response.status)
                    return None
                token = response.headers.get("X-Subject-Token", "")
                body = json.loads(await response.read())
            service = _ServiceToken(
                token=token,
                renew_at=renew_deadline(
                    sent_at,
                    parse_time(body["token"]["issued_at"]),
                    parse_time(body["token"]["expires_at"]),
                ),
            )
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            self._unreachable(exc, "service_auth")
            return None
        if not token:
            log.error("keystone_service_auth_failed", status=201, detail="no X-Subject-Token")
            return None
        self._service = service
        return service

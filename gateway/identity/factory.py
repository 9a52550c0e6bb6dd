"""Chooses the identity mode from ``[identity]``.

Owns start-up checks of the identity options; it must never let a missing or
contradictory option fall back to a weaker mode.
"""

from __future__ import annotations

import aiohttp
import structlog
from oslo_config import cfg

from gateway.config import ConfigError
from gateway.identity.credentials import Authenticator
from gateway.identity.keystone import KeystoneAuthenticator
from gateway.identity.noauth import NoAuthAuthenticator, parse_token
from gateway.identity.signed_jwt import ClaimNames, JwtAuthenticator, check_algorithms
from gateway.nova.faults import Fault
from gateway.tls.contexts import ClientFiles, context_for_url

log = structlog.get_logger(__name__)


async def build_authenticator(
    conf: cfg.ConfigOpts, session: aiohttp.ClientSession | None = None
) -> Authenticator:
    """The authenticator ``[identity] mode`` names, or ConfigError naming the bad option.

    Async because mode=jwt reads its key files (off the event loop) before it serves;
    ``session`` is required by mode=keystone and owned by the caller.
    """
    group = conf.identity
    mode = group.mode
    if mode == "noauth":
        return _noauth(group)
    if mode == "keystone":
        return _keystone(group, session)
    if mode == "jwt":
        return await _jwt(group)
    raise ConfigError(f"[identity] mode: unknown mode {mode!r}")


def _noauth(group: cfg.ConfigOpts.GroupAttr) -> Authenticator:
    if not group.allow_noauth:
        raise ConfigError(
            "[identity] allow_noauth: must be true for mode=noauth, which believes any "
            "caller's claimed identity; use mode=keystone or mode=jwt in production"
        )
    service = group.noauth_service_token or ""
    try:
        parse_token(service)
    except Fault:
        raise ConfigError(
            "[identity] noauth_service_token: not a <user>:<project>[:<roles>] token"
        ) from None
    # Every start, so nobody runs it unknowingly: noauth is for demos and tests only.
    log.warning(
        "identity_noauth_enabled",
        detail="mode=noauth: callers choose their own identity; never expose this gateway",
    )
    return NoAuthAuthenticator(service)


def _keystone(
    group: cfg.ConfigOpts.GroupAttr, session: aiohttp.ClientSession | None
) -> Authenticator:
    if not group.keystone_url:
        raise ConfigError("[identity] keystone_url: required for mode=keystone")
    if not group.service_username:
        raise ConfigError("[identity] service_username: required for mode=keystone")
    if not group.service_password:
        raise ConfigError("[identity] service_password: required for mode=keystone")
    if not group.service_project_name:
        raise ConfigError("[identity] service_project_name: required for mode=keystone")
    if session is None:
        raise ValueError("mode=keystone needs the shared aiohttp.ClientSession")
    return KeystoneAuthenticator(
        session,
        keystone_url=group.keystone_url,
        www_authenticate_uri=group.www_authenticate_uri or group.keystone_url,
        username=group.service_username,
        password=group.service_password,
        project_name=group.service_project_name,
        user_domain_id=group.service_user_domain_id,
        project_domain_id=group.service_project_domain_id,
        timeout=group.keystone_timeout,
        cache_time=group.token_cache_time,
        invalid_cache_time=group.invalid_token_cache_time,
        cache_size=group.token_cache_size,
        tls=context_for_url(
            group.keystone_url,
            ClientFiles(group.keystone_ca_file, group.keystone_cert_file, group.keystone_key_file),
            "[identity] keystone_ca_file, keystone_cert_file, keystone_key_file",
        ),
    )


async def _jwt(group: cfg.ConfigOpts.GroupAttr) -> Authenticator:
    key_files = [path for path in group.jwt_key_files if path]
    if not key_files and not group.jwt_jwks_file:
        raise ConfigError("[identity] jwt_key_files or jwt_jwks_file: mode=jwt needs keys")
    if not group.jwt_issuer:
        raise ConfigError("[identity] jwt_issuer: required for mode=jwt")
    if not group.jwt_audience:
        raise ConfigError("[identity] jwt_audience: required for mode=jwt")
    try:
        algorithms = check_algorithms(group.jwt_algorithms)
    except ValueError as exc:
        raise ConfigError(f"[identity] jwt_algorithms: {exc}") from None
    try:
        # Not declared yet in config.py: picked up once the option exists.
        service_token_file = group.jwt_service_token_file
    except cfg.NoSuchOptError:
        service_token_file = None
    authenticator = JwtAuthenticator(
        key_files=key_files,
        jwks_file=group.jwt_jwks_file,
        algorithms=algorithms,
        issuer=group.jwt_issuer,
        audience=group.jwt_audience,
        leeway=group.jwt_leeway,
        claims=ClaimNames(
            user=group.jwt_user_claim,
            project=group.jwt_project_claim,
            roles=group.jwt_roles_claim,
            system_scope=group.jwt_system_scope_claim,
            domain=group.jwt_domain_claim,
        ),
        service_token_file=service_token_file,
        cache_time=group.token_cache_time,
        cache_size=group.token_cache_size,
    )
    if not await authenticator.load_keys():
        raise ConfigError(
            "[identity] jwt_key_files / jwt_jwks_file: no usable public key could be read"
        )
    return authenticator

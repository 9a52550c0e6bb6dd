"""Identity basics: spoofed-header stripping, noauth lab tokens, and the mode factory's refusals."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from oslo_config import cfg
from structlog.testing import capture_logs

from gateway.config import ConfigError, make_conf
from gateway.identity.credentials import Credentials, is_identity_header, strip_identity_headers
from gateway.identity.factory import build_authenticator
from gateway.identity.keystone import KeystoneAuthenticator
from gateway.identity.noauth import NoAuthAuthenticator, expand_implied, parse_token
from gateway.identity.refusals import header_values, well_formed
from gateway.identity.signed_jwt import JwtAuthenticator
from gateway.nova.faults import Fault

# -- header stripping ------------------------------------------------------------------

SPOOFED = [
    "X-Roles",
    "x-roles",
    "X_ROLES",
    "x_Roles",
    "X-Identity-Status",
    "X_Identity_Status",
    "X-User-Id",
    "X_USER_ID",
    "x-user_id",
    "X-Project-Id",
    "X_Project_Id",
    "X-Is-Admin-Project",
    "X_IS_ADMIN_PROJECT",
    "OpenStack-System-Scope",
    "openstack_system_scope",
    "X-Service-Roles",
    "X_Service_Roles",
    "X-Tenant-Id",
    "X-Tenant",
    "X-Role",
    "X-Domain-Id",
    "X-Service-Catalog",
    " X-Roles",
    "X-Service-Anything-New",
    "X-User-Future-Field",
]
KEPT = [
    "X-Auth-Token",
    "Content-Type",
    "OpenStack-API-Version",
    "X-OpenStack-Request-ID",
    "X-Rolex",
]


@pytest.mark.parametrize("name", SPOOFED)
def test_identity_headers_in_every_spelling_are_stripped(name: str) -> None:
    assert is_identity_header(name)
    assert strip_identity_headers([(name, "admin"), ("Accept", "*/*")]) == [("Accept", "*/*")]


def test_ordinary_headers_survive_stripping() -> None:
    headers = [(name, "v") for name in KEPT]
    assert strip_identity_headers(headers) == headers


def test_header_values_matches_case_and_underscore_spellings() -> None:
    headers = [("x-auth-token", "a"), ("X_AUTH_TOKEN", "b"), ("X-Auth-Tokens", "c")]
    assert header_values(headers, "X-Auth-Token") == ["a", "b"]


@pytest.mark.parametrize("token", ["", "a b", "tok\x00en", "é", "x" * 8193, "a\tb"])
def test_malformed_tokens_are_not_well_formed(token: str) -> None:
    assert not well_formed(token)


# -- noauth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "user", "project", "roles"),
    [
        ("alice:p1", "alice", "p1", {"member", "reader"}),
        ("admin:admin", "admin", "admin", {"admin", "manager", "member", "reader"}),
        ("carol:p1:reader", "carol", "p1", {"reader"}),
        ("mgr:p1:manager", "mgr", "p1", {"manager", "member", "reader"}),
        ("svc:service:service", "svc", "service", {"service"}),
        ("x:p1:Member,SERVICE", "x", "p1", {"member", "reader", "service"}),
        ("x:p1:", "x", "p1", {"member", "reader"}),  # empty roles: labauth's default
        ("admin:p1:reader", "admin", "p1", {"reader"}),  # explicit roles win for admin
        ("x:p1: member , reader", "x", "p1", {"member", "reader"}),  # labauth strips roles
    ],
)
def test_noauth_tokens_parse_like_labauth(
    token: str, user: str, project: str, roles: set[str]
) -> None:
    credentials = parse_token(token)
    assert credentials.user_id == user
    assert credentials.project_id == project
    assert credentials.roles == roles
    assert credentials.system_scope is None and credentials.domain_id is None
    assert credentials.user_domain_id == credentials.project_domain_id == "default"
    assert credentials.mode == "noauth"


def test_noauth_system_scope_token() -> None:
    credentials = parse_token("sysreader::reader:system")
    assert credentials.system_scope == "all"
    assert credentials.project_id is None and credentials.project_domain_id is None
    assert credentials.roles == {"reader"}
    # a project given with :system is ignored, as a system-scoped keystone token has none
    assert parse_token("admin:admin:admin:system").project_id is None


def test_noauth_domain_scope_token() -> None:
    credentials = parse_token("dom::admin:domain=d1")
    assert credentials.domain_id == "d1"
    assert credentials.project_id is None
    assert credentials.roles == {"admin", "manager", "member", "reader"}


@pytest.mark.parametrize(
    "token",
    ["alice", ":p1", "alice:", "a:b:c:d:e", "a:p1:member:galaxy", "a:p1:member:domain=", "a\tb:p1"],
)
def test_noauth_malformed_tokens_are_401(token: str) -> None:
    with pytest.raises(Fault) as caught:
        parse_token(token)
    assert caught.value.status == 401
    assert caught.value.reason == "token_invalid"
    assert caught.value.message == "The request you have made requires authentication."
    assert token not in repr(caught.value)


def test_expand_implied_is_keystones_chain() -> None:
    assert expand_implied(["Admin"]) == {"admin", "manager", "member", "reader"}
    assert expand_implied(["member", "service"]) == {"member", "reader", "service"}


async def test_noauth_authenticator_reads_x_auth_token() -> None:
    authenticator = NoAuthAuthenticator("nova-gateway:service:admin")
    credentials = await authenticator.authenticate([("x-auth-token", " alice:p1 ")])
    assert credentials == Credentials(
        user_id="alice",
        project_id="p1",
        roles=frozenset({"member", "reader"}),
        user_domain_id="default",
        project_domain_id="default",
        mode="noauth",
    )
    assert await authenticator.service_token() == "nova-gateway:service:admin"
    await authenticator.close()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], "token_missing"),
        ([("X-Auth-Token", "  ")], "token_missing"),
        ([("X-Auth-Token", "alice:p1"), ("X_Auth_Token", "admin:admin")], "token_ambiguous"),
        ([("X-Auth-Token", "alice:p1"), ("x-auth-token", "alice:p1")], "token_ambiguous"),
    ],
)
async def test_noauth_missing_or_ambiguous_token_is_401(
    headers: list[tuple[str, str]], reason: str
) -> None:
    with pytest.raises(Fault) as caught:
        await NoAuthAuthenticator("s:s").authenticate(headers)
    assert (caught.value.status, caught.value.reason) == (401, reason)
    assert caught.value.version_headers is False


# -- factory ---------------------------------------------------------------------------


def conf_with(**identity: object) -> cfg.ConfigOpts:
    conf = make_conf()
    conf([], project="nova-gateway", default_config_files=[])
    for name, value in identity.items():
        conf.set_override(name, value, group="identity")
    return conf


async def test_noauth_refused_without_allow_noauth() -> None:
    with pytest.raises(ConfigError, match=r"\[identity\] allow_noauth"):
        await build_authenticator(conf_with(mode="noauth"))


async def test_noauth_warns_at_every_start() -> None:
    for _ in range(2):
        with capture_logs() as logs:
            authenticator = await build_authenticator(conf_with(mode="noauth", allow_noauth=True))
        assert isinstance(authenticator, NoAuthAuthenticator)
        assert [entry["log_level"] for entry in logs] == ["warning"]
        assert logs[0]["event"] == "identity_noauth_enabled"


async def test_noauth_refuses_malformed_service_token() -> None:
    conf = conf_with(mode="noauth", allow_noauth=True, noauth_service_token="nonsense")
    with pytest.raises(ConfigError, match=r"\[identity\] noauth_service_token") as caught:
        await build_authenticator(conf)
    assert "nonsense" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"service_password": "secret"}, "keystone_url"),
        ({"keystone_url": "http://ks:5000/v3"}, "service_password"),
        (
            {"keystone_url": "http://ks:5000/v3", "service_password": "x", "service_username": ""},
            "service_username",
        ),
    ],
)
async def test_keystone_mode_refuses_missing_options(options: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[identity\] {named}"):
        await build_authenticator(conf_with(mode="keystone", **options))


async def test_keystone_mode_builds_with_session() -> None:
    conf = conf_with(mode="keystone", keystone_url="http://ks:5000/v3/", service_password="pw")
    async with aiohttp.ClientSession() as session:
        authenticator = await build_authenticator(conf, session)
    assert isinstance(authenticator, KeystoneAuthenticator)
    # keystonemiddleware names its www_authenticate_uri as configured: path and all.
    assert authenticator.www_authenticate == 'Keystone uri="http://ks:5000/v3/"'


async def test_keystone_www_authenticate_uri_is_configurable() -> None:
    conf = conf_with(
        mode="keystone",
        keystone_url="http://ks-internal:5000/v3",
        www_authenticate_uri="https://keystone.example.com/identity/v3",
        service_password="pw",
    )
    async with aiohttp.ClientSession() as session:
        authenticator = await build_authenticator(conf, session)
    assert isinstance(authenticator, KeystoneAuthenticator)
    assert (
        authenticator.www_authenticate == 'Keystone uri="https://keystone.example.com/identity/v3"'
    )
    assert "pw" not in repr(authenticator)


def write_ec_key(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"jwt_issuer": "i", "jwt_audience": "a"}, "jwt_key_files or jwt_jwks_file"),
        ({"jwt_key_files": ["KEY"], "jwt_audience": "a"}, "jwt_issuer"),
        ({"jwt_key_files": ["KEY"], "jwt_issuer": "i"}, "jwt_audience"),
        ({"jwt_key_files": ["KEY"], "jwt_issuer": "i", "jwt_audience": "a",
          "jwt_algorithms": ["RS256", "none"]}, "jwt_algorithms"),
        ({"jwt_key_files": ["KEY"], "jwt_issuer": "i", "jwt_audience": "a",
          "jwt_algorithms": ["HS256"]}, "jwt_algorithms"),
        ({"jwt_key_files": ["KEY"], "jwt_issuer": "i", "jwt_audience": "a",
          "jwt_algorithms": ["RS1"]}, "jwt_algorithms"),
        ({"jwt_key_files": ["MISSING"], "jwt_issuer": "i", "jwt_audience": "a"},
         "jwt_key_files / jwt_jwks_file"),
        ({"jwt_key_files": ["KEY"], "jwt_issuer": "i", "jwt_audience": "a",
          "jwt_algorithms": ["RS256"]}, "jwt_key_files / jwt_jwks_file"),  # EC key, RSA only
    ],
)  # fmt: skip
async def test_jwt_mode_refuses_missing_or_unsafe_options(
    tmp_path: Path, options: dict[str, object], named: str
) -> None:
    write_ec_key(tmp_path / "key.pem")
    paths = {"KEY": str(tmp_path / "key.pem"), "MISSING": str(tmp_path / "absent.pem")}
    files = options.get("jwt_key_files")
    if isinstance(files, list):
        options["jwt_key_files"] = [paths[name] for name in files]
    with pytest.raises(ConfigError, match=rf"\[identity\] {named}"):
        await build_authenticator(conf_with(mode="jwt", **options))


async def test_jwt_mode_builds_from_a_jwks_file(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "kid": "k1",
        "x": _b64(public.x.to_bytes(32, "big")),
        "y": _b64(public.y.to_bytes(32, "big")),
    }
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    conf = conf_with(
        mode="jwt", jwt_jwks_file=str(tmp_path / "jwks.json"), jwt_issuer="i", jwt_audience="a"
    )
    authenticator = await build_authenticator(conf)
    assert isinstance(authenticator, JwtAuthenticator)
    assert len(authenticator.keys) == 1
    assert "k1" in authenticator.keys[0].kids


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

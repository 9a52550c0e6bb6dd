"""JWT mode: signatures, algorithm confusion, time claims, key rotation and claim mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from gateway.identity.credentials import Credentials
from gateway.identity.signed_jwt import ClaimNames, JwtAuthenticator, thumbprint
from gateway.nova.faults import Fault

ISSUER = "https://idp.example"
AUDIENCE = "nova-gateway"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEYS: dict[str, Callable[[], PrivateKey]] = {
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


def private_key(alg: str, rsa_key: rsa.RSAPrivateKey) -> PrivateKey:
    return rsa_key if alg == "RS256" else KEYS[alg]()


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_pem(path: Path, key: PrivateKey) -> str:
    """Write atomically (a new inode), as a deployment tool would."""
    partial = path.with_suffix(".tmp")
    partial.write_bytes(public_pem(key))
    os.replace(partial, path)
    return str(path)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice-id",
        "project_id": "p1",
        "roles": ["member", "reader"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def sign(
    key: PrivateKey | ed448.Ed448PrivateKey,
    alg: str,
    payload: dict[str, Any],
    kid: str | None = None,
) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def make(
    key_files: list[str] | None = None, jwks_file: str | None = None, **options: Any
) -> JwtAuthenticator:
    authenticator = JwtAuthenticator(
        key_files=key_files or [],
        jwks_file=jwks_file,
        algorithms=options.pop("algorithms", ("RS256", "ES256", "EdDSA")),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway=options.pop("leeway", 30.0),
        **options,
    )
    await authenticator.load_keys()
    return authenticator


async def accepted(authenticator: JwtAuthenticator, token: str) -> Credentials:
    """Authenticates ``token`` and checks the credentials against the claims the token
    itself carries (read without the gateway: PyJWT's unverified decode)."""
    payload = jwt.decode(token, options={"verify_signature": False})
    credentials = await authenticator.authenticate([("X-Auth-Token", token)])
    assert credentials.user_id == payload["sub"]
    assert credentials.project_id == payload.get("project_id")
    assert credentials.roles == {role.lower() for role in payload.get("roles", [])}
    assert credentials.expires_at == payload["exp"]
    assert credentials.mode == "jwt"
    assert credentials.extra == {"issuer": payload["iss"]}
    return credentials


async def refused(authenticator: JwtAuthenticator, token: str, reason: str) -> Fault:
    with pytest.raises(Fault) as caught:
        await authenticator.authenticate([("X-Auth-Token", token)])
    fault = caught.value
    assert (fault.status, fault.reason) == (401, reason)
    assert fault.headers["WWW-Authenticate"].startswith("Bearer")
    assert token not in repr(fault) and token not in fault.message
    return fault


# -- accepted tokens -------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_valid_token_is_accepted(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    key = private_key(alg, rsa_key)
    authenticator = await make([write_pem(tmp_path / "signer.pem", key)])
    token = sign(key, alg, claims())
    for headers in (
        [("X-Auth-Token", token)],
        [("Authorization", f"Bearer {token}")],
        [("authorization", f"bearer  {token} ")],
        [("X-Auth-Token", token), ("Authorization", f"Bearer {token}")],  # same token twice
    ):
        credentials = await authenticator.authenticate(headers)
        assert credentials.user_id == "alice-id"
        assert credentials.project_id == "p1"
        assert credentials.roles == {"member", "reader"}
        assert credentials.system_scope is None
        assert credentials.mode == "jwt"
        assert credentials.expires_at is not None and credentials.expires_at > time.time()


async def test_kid_selects_the_key_by_file_name_or_thumbprint(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    authenticator = await make(
        [write_pem(tmp_path / "2026-a.pem", rsa_key), write_pem(tmp_path / "b.pem", other)]
    )
    await accepted(authenticator, sign(rsa_key, "RS256", claims(), "2026-a"))
    by_thumb = sign(other, "ES256", claims(), thumbprint(other.public_key()))
    await accepted(authenticator, by_thumb)
    # A kid naming another key is refused even though the signer's key is loaded.
    await refused(authenticator, sign(rsa_key, "RS256", claims(), "b"), "token_unknown_key")


async def test_leeway_covers_small_clock_skew(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)], leeway=30)
    now = int(time.time())
    await accepted(authenticator, sign(rsa_key, "RS256", claims(exp=now - 10, nbf=now + 10)))


# -- refused tokens --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        # Times relative to now, resolved when the test runs (not at collection: a long
        # suite would let an absolute "nbf in 120 s" become valid).
        ({"exp": ("now", -120)}, "token_expired"),
        ({"nbf": ("now", 120)}, "token_invalid"),
        ({"iss": "https://evil.example"}, "token_invalid"),
        ({"aud": "someone-else"}, "token_invalid"),
        ({"aud": ["someone-else", "another"]}, "token_invalid"),
        ({"exp": None}, "token_invalid"),
        ({"nbf": None}, "token_invalid"),
        ({"iss": None}, "token_invalid"),
        ({"aud": None}, "token_invalid"),
        ({"sub": None}, "token_claims_invalid"),
        ({"sub": 42}, "token_invalid"),  # pyjwt checks sub is a string
        ({"roles": "admin"}, "token_claims_invalid"),
        ({"roles": ["admin", 1]}, "token_claims_invalid"),
        ({"system_scope": "all"}, "token_claims_invalid"),  # project and system at once
        ({"project_id": None, "system_scope": "some"}, "token_claims_invalid"),
        ({"domain_id": "d1"}, "token_claims_invalid"),  # project and domain at once
    ],
)
async def test_bad_claims_are_401(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, overrides: dict[str, Any], reason: str
) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)], leeway=30)
    resolved = {
        key: int(time.time()) + value[1] if isinstance(value, tuple) else value
        for key, value in overrides.items()
    }
    await refused(authenticator, sign(rsa_key, "RS256", claims(**resolved)), reason)


async def test_audience_list_containing_ours_is_accepted(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    token = sign(rsa_key, "RS256", claims(aud=["other", AUDIENCE]))
    assert (await authenticator.authenticate([("X-Auth-Token", token)])).user_id == "alice-id"


async def test_wrong_signature_is_401(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, rsa_key2: rsa.RSAPrivateKey
) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    await refused(authenticator, sign(rsa_key2, "RS256", claims()), "token_bad_signature")
    good = sign(rsa_key, "RS256", claims())
    head, payload, signature = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["roles"] = ["admin"]
    tampered = f"{head}.{b64(json.dumps(forged).encode())}.{signature}"
    await refused(authenticator, tampered, "token_bad_signature")


async def test_alg_none_is_401(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    unsigned = jwt.encode(claims(), "", algorithm="none")
    await refused(authenticator, unsigned, "token_algorithm_refused")
    for alg in ("none", "None", "NONE", "nOnE"):
        header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        token = f"{header}.{b64(json.dumps(claims()).encode())}."
        await refused(authenticator, token, "token_algorithm_refused")


async def test_hs256_signed_with_the_public_key_is_401(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The classic confusion: an HMAC 'signed' with the (public) verification key."""
    path = write_pem(tmp_path / "k.pem", rsa_key)
    authenticator = await make([path])
    secret = Path(path).read_bytes()
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        signing_input = (
            f"{b64(json.dumps({'alg': alg, 'typ': 'JWT', 'kid': 'k'}).encode())}."
            f"{b64(json.dumps(claims(roles=['admin'])).encode())}"
        )
        mac = hmac.new(secret, signing_input.encode(), digest).digest()
        await refused(authenticator, f"{signing_input}.{b64(mac)}", "token_algorithm_refused")


async def test_asymmetric_family_confusion_is_401(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """An ES256 header cannot make an RSA key verify (or vice versa)."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    authenticator = await make([write_pem(tmp_path / "rsa.pem", rsa_key)])
    await refused(authenticator, sign(ec_key, "ES256", claims()), "token_unknown_key")


async def test_algorithm_not_configured_is_401(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    authenticator = await make(
        [write_pem(tmp_path / "ed.pem", key), write_pem(tmp_path / "ec.pem", ec_key)],
        algorithms=["ES256"],
    )
    assert len(authenticator.keys) == 1  # the Ed25519 key fits no configured algorithm
    await refused(authenticator, sign(key, "EdDSA", claims()), "token_algorithm_refused")


async def test_unknown_kid_is_401(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    await refused(authenticator, sign(rsa_key, "RS256", claims(), "nope"), "token_unknown_key")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], "token_missing"),
        ([("Authorization", "Basic YWxpY2U6c2VjcmV0")], "token_missing"),
        ([("X-Auth-Token", "a.b.c"), ("Authorization", "Bearer d.e.f")], "token_ambiguous"),
        ([("X-Auth-Token", "a.b.c"), ("X_Auth_Token", "d.e.f")], "token_ambiguous"),
        ([("X-Auth-Token", "garbage")], "token_invalid"),
        ([("X-Auth-Token", "not base64.at all.!")], "token_invalid"),
    ],
)
async def test_missing_ambiguous_or_garbage_tokens_are_401(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, headers: list[tuple[str, str]], reason: str
) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    with pytest.raises(Fault) as caught:
        await authenticator.authenticate(headers)
    assert (caught.value.status, caught.value.reason) == (401, reason)


async def test_crit_header_is_401(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"crit": ["exp"]})
    await refused(authenticator, token, "token_invalid")


# -- key files -------------------------------------------------------------------------


async def test_key_file_rotation_is_picked_up(tmp_path: Path) -> None:
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    clock = FakeClock()
    path = write_pem(tmp_path / "signer.pem", old)
    authenticator = await make([path], clock=clock)
    old_token, new_token = sign(old, "ES256", claims()), sign(new, "ES256", claims())
    await accepted(authenticator, old_token)

    write_pem(tmp_path / "signer.pem", new)
    clock.now += 0.5  # files are stat()ed at most once a second
    await refused(authenticator, new_token, "token_bad_signature")
    clock.now += 0.6
    await accepted(authenticator, new_token)
    await refused(authenticator, old_token, "token_bad_signature")


async def test_rewritten_in_place_key_file_is_picked_up(tmp_path: Path) -> None:
    """Same inode, other content (size changes for RSA vs EC): still noticed."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    clock = FakeClock()
    path = tmp_path / "signer.pem"
    path.write_bytes(public_pem(ec_key))
    authenticator = await make([str(path)], clock=clock)
    path.write_bytes(public_pem(ed_key))
    clock.now += 1
    await accepted(authenticator, sign(ed_key, "EdDSA", claims()))


async def test_deleted_key_file_revokes_its_key(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    clock = FakeClock()
    path = write_pem(tmp_path / "k.pem", rsa_key)
    authenticator = await make([path], clock=clock)
    token = sign(rsa_key, "RS256", claims())
    await accepted(authenticator, token)
    os.unlink(path)
    clock.now += 1
    await refused(authenticator, token, "token_unknown_key")


async def test_unparsable_key_file_keeps_last_good_keys(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = FakeClock()
    path = write_pem(tmp_path / "k.pem", rsa_key)
    authenticator = await make([path], clock=clock)
    Path(path).write_bytes(b"-----BEGIN PUBLIC KEY-----\nMIIB")  # half written
    clock.now += 1
    token = sign(rsa_key, "RS256", claims())
    await accepted(authenticator, token)


async def test_private_key_in_key_file_is_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    authenticator = await make([str(path)])
    assert authenticator.keys == ()


async def test_small_rsa_keys_are_refused(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    authenticator = await make([write_pem(tmp_path / "weak.pem", weak)])
    assert authenticator.keys == ()


def jwk(key: PrivateKey, **members: str) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**data, **members}


def write_jwks(path: Path, keys: list[dict[str, Any]]) -> str:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"keys": keys}))
    os.replace(partial, path)
    return str(path)


async def test_jwks_keys_kids_and_rotation(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    clock = FakeClock()
    path = write_jwks(
        tmp_path / "jwks.json",
        [
            jwk(rsa_key, kid="r1", use="sig", alg="RS256"),
            jwk(ec_key, kid="e1"),
            jwk(ed_key, kid="enc", use="enc"),  # not a signature key
            {"kty": "oct", "kid": "h1", "k": b64(b"shared-secret")},  # symmetric: refused
            {**jwk(ec_key, kid="priv"), "d": "AAAA"},  # private material: refused
        ],
    )
    authenticator = await make(jwks_file=path, clock=clock)
    assert sorted(kid for key in authenticator.keys for kid in key.kids if len(kid) < 10) == [
        "e1",
        "r1",
    ]
    await accepted(authenticator, sign(rsa_key, "RS256", claims(), "r1"))
    await accepted(authenticator, sign(ec_key, "ES256", claims(), "e1"))
    # the JWK pins RS256: a PS256 token from the same key is refused
    await refused(authenticator, sign(rsa_key, "PS256", claims(), "r1"), "token_algorithm_refused")
    ps = await make(jwks_file=path, algorithms=["RS256", "PS256"])
    await refused(ps, sign(rsa_key, "PS256", claims(), "r1"), "token_unknown_key")
    await refused(authenticator, sign(ed_key, "EdDSA", claims(), "enc"), "token_unknown_key")

    write_jwks(tmp_path / "jwks.json", [jwk(ed_key, kid="e2")])
    clock.now += 1
    await accepted(authenticator, sign(ed_key, "EdDSA", claims(), "e2"))
    await refused(authenticator, sign(ec_key, "ES256", claims(), "e1"), "token_unknown_key")


# -- claims mapping --------------------------------------------------------------------


async def test_claim_names_are_configurable(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    names = ClaimNames(
        user="uid", project="tenant", roles="groups", system_scope="sys", domain="dom"
    )
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)], claims=names)
    payload = claims(sub=None, project_id=None, roles=None, uid="u1", tenant="t1")
    payload["groups"] = ["Admin", " Member "]
    credentials = await authenticator.authenticate(
        [("X-Auth-Token", sign(rsa_key, "RS256", payload))]
    )
    assert (credentials.user_id, credentials.project_id) == ("u1", "t1")
    assert credentials.roles == {"admin", "member"}  # the issuer expands implied roles

    system = claims(sub=None, project_id=None, uid="ops", sys="all", groups=["reader"])
    credentials = await authenticator.authenticate(
        [("X-Auth-Token", sign(rsa_key, "RS256", system))]
    )
    assert credentials.system_scope == "all" and credentials.project_id is None
    assert credentials.roles == {"reader"}

    domain = claims(sub=None, project_id=None, uid="d", dom="d1")
    credentials = await authenticator.authenticate(
        [("X-Auth-Token", sign(rsa_key, "RS256", domain))]
    )
    assert credentials.domain_id == "d1" and credentials.project_id is None
    assert credentials.roles == frozenset()


# -- service token ---------------------------------------------------------------------


async def test_service_token_unconfigured_is_a_clear_503(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    with pytest.raises(Fault) as caught:
        await authenticator.service_token()
    assert (caught.value.status, caught.value.reason) == (503, "service_token_unconfigured")


async def test_service_token_file_is_read_and_rotated(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = FakeClock()
    service_file = tmp_path / "service.jwt"
    service_file.write_text("first.token.x\n")
    authenticator = await make(
        [write_pem(tmp_path / "k.pem", rsa_key)],
        service_token_file=str(service_file),
        clock=clock,
    )
    assert await authenticator.service_token() == "first.token.x"
    service_file.write_text("second.token.longer\n")
    clock.now += 1
    assert await authenticator.service_token() == "second.token.longer"
    service_file.unlink()
    clock.now += 1
    with pytest.raises(Fault) as caught:
        await authenticator.service_token()
    assert caught.value.status == 503


async def test_jwks_ed448_key_without_alg_is_usable(tmp_path: Path) -> None:
    """PyJWKSet infers no algorithm for an Ed448 JWK: the gateway names EdDSA for it."""
    key = ed448.Ed448PrivateKey.generate()
    data = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    path = write_jwks(tmp_path / "jwks.json", [{**data, "kid": "ed448"}])
    authenticator = await make(jwks_file=path)
    assert [key.algorithms for key in authenticator.keys] == [frozenset({"EdDSA"})]
    await accepted(authenticator, sign(key, "EdDSA", claims(), "ed448"))

"""JWT mode's cache of verified tokens: by hash, bounded, never past exp nor past the key
set that verified them."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.identity.cache import token_key
from tests.unit.test_identity_jwt import (
    FakeClock,
    accepted,
    claims,
    make,
    refused,
    sign,
    write_pem,
)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Wall:
    """The authenticator's wall clock, moved by the test (PyJWT keeps the real one)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_a_verified_token_is_answered_from_the_cache(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    token = sign(rsa_key, "RS256", claims())
    first = await accepted(authenticator, token)
    second = await accepted(authenticator, token)
    assert second == first
    assert (authenticator.misses, authenticator.hits) == (1, 1)
    keys = list(authenticator._verified._entries)
    assert keys == [token_key(token)]  # the hash, never the token


async def test_an_entry_never_outlives_the_tokens_exp(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock, wall = FakeClock(), Wall()
    authenticator = await make(
        [write_pem(tmp_path / "k.pem", rsa_key)], clock=clock, wall_clock=wall, leeway=0
    )
    exp = int(wall.now) + 20
    token = sign(rsa_key, "RS256", claims(exp=exp))
    await accepted(authenticator, token)
    remaining = exp - wall.now  # what the entry was given, on the monotonic clock
    clock.now += remaining - 0.01
    await accepted(authenticator, token)
    assert (authenticator.misses, authenticator.hits) == (1, 1)
    clock.now += 0.02  # past exp: the entry is gone
    await accepted(authenticator, token)  # verified again (PyJWT's real clock is early)
    assert (authenticator.misses, authenticator.hits) == (2, 1)
    await accepted(authenticator, token)
    assert authenticator.hits == 2  # cached again, with what is left of its life

    # The wall clock past exp ends an entry that its monotonic deadline would still keep.
    wall.now = exp + 0.5
    await accepted(authenticator, token)
    assert (authenticator.misses, authenticator.hits) == (3, 2)


async def test_token_cache_time_bounds_an_entry_too(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = FakeClock()
    authenticator = await make(
        [write_pem(tmp_path / "k.pem", rsa_key)], clock=clock, cache_time=5.0, check_interval=1e9
    )
    token = sign(rsa_key, "RS256", claims())
    await accepted(authenticator, token)
    clock.now += 4.9
    await accepted(authenticator, token)
    clock.now += 0.2
    await accepted(authenticator, token)
    assert (authenticator.misses, authenticator.hits) == (2, 1)

    nothing_kept = await make([write_pem(tmp_path / "k.pem", rsa_key)], cache_time=0)
    await accepted(nothing_kept, token)
    await accepted(nothing_kept, token)
    assert (nothing_kept.misses, nothing_kept.hits) == (2, 0)


async def test_a_changed_key_file_ends_every_entry(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The signer's key replaced: a token it verified is refused at once, not once its
    cache entry would have ended."""
    clock = FakeClock()
    path = tmp_path / "signer.pem"
    authenticator = await make([write_pem(path, rsa_key)], clock=clock)
    token = sign(rsa_key, "RS256", claims())
    await accepted(authenticator, token)
    await accepted(authenticator, token)
    assert authenticator.hits == 1
    write_pem(path, ec.generate_private_key(ec.SECP256R1()))
    clock.now += 1.0  # the next stat round
    await refused(authenticator, token, "token_unknown_key")


async def test_the_cache_is_bounded_least_recently_used_first(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)], cache_size=2)
    tokens = [sign(rsa_key, "RS256", claims(sub=f"user-{n}")) for n in range(3)]
    for token in tokens[:2]:
        await accepted(authenticator, token)
    await accepted(authenticator, tokens[0])  # the first is now the most recently used
    await accepted(authenticator, tokens[2])  # evicts the second
    assert len(authenticator._verified) == 2
    assert set(authenticator._verified._entries) == {token_key(tokens[0]), token_key(tokens[2])}
    hits = authenticator.hits
    await accepted(authenticator, tokens[1])
    assert authenticator.hits == hits  # verified again


async def test_a_refused_token_is_not_cached(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = await make([write_pem(tmp_path / "k.pem", rsa_key)])
    expired = sign(rsa_key, "RS256", claims(exp=int(time.time()) - 120))
    await refused(authenticator, expired, "token_expired")
    assert len(authenticator._verified) == 0
    assert jwt.get_unverified_header(expired)["alg"] == "RS256"

"""JWT identity: verifies signed tokens with public keys from PEM and JWKS files.

Owns key loading and rotation, algorithm choice and claim mapping; it must never accept
an unsigned or HMAC token, a key the token itself names by URL, nor read files on the loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import structlog
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from gateway.identity.cache import ExpiringCache, token_key
from gateway.identity.credentials import Credentials
from gateway.identity.refusals import (
    SERVICE_IDENTITY_UNAVAILABLE,
    header_values,
    unauthorized,
    well_formed,
)
from gateway.nova.faults import Fault
from gateway.watch import FileMark, mark, missing

log = structlog.get_logger(__name__)

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
Clock = Callable[[], float]
Parser = Callable[[bytes], tuple["VerifyKey", ...]]

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
SUPPORTED_ALGORITHMS = RSA_ALGORITHMS | frozenset(EC_ALGORITHMS.values()) | {"EdDSA"}
MIN_RSA_BITS = 2048
CHECK_INTERVAL = 1.0  # seconds between stat() rounds over the key files
WWW_AUTHENTICATE = 'Bearer realm="nova-gateway"'
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


def check_algorithms(names: Iterable[str]) -> frozenset[str]:
    """The configured algorithms; ValueError for none, HMAC (key confusion) or unknown ones."""
    chosen = frozenset(name.strip() for name in names if name.strip())
    if not chosen:
        raise ValueError("at least one algorithm is required")
    for name in sorted(chosen):
        if name.lower() == "none" or name.upper().startswith("HS"):
            raise ValueError(f"{name} is refused: only public-key signatures are accepted")
        if name not in SUPPORTED_ALGORITHMS:
            raise ValueError(f"{name} is not one of {', '.join(sorted(SUPPORTED_ALGORITHMS))}")
    return chosen


@dataclass(frozen=True)
class ClaimNames:
    user: str = "sub"
    project: str = "project_id"
    roles: str = "roles"
    system_scope: str = "system_scope"
    domain: str = "domain_id"


@dataclass(frozen=True)
class VerifyKey:
    """One public key, the kids that select it, and the algorithms it may verify."""

    key: PublicKey
    kids: frozenset[str]
    algorithms: frozenset[str]
    source: str  # file name, for logs


def key_algorithms(key: PublicKey) -> frozenset[str]:
    """The algorithms a key type can verify: an RSA key never verifies ES256, and so on."""
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS if key.key_size >= MIN_RSA_BITS else frozenset()
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = EC_ALGORITHMS.get(key.curve.name)
        return frozenset({alg}) if alg else frozenset()
    return frozenset({"EdDSA"})


def thumbprint(key: PublicKey) -> str:
    """The RFC 7638 JWK thumbprint, which many issuers use as ``kid``."""
    jwk: dict[str, Any]
    members: tuple[str, ...]
    if isinstance(key, rsa.RSAPublicKey):
        jwk = dict(RSAAlgorithm.to_jwk(key, as_dict=True))
        members = ("e", "kty", "n")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        jwk = dict(ECAlgorithm.to_jwk(key, as_dict=True))
        members = ("crv", "kty", "x", "y")
    else:
        jwk = dict(OKPAlgorithm.to_jwk(key, as_dict=True))
        members = ("crv", "kty", "x")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _verify_key(key: Any, kids: set[str], allowed: frozenset[str], source: str) -> VerifyKey:
    if not isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    algorithms = key_algorithms(key) & allowed
    if not algorithms:
        raise ValueError("key fits none of [identity] jwt_algorithms (or RSA < 2048 bits)")
    return VerifyKey(key, frozenset(kids | {thumbprint(key)}), algorithms, source)


def parse_pem(data: bytes, path: str, allowed: frozenset[str]) -> tuple[VerifyKey, ...]:
    """Public keys and certificates in a PEM file; its name (less ``.pem``) is a kid too."""
    stem = Path(path).stem
    keys: list[VerifyKey] = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1).decode()
        if "PRIVATE" in label:
            raise ValueError("holds a private key; the gateway needs only the public key")
        if label == "CERTIFICATE":
            key: Any = x509.load_pem_x509_certificate(match.group(0)).public_key()
        else:
            key = load_pem_public_key(match.group(0))
        keys.append(_verify_key(key, {stem}, allowed, path))
    if not keys:
        raise ValueError("no PEM public key or certificate found")
    return tuple(keys)


def parse_jwks(data: bytes, path: str, allowed: frozenset[str]) -> tuple[VerifyKey, ...]:
    """Signature keys of a JWKS document, parsed by PyJWT's ``PyJWKSet``; symmetric and
    private members are refused before parsing, members PyJWT cannot use are skipped."""
    document = json.loads(data)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS document ({"keys": [...]})')
    members = [
        jwk for index, jwk in enumerate(document["keys"]) if _public_member(jwk, path, index)
    ]
    # PyJWK infers an OKP key's algorithm for Ed25519 only; EdDSA is the one algorithm
    # any OKP key verifies, so naming it narrows nothing and keeps Ed448 keys usable.
    members = [
        {**jwk, "alg": "EdDSA"} if jwk.get("kty") == "OKP" and "alg" not in jwk else jwk
        for jwk in members
    ]
    # Two sets: a member that names its "alg" is pinned to it (RFC 7517 §4.4), and PyJWK
    # reports that as its algorithm; without one, PyJWK guesses an algorithm (RS256 for
    # any RSA key), which must not narrow what the key may verify.
    keys: list[VerifyKey] = []
    for pinned in (True, False):
        chosen = [jwk for jwk in members if ("alg" in jwk) == pinned]
        for parsed in _key_set(chosen, path):
            try:
                keys.append(_jwk_key(parsed, pinned, path, allowed))
            except ValueError as exc:
                log.warning("jwt_key_skipped", file=path, kid=parsed.key_id, error=str(exc))
    return tuple(keys)


def _key_set(members: list[dict[str, Any]], path: str) -> list[jwt.PyJWK]:
    if not members:
        return []
    try:
        parsed = jwt.PyJWKSet(members).keys
    except jwt.PyJWKSetError as exc:  # not one member PyJWT can use
        parsed = []
        log.warning("jwt_key_skipped", file=path, error=str(exc))
    if len(parsed) < len(members):
        log.warning("jwt_key_skipped", file=path, unusable=len(members) - len(parsed))
    return parsed


def _public_member(jwk: Any, path: str, index: int) -> bool:
    """A signature key with public material only: what the gateway may hand to PyJWT."""
    problem = None
    if not isinstance(jwk, dict):
        problem = "not an object"
    elif jwk.get("use", "sig") != "sig":
        problem = "not a signature key (use != sig)"
    elif "d" in jwk or "p" in jwk or "k" in jwk or jwk.get("kty") not in ("RSA", "EC", "OKP"):
        problem = "holds private or symmetric key material, or is not a public-key type"
    if problem is not None:
        log.warning("jwt_key_skipped", file=path, index=index, error=problem)
    return problem is None


def _jwk_key(jwk: jwt.PyJWK, pinned: bool, path: str, allowed: frozenset[str]) -> VerifyKey:
    kid = jwk.key_id
    verify = _verify_key(jwk.key, {kid} if isinstance(kid, str) and kid else set(), allowed, path)
    if pinned:
        algorithms = verify.algorithms & {jwk.algorithm_name}
        if not algorithms:
            raise ValueError(f"alg {jwk.algorithm_name!r} is not accepted for this key")
        verify = VerifyKey(verify.key, verify.kids, algorithms, path)
    return verify


@dataclass(frozen=True)
class _Scan:
    """What a look at (and, if it changed, a read of) one watched file found."""

    mark: FileMark
    changed: bool
    keys: tuple[VerifyKey, ...] = ()
    text: str | None = None  # for the service-token file
    error: str | None = None


def _scan(path: str, known: FileMark | None, parse: Parser | None) -> _Scan:
    """Runs in a worker thread: stat, and read + parse only when the file changed."""
    seen = mark(path)
    if seen == known:
        return _Scan(seen, changed=False)
    if missing(seen):
        return _Scan(seen, changed=True, error="missing")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if parse is None:
            return _Scan(seen, changed=True, text=data.decode("ascii").strip())
        return _Scan(seen, changed=True, keys=parse(data))
    except (OSError, ValueError, TypeError, KeyError, UnicodeError, jwt.PyJWTError) as exc:
        return _Scan(seen, changed=True, error=f"{type(exc).__name__}: {exc}")


class JwtAuthenticator:
    """Verifies RS/PS/ES/EdDSA-signed JWTs; keys are re-read when their files change."""

    def __init__(
        self,
        *,
        key_files: Sequence[str] = (),
        jwks_file: str | None = None,
        algorithms: Iterable[str] = ("RS256", "ES256", "EdDSA"),
        issuer: str,
        audience: str,
        leeway: float = 30.0,
        claims: ClaimNames | None = None,
        service_token_file: str | None = None,
        clock: Clock = time.monotonic,
        check_interval: float = CHECK_INTERVAL,
        cache_time: float = 300.0,
        cache_size: int = 10000,
        wall_clock: Clock = time.time,
    ) -> None:
        self._algorithms = check_algorithms(algorithms)
        self._parsers: dict[str, Parser] = {path: self._pem_parser(path) for path in key_files}
        if jwks_file:
            self._parsers[jwks_file] = self._jwks_parser(jwks_file)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._claims = claims or ClaimNames()
        self._service_token_file = service_token_file
        self._service_token: str | None = None
        self._service_mark: FileMark | None = None
        self._clock = clock
        self._check_interval = check_interval
        self._marks: dict[str, FileMark] = {}
        self._by_file: dict[str, tuple[VerifyKey, ...]] = {}
        self._keys: tuple[VerifyKey, ...] = ()
        self._last_check = float("-inf")
        self._checking = False
        self._decoder = jwt.PyJWT()
        # Verified tokens by hash, with the key generation that verified them: a changed
        # key file (a key revoked or rotated out) makes every earlier entry a miss.
        self._verified: ExpiringCache[tuple[int, Credentials]] = ExpiringCache(cache_size, clock)
        self._cache_time = cache_time
        self._generation = 0
        self._wall = wall_clock
        self.hits = 0
        self.misses = 0

    def _pem_parser(self, path: str) -> Parser:
        return lambda data: parse_pem(data, path, self._algorithms)

    def _jwks_parser(self, path: str) -> Parser:
        return lambda data: parse_jwks(data, path, self._algorithms)

    @property
    def keys(self) -> tuple[VerifyKey, ...]:
        return self._keys

    # -- the Authenticator protocol ---------------------------------------------------

    async def authenticate(self, headers: Sequence[tuple[str, str]]) -> Credentials:
        token = self._token(headers)
        if self._clock() - self._last_check >= self._check_interval:
            await self.load_keys(force=False)
        key = token_key(token)
        cached = self._verified.get(key)
        if cached is not None and self._still_good(*cached):
            self.hits += 1
            return cached[1]
        self.misses += 1
        credentials = self._credentials(self._verify(token))
        # Never past exp (no leeway: the leeway forgives clock skew at verification, it
        # does not extend a token), never longer than token_cache_time.
        remaining = (credentials.expires_at or 0.0) - self._wall()
        self._verified.put(key, (self._generation, credentials), min(self._cache_time, remaining))
        return credentials

    def _still_good(self, generation: int, credentials: Credentials) -> bool:
        # The deadline on the monotonic clock already ends at exp; the wall clock check
        # also covers a clock set forward past it.
        expires_at = credentials.expires_at or 0.0
        return generation == self._generation and self._wall() < expires_at

    async def service_token(self) -> str:
        """The token in the service-token file (JWT mode has no password to log in with)."""
        if self._service_token_file is None:
            log.error(
                "jwt_service_token_unconfigured",
                detail="mode=jwt has no service identity: set a service token file",
            )
            raise Fault(
                503,
                SERVICE_IDENTITY_UNAVAILABLE,
                reason="service_token_unconfigured",
                version_headers=False,
            )
        if self._clock() - self._last_check >= self._check_interval:
            await self.load_keys(force=False)
        if not self._service_token:
            raise Fault(
                503,
                SERVICE_IDENTITY_UNAVAILABLE,
                reason="service_token_unreadable",
                version_headers=False,
            )
        return self._service_token

    async def close(self) -> None:
        return None

    # -- keys -----------------------------------------------------------------------------

    async def load_keys(self, force: bool = True) -> bool:
        """Re-read changed key files (in a thread); True when at least one key is loaded.

        One check at a time: concurrent requests meanwhile verify with the current keys.
        """
        if self._checking and not force:
            return bool(self._keys)
        self._checking = True
        self._last_check = self._clock()
        paths = list(self._parsers)
        jobs: list[tuple[str, FileMark | None, Parser | None]] = [
            (path, self._marks.get(path), parse) for path, parse in self._parsers.items()
        ]
        if self._service_token_file:
            jobs.append((self._service_token_file, self._service_mark, None))
        try:
            # One thread hop for all files: a stat round costs ~100 µs, once a second.
            scans = await asyncio.to_thread(lambda: [_scan(*job) for job in jobs])
        finally:
            self._checking = False
        for path, scan in zip(paths, scans, strict=False):
            self._apply(path, scan)
        if self._service_token_file:
            self._apply_service(scans[-1])
        self._keys = tuple(key for keys in self._by_file.values() for key in keys)
        return bool(self._keys)

    def _apply(self, path: str, scan: _Scan) -> None:
        if not scan.changed:
            return
        self._generation += 1  # tokens verified before are verified again
        self._marks[path] = scan.mark
        if scan.error == "missing":
            # A deleted key file is a revoked key: stop trusting it at once.
            if self._by_file.pop(path, None) is not None:
                log.warning("jwt_key_file_removed", file=path)
            return
        if scan.error is not None:
            # Likely a half-written file: keep the last good keys until it changes again.
            log.error("jwt_key_file_unusable", file=path, error=scan.error)
            return
        self._by_file[path] = scan.keys
        log.info("jwt_keys_loaded", file=path, keys=len(scan.keys))

    def _apply_service(self, scan: _Scan) -> None:
        if not scan.changed:
            return
        self._service_mark = scan.mark
        if scan.error is not None:
            log.error("jwt_service_token_file_unusable", error=scan.error.split(":")[0])
            self._service_token = None
            return
        self._service_token = scan.text or None

    # -- verification ---------------------------------------------------------------------

    def _token(self, headers: Sequence[tuple[str, str]]) -> str:
        candidates = [value.strip() for value in header_values(headers, "X-Auth-Token")]
        for value in header_values(headers, "Authorization"):
            scheme, _, credentials = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                candidates.append(credentials.strip())
        candidates = [value for value in candidates if value]
        if not candidates:
            raise unauthorized("token_missing", WWW_AUTHENTICATE)
        if len(set(candidates)) > 1:
            raise unauthorized("token_ambiguous", WWW_AUTHENTICATE)
        if not well_formed(candidates[0]):
            raise unauthorized("token_invalid", WWW_AUTHENTICATE)
        return candidates[0]

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("token_invalid", WWW_AUTHENTICATE) from None
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise unauthorized("token_algorithm_refused", WWW_AUTHENTICATE)
        if "crit" in header or "b64" in header or (kid is not None and not isinstance(kid, str)):
            raise unauthorized("token_invalid", WWW_AUTHENTICATE)
        candidates = [
            key for key in self._keys if alg in key.algorithms and (kid is None or kid in key.kids)
        ]
        if not candidates:
            raise unauthorized("token_unknown_key", WWW_AUTHENTICATE)
        for key in candidates:
            try:
                return self._decoder.decode(
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    options={"require": ["exp", "nbf", "iss", "aud"]},
                )
            except jwt.InvalidSignatureError:
                continue  # without a kid, another key may be the signer
            except jwt.ExpiredSignatureError:
                raise unauthorized("token_expired", WWW_AUTHENTICATE) from None
            except jwt.PyJWTError:
                raise unauthorized("token_invalid", WWW_AUTHENTICATE) from None
        raise unauthorized("token_bad_signature", WWW_AUTHENTICATE)

    def _credentials(self, claims: dict[str, Any]) -> Credentials:
        names = self._claims
        user = claims.get(names.user)
        project = claims.get(names.project)
        roles = claims.get(names.roles, [])
        system = claims.get(names.system_scope)
        domain = claims.get(names.domain)
        well_typed = (
            isinstance(user, str)
            and bool(user)
            and (project is None or (isinstance(project, str) and bool(project)))
            and (domain is None or (isinstance(domain, str) and bool(domain)))
            and (system is None or system == "all")
            and isinstance(roles, list)
            and all(isinstance(role, str) for role in roles)
        )
        # One scope at most, like a keystone token: project, domain or system.
        scopes = sum(value is not None for value in (project, system, domain))
        if not well_typed or scopes > 1:
            raise unauthorized("token_claims_invalid", WWW_AUTHENTICATE)
        return Credentials(
            user_id=str(user),
            project_id=project,
            roles=frozenset(role.strip().lower() for role in roles if role.strip()),
            role_names=tuple(role.strip() for role in roles if role.strip()),
            domain_id=domain,
            system_scope=system,
            expires_at=float(claims["exp"]),
            mode="jwt",
            extra={"issuer": str(claims.get("iss", ""))},
        )

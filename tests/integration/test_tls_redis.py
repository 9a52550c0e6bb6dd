"""Redis over TLS, for real: redis-server processes of this test speaking TLS only, with
certificates made for this run. The rate limits count through ``async+rediss://`` (and
Sentinel over TLS) verified with ``storage_ca_file``, a wrong CA fails like an outage,
and the audit trail's witness publishes over ``rediss://``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from gateway.audit.witness import RedisWitness, WitnessError
from gateway.config import ConfigError
from tests.conftest import skip_or_fail
from tests.support.audit import simulator
from tests.support.gateway import running_gateway
from tests.support.tls_lab import (
    Authority,
    Issued,
    TlsRedis,
    every_log_level,  # noqa: F401
    redis_has_tls,
    tls_cluster,
    tls_redis,
    tls_sentinel,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:Invalid uuid"),
    pytest.mark.usefixtures("every_log_level"),
]
SERVICE = "nova-gateway-tls"
RULES = """
rules:
  - name: server-reads
    methods: [GET]
    path: /servers/*
    limit: 2 per minute
"""


@dataclass(frozen=True)
class Lab:
    authority: Authority
    stranger: Authority
    redis_leaf: Issued
    client: Issued  # the gateway's client certificate for Redis
    redis: TlsRedis  # requires client certificates (tls-auth-clients yes)
    directory: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not redis_has_tls():
        skip_or_fail("redis-server is missing or built without TLS")
    directory = tmp_path_factory.mktemp("tls-redis")
    authority = Authority.create(directory / "ca", "Deployment CA")
    stranger = Authority.create(directory / "other", "Stranger CA")
    leaf = authority.issue("redis")
    client = authority.issue("nova-gateway", client=True)
    with tls_redis(directory, authority, leaf, client, auth_clients="yes") as server:
        yield Lab(authority, stranger, leaf, client, server, directory)


def limit_options(lab: Lab, storage_url: str, **tls: Any) -> dict[str, Any]:
    rules = lab.directory / "rules.yaml"
    rules.write_text(RULES)
    return {
        "rate_limit.rules_file": str(rules),
        "rate_limit.storage_url": storage_url,
        "rate_limit.key_prefix": f"nova-gateway-tls-{uuid.uuid4().hex}",
        "rate_limit.storage_failure": "closed",
        "rate_limit.storage_timeout": 1.0,  # a TLS handshake on a loaded machine
        **{f"rate_limit.{name}": str(value) for name, value in tls.items()},
    }


async def statuses(options: dict[str, Any], reads: int = 3) -> list[int]:
    async with simulator() as sim, running_gateway(sim.url, options) as listeners:
        host, port = listeners.api_address
        url = f"http://{host}:{port}/v2.1/servers/{sim.seeded('p1')}"
        async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session:
            found = []
            for _ in range(reads):
                async with session.get(url) as response:
                    found.append(response.status)
            return found


async def test_limits_count_in_a_tls_redis_verified_with_the_deployment_ca(lab: Lab) -> None:
    options = limit_options(
        lab,
        f"async+rediss://localhost:{lab.redis.port}/0",
        storage_ca_file=lab.authority.cert_file,
        storage_cert_file=lab.client.cert_file,
        storage_key_file=lab.client.key_file,
    )
    assert await statuses(options) == [200, 200, 429]
    keys = lab.redis.client(lab.authority, lab.client).keys(options["rate_limit.key_prefix"] + "*")
    assert keys, "the counters are in the TLS Redis"


async def test_a_redis_we_cannot_verify_is_an_outage(lab: Lab) -> None:
    url = f"async+rediss://127.0.0.1:{lab.redis.port}/0"
    client = {
        "storage_cert_file": lab.client.cert_file,
        "storage_key_file": lab.client.key_file,
    }
    with capture_logs() as logs:
        wrong_ca = await statuses(
            limit_options(lab, url, storage_ca_file=lab.stranger.cert_file, **client), reads=1
        )
    assert wrong_ca == [503]  # storage_failure = closed: never unlimited by accident
    [failure, *_] = [entry for entry in logs if entry["event"].startswith("rate_limit_storage")]
    assert failure["tls"] == (
        "certificate verify failed: self-signed certificate in certificate chain"
    )
    # The system's trust store does not know this run's CA either.
    assert await statuses(limit_options(lab, url, **client), reads=1) == [503]
    # The right CA, but no client certificate for a Redis that requires one.
    no_certificate = limit_options(lab, url, storage_ca_file=lab.authority.cert_file)
    assert await statuses(no_certificate, reads=1) == [503]


async def test_limits_count_through_sentinel_over_tls(lab: Lab) -> None:
    # A primary whose clients need no certificate, watched by a TLS sentinel.
    primary_leaf = lab.authority.issue("redis-primary")
    sentinel_leaf = lab.authority.issue("redis-sentinel")
    with (
        tls_redis(lab.directory / "primary", lab.authority, primary_leaf) as primary,
        tls_sentinel(
            lab.directory / "sentinel", lab.authority, sentinel_leaf, SERVICE, primary.port
        ) as sentinel,
    ):
        url = f"async+rediss+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}"
        options = limit_options(lab, url, storage_ca_file=lab.authority.cert_file)
        assert await statuses(options) == [200, 200, 429]
        assert primary.client(lab.authority).keys(options["rate_limit.key_prefix"] + "*")
        wrong = limit_options(lab, url, storage_ca_file=lab.stranger.cert_file)
        assert await statuses(wrong, reads=1) == [503]


async def test_tls_files_beside_a_plain_storage_url_refuse_to_start(lab: Lab) -> None:
    options = limit_options(
        lab, "async+redis://127.0.0.1:6379/0", storage_ca_file=lab.authority.cert_file
    )
    with pytest.raises(ConfigError, match=r"storage_ca_file.*is not TLS"):
        await statuses(options, reads=1)


def test_the_witness_publishes_over_rediss_with_the_ca_in_its_url(lab: Lab) -> None:
    prefix = f"nova-gateway-tls-witness-{uuid.uuid4().hex}:"
    query = (
        f"ssl_ca_certs={lab.authority.cert_file}&ssl_certfile={lab.client.cert_file}"
        f"&ssl_keyfile={lab.client.key_file}"
    )
    witness = RedisWitness(f"rediss://localhost:{lab.redis.port}/0?{query}", prefix)
    witness.publish("chain-1", "sealed-head")
    assert list(witness.heads()) == [(f"redis:{prefix}chain-1", "sealed-head")]
    witness.close()
    wrong = f"ssl_ca_certs={lab.stranger.cert_file}&ssl_certfile={lab.client.cert_file}"
    stranger = RedisWitness(
        f"rediss://localhost:{lab.redis.port}/0?{wrong}&ssl_keyfile={lab.client.key_file}",
        prefix,
    )
    with pytest.raises(WitnessError, match="CERTIFICATE_VERIFY_FAILED"):
        stranger.publish("chain-1", "forged-head")


async def test_limits_count_in_a_redis_cluster_over_tls(lab: Lab) -> None:
    leaf = lab.authority.issue("redis-cluster", also_client=True)
    with tls_cluster(lab.directory / "cluster", lab.authority, leaf) as nodes:
        url = "async+rediss+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in nodes)
        options = limit_options(lab, url, storage_ca_file=lab.authority.cert_file)
        assert await statuses(options) == [200, 200, 429]

"""The TLS options as the gateway reads them: half a listener refused at start, the URL
each listener announces, the README's TLS-everywhere example loading as written, what
``[oslo_messaging_rabbit]`` and a transport URL make of RabbitMQ's TLS (oslo.messaging's
own reading), and the redis-py arguments each TLS storage URL gets."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
from limits.errors import ConfigurationError

from gateway import config
from gateway.config import ConfigError
from gateway.ratelimit.limiter import _storage
from gateway.tls.contexts import ClientFiles
from gateway.tls.messaging import RabbitTLS, messaging_conf
from gateway.web.server import listener_urls
from tests.support.gateway import gateway_conf

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "nova-gateway.conf"
    path.write_text(text)
    return config.load(["--config-file", str(path)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("tls_cert_file = /c.pem\n", r"\[gateway\] tls_key_file: required with tls_cert_file"),
        ("tls_key_file = /k.pem\n", r"\[gateway\] tls_cert_file: required with tls_key_file"),
        ("admin_tls_cert_file = /c.pem\n", r"admin_tls_key_file: required"),
        ("admin_tls_client_ca_file = /ca.pem\n", r"admin_tls_client_ca_file: needs"),
        ("tls_minimum_version = 1.1\n", r"tls_minimum_version"),
    ],
)
def test_half_a_listener_refuses_to_start(tmp_path: Path, options: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, "[gateway]\n" + options)


def test_each_listener_announces_its_own_scheme(tmp_path: Path) -> None:
    conf = gateway_conf({"gateway.listen": "127.0.0.1:8774", "gateway.admin_listen": "[::1]:9"})
    assert listener_urls(conf) == ("http://127.0.0.1:8774/v2.1", "http://[::1]:9")
    conf = gateway_conf(
        {
            "gateway.listen": "0.0.0.0:8774",
            "gateway.admin_listen": "127.0.0.1:9774",
            "gateway.admin_tls_cert_file": "/c.pem",
            "gateway.admin_tls_key_file": "/k.pem",
        }
    )
    assert listener_urls(conf) == ("http://0.0.0.0:8774/v2.1", "https://127.0.0.1:9774")


def readme_ini() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## TLS\n", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```ini\n(.*?)```", section, re.DOTALL)
    return str(example)


def test_the_readme_tls_everywhere_example_loads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "nova-gateway.conf"
    path.write_text(readme_ini())
    conf = config.load(["--config-file", str(path)])
    assert conf.gateway.tls_cert_file and conf.upstream.url.startswith("https://")
    assert conf.identity.keystone_ca_file == conf.upstream.ca_file
    assert conf.rate_limit.storage_url.startswith("async+rediss+sentinel://")
    # The [oslo_messaging_rabbit] section, read as the messaging sink reads it.
    rabbit = RabbitTLS.of(messaging_conf([str(path)]), conf.audit.messaging_transport_url)
    assert rabbit.enabled and rabbit.ca_file == conf.upstream.ca_file


def test_a_transport_url_query_overrides_the_section_as_oslo_messaging_reads_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nova-gateway.conf"
    path.write_text("[oslo_messaging_rabbit]\nssl = false\nssl_ca_file = /ca.pem\n")
    conf = messaging_conf([str(path)])
    assert not RabbitTLS.of(conf, "rabbit://u:p@rabbit:5671/").enabled
    assert RabbitTLS.of(conf, "rabbit://u:p@rabbit:5671/?ssl=true").enabled
    with pytest.raises(ValueError):  # oslo.messaging's own refusal of a bad value
        RabbitTLS.of(conf, "rabbit://u:p@rabbit:5671/?ssl=maybe")


def test_tls_storage_urls_get_verified_tls_for_redis_and_sentinels(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA bundle (read by redis-py when it connects)\n")
    files = ClientFiles(str(ca))
    single = _storage("async+rediss://redis:6380/0", "k", 0.25, files)
    pool = single.bridge.storage.connection_pool  # type: ignore[attr-defined]
    assert pool.connection_class.__name__ == "SSLConnection"
    assert pool.connection_kwargs["ssl_ca_certs"] == str(ca)
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert pool.connection_kwargs["ssl_check_hostname"] is True
    assert pool.connection_kwargs["ssl_min_version"] == ssl.TLSVersion.TLSv1_2

    sentinel = _storage("async+rediss+sentinel://s1:26379,s2:26379/svc", "k", 0.25, files)
    bridge = sentinel.bridge  # type: ignore[attr-defined]
    primary_pool = bridge.storage.connection_pool
    assert primary_pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    assert primary_pool.connection_kwargs["ssl_ca_certs"] == str(ca)
    for asked in bridge.sentinel.sentinels:  # the sentinels: TLS, and still short timeouts
        kwargs = asked.connection_pool.connection_kwargs
        assert asked.connection_pool.connection_class.__name__ == "SSLConnection"
        assert kwargs["ssl_ca_certs"] == str(ca) and kwargs["socket_timeout"] == 0.25

    cluster = _storage("async+rediss+cluster://n1:7000,n2:7000", "k", 0.25, files)
    assert cluster.bridge.storage.connection_kwargs["ssl_ca_certs"] == str(ca)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url", ["async+redis://redis:6379/0", "async+redis+sentinel://s:26379/svc", "memory://"]
)
def test_a_ca_file_beside_a_plain_storage_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigurationError, match="is not TLS"):
        _storage(url, "k", 0.25, ClientFiles(str(tmp_path / "ca.pem")))


def test_kombu_gets_the_files_oslo_messaging_would_give_it(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from oslo_messaging._drivers.impl_rabbit import Connection  # type: ignore[import-untyped]

    path = tmp_path / "nova-gateway.conf"
    path.write_text(
        "[oslo_messaging_rabbit]\nssl = true\nssl_ca_file = /ca.pem\n"
        "ssl_cert_file = /gw.pem\nssl_key_file = /gw.key\n"
    )
    tls = RabbitTLS.of(messaging_conf([str(path)]), "rabbit://u:p@rabbit:5671/")
    # oslo.messaging's own mapping, fed the same settings (its Connection reads them so).
    theirs = Connection._fetch_ssl_params(
        SimpleNamespace(
            ssl=True,
            ssl_version="",
            ssl_ca_file=tls.ca_file,
            ssl_cert_file=tls.cert_file,
            ssl_key_file=tls.key_file,
            ssl_server_hostname="rabbit",
        )
    )
    ours = tls.kombu_ssl()
    assert isinstance(ours, dict)
    for key in ("ca_certs", "certfile", "keyfile", "cert_reqs"):
        assert ours[key] == theirs[key], key
    # The name: kombu fills in each host's (oslo.messaging names one host, or none).
    assert ours["server_hostname"] is None
    no_ca = RabbitTLS(enabled=True, ca_file="", cert_file="", key_file="")
    assert no_ca.kombu_ssl() == {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}
    assert RabbitTLS(enabled=False, ca_file="", cert_file="", key_file="").kombu_ssl() is False

"""Configuration: the committed sample is current, bad values are refused by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway import config
from gateway.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_sample_config_is_not_stale(tmp_path: Path) -> None:
    fresh = tmp_path / "sample.conf"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--namespace",
            "nova_gateway",
            "--wrap-width",
            "79",
            "--output-file",
            str(fresh),
        ],
        check=True,
        cwd=REPO,
    )
    committed = (REPO / "etc" / "nova-gateway.conf.sample").read_text()
    assert fresh.read_text() == committed, (
        "etc/nova-gateway.conf.sample is stale: run "
        "oslo-config-generator --config-file etc/oslo-config-generator/nova-gateway.conf"
    )


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gw.conf"
    path.write_text(text)
    return str(path)


def test_file_and_flags(tmp_path: Path) -> None:
    conf = config.load(
        [
            "--config-file",
            write(
                tmp_path,
                "[upstream]\nurl = http://nova:8774/v2.1\n"
                "read_timeout = 7\n[gateway]\nworkers = 3\n",
            ),
            "--listen",
            "0.0.0.0:9000",
        ]
    )
    assert conf.upstream.url == "http://nova:8774/v2.1"
    assert conf.upstream.read_timeout == 7
    assert conf.gateway.workers == 3
    assert conf.gateway.listen == "0.0.0.0:9000"
    assert config.worker_count(conf) == 3


def test_every_option_has_help() -> None:
    for group, opts in config.list_opts():
        for opt in opts:
            assert opt.help and len(opt.help) > 10, f"[{group}] {opt.name} lacks help"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[upstream]\nread_timeout = soon\n", "read_timeout"),
        ("[upstream]\nurl = ftp://nova\n", "url"),
        ("[upstream]\nmax_version = 2.x\n", "max_version"),
        ("[gateway]\nlisten = nowhere\n", "listen"),
        ("[gateway]\nworkers = -1\n", "workers"),
        ("[gateway]\ntrusted_proxies = 10.0.0.0/8, not-an-ip\n", "trusted_proxies"),
        ("[limits]\nmax_request_body_size = -5\n", "max_request_body_size"),
        ("[policy]\nenforce_scope = false\n", "enforce_scope"),
        ("[policy]\nremote_content_type = text/xml\n", "remote_content_type"),
        ("[gateway]\nserver_header = nova\tapi\n", "server_header"),
        ("[gateway]\nserver_header = nova\x7f\n", "server_header"),
        ("[identity]\nwww_authenticate_uri = ftp://keystone\n", "www_authenticate_uri"),
    ],
)
def test_invalid_configuration_names_the_option(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(["--config-file", write(tmp_path, text)])
    assert named in str(caught.value)


def test_cli_refuses_to_start_on_bad_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config-file", write(tmp_path, "[upstream]\npool_size = 0\n")]) == 2
    assert "pool_size" in capsys.readouterr().err

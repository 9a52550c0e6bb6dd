"""Starts the shared reference labs (realnova, realkeystone) on free loopback ports.

Owns how those labs are launched and where their data goes; must never touch another run's data.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.api_client import ApiClient
from tests.support.lab_servers import replace_failed_seeds
from tests.support.processes import ServerProcess, free_port, shared_dir, start_server

COLD_SETUP_TIMEOUT = 600.0  # a cold pip install of nova takes ~80 s, more on a slow mirror
WARM_START_TIMEOUT = 90.0  # realnova with two seeds per project: ~10 s; keep ample headroom
LAB_ADMIN = "admin:admin"  # labauth's admin token (seeded labs run without Keystone)
LAB_IMAGE_ID = "c0ffee00-0000-4000-8000-000000000001"  # the image realnova seeds from
SEED_BOOT_TIMEOUT = 90.0


@dataclass(frozen=True)
class RealNova:
    """A running realnova: its ``/v2.1`` url and the seed server ids of each project."""

    url: str
    seed_servers: dict[str, list[str]]
    data_dir: Path
    process: ServerProcess

    @property
    def root_url(self) -> str:
        """The url of the versions document (``/``)."""
        return self.url.rsplit("/v2.1", 1)[0] + "/"

    def seed(self, project: str, index: int = 0) -> str:
        """A seed server id of ``project``; AssertionError if realnova seeded fewer."""
        ids = self.seed_servers.get(project, [])
        assert len(ids) > index, f"realnova seeded {ids} for {project}"
        return ids[index]


@dataclass(frozen=True)
class RealKeystone:
    """A running realkeystone: its ``/v3`` url, its fixtures.json, and a token issuer."""

    url: str
    home: Path
    fixtures: dict[str, Any]
    process: ServerProcess

    def issue_token(self, user: str, project: str | None = None, *, system: bool = False) -> str:
        """A fresh token id from ``kstoken.py`` (project-scoped, or system-scoped)."""
        scope = ["--system", user] if system else [user, project or ""]
        done = subprocess.run(
            [sys.executable, str(shared_dir() / "realkeystone" / "kstoken.py"), *scope],
            env={**os.environ, "KS_URL": self.url},
            capture_output=True,
            text=True,
            timeout=30.0,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kstoken.py {' '.join(scope)} failed: {done.stderr.strip()}")
        return done.stdout.splitlines()[0].strip()


def lab_home(lab: str) -> Path:
    """Where a lab keeps its virtualenv: ``$REALNOVA_HOME`` etc., else the documented default."""
    configured = os.environ.get(f"{lab.upper()}_HOME")
    return Path(configured) if configured else Path.home() / ".cache" / "nova-gateway" / lab


def _start_timeout(lab: str) -> float:
    venv_python = lab_home(lab) / "venv" / "bin" / "python"
    return WARM_START_TIMEOUT if venv_python.exists() else COLD_SETUP_TIMEOUT


def start_realnova(
    data_dir: Path,
    log_dir: Path,
    *,
    seed_servers: int = 2,
    keystone_url: str | None = None,
    notify_url: str | None = None,
) -> RealNova:
    """Start realnova with its data in ``data_dir`` (wiped by it) on two free ports;
    with ``notify_url`` it publishes Nova's versioned notifications there."""
    env = {
        "PORT": str(free_port()),
        "PLACEMENT_PORT": str(free_port()),
        "SEED_SERVERS": str(seed_servers),
        "NOVA_LAB_DATA": str(data_dir),
    }
    if keystone_url:
        env["KEYSTONE_URL"] = keystone_url
    if notify_url:
        env["NOVA_LAB_NOTIFY_URL"] = notify_url
    process = start_server(
        "realnova",
        [str(shared_dir() / "realnova" / "run")],
        env=env,
        ready_timeout=_start_timeout("realnova"),
        log_dir=log_dir,
    )
    try:
        seeds = _read_seeds(data_dir / "seed_servers.json") if seed_servers else {}
        if seeds:
            seeds = asyncio.run(_usable_seeds(process.url, seeds))
    except BaseException:
        process.stop()
        raise
    return RealNova(process.url, seeds, data_dir, process)


async def _usable_seeds(url: str, seeds: dict[str, list[str]]) -> dict[str, list[str]]:
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, url)
        return await replace_failed_seeds(nova, seeds, LAB_ADMIN, LAB_IMAGE_ID, SEED_BOOT_TIMEOUT)


def _read_seeds(path: Path) -> dict[str, list[str]]:
    """seed_servers.json is a list of ``[project, server_id]`` pairs."""
    seeds: dict[str, list[str]] = {}
    for project, server_id in json.loads(path.read_text(encoding="utf-8")):
        seeds.setdefault(project, []).append(server_id)
    return seeds


def start_realkeystone(home: Path, log_dir: Path) -> RealKeystone:
    """Start realkeystone with ``home`` as its REALKEYSTONE_HOME, reusing the cached venv.

    realkeystone keeps ``data/`` beside its venv and wipes it at start, so a
    private home (with a symlink to the shared venv) keeps parallel runs apart.
    """
    _link_keystone_venv(home, log_dir)
    process = start_server(
        "realkeystone",
        [str(shared_dir() / "realkeystone" / "run")],
        env={"PORT": str(free_port()), "REALKEYSTONE_HOME": str(home)},
        ready_timeout=WARM_START_TIMEOUT,
        log_dir=log_dir,
    )
    try:
        fixtures = json.loads((home / "data" / "fixtures.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        process.stop()
        raise
    return RealKeystone(process.url, home, fixtures, process)


def _link_keystone_venv(home: Path, log_dir: Path) -> None:
    """Symlink ``home/venv`` to the cached venv, creating that venv once if it is missing."""
    cached = lab_home("realkeystone")
    if not (cached / "venv" / "bin" / "python").exists():
        with (log_dir / "realkeystone-setup.log").open("w", encoding="utf-8") as log:
            subprocess.run(
                [str(shared_dir() / "realkeystone" / "setup.sh")],
                env={**os.environ, "REALKEYSTONE_HOME": str(cached)},
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=COLD_SETUP_TIMEOUT,
                check=True,
            )
    home.mkdir(parents=True, exist_ok=True)
    link = home / "venv"
    if not link.exists():
        link.symlink_to(cached / "venv", target_is_directory=True)

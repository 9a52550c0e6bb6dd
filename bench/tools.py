"""The external load and reference tools (wrk, nginx, taskset): found, installed, configured.

Owns locating those binaries (installing them with apt-get when allowed) and nginx's
configuration; it must never touch the system's own nginx configuration or service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

APT_TIMEOUT_SECONDS = 300
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in _SBIN:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _apt_install(packages: list[str]) -> str | None:
    """Install Debian packages; None on success, else why not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *packages]
    try:
        if (
            subprocess.run(
                install, env=env, capture_output=True, timeout=APT_TIMEOUT_SECONDS
            ).returncode
            == 0
        ):
            return None
        # Package lists may be missing or stale on a fresh machine: update once, retry.
        subprocess.run(
            ["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=APT_TIMEOUT_SECONDS
        )
        done = subprocess.run(install, env=env, capture_output=True, timeout=APT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return "apt-get timed out"
    return (
        None if done.returncode == 0 else f"apt-get install failed: {done.stderr.decode()[-300:]}"
    )


@dataclass(frozen=True)
class Tools:
    wrk: str | None
    nginx: str | None
    taskset: str | None
    notes: tuple[str, ...]

    def version(self, which: str) -> str:
        path = {"wrk": self.wrk, "nginx": self.nginx}.get(which)
        if path is None:
            return "absent"
        done = subprocess.run([path, "-v"], capture_output=True, timeout=10)
        text = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        return text[0] if text else "unknown"


def locate(install: bool) -> Tools:
    """Find wrk, nginx and taskset; install the missing ones from Debian if ``install``."""
    notes: list[str] = []
    missing = [name for name in ("wrk", "nginx") if _which(name) is None]
    if missing and install:
        why = _apt_install(missing)
        if why is not None:
            notes.append(f"could not install {', '.join(missing)}: {why}")
    elif missing:
        notes.append(f"{', '.join(missing)} missing and --no-install given")
    return Tools(_which("wrk"), _which("nginx"), _which("taskset"), tuple(notes))


NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream nova {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=1024;
        location / {{
            proxy_pass http://nova;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


def nginx_command(
    nginx: str, prefix: Path, port: int, upstream_port: int, workers: int = 1
) -> list[str]:
    """Write a reverse-proxy configuration under ``prefix`` and return the command to run it."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(workers=workers, prefix=prefix, port=port, upstream_port=upstream_port),
        encoding="utf-8",
    )
    # -e: the error log before the configuration is read (nginx >= 1.19.5).
    return [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "startup.log")]

"""novasim: a fast, faithful simulator of the Nova compute API (microversions 2.1-2.104).

Owns a stand-in upstream for the demo, the fast integration tests and the benchmark;
it must never be deployed in front of real users nor diverge from Nova without saying so.

What it serves (under ``/v2.1`` and ``/v2.1/{project_id}``): servers (list, detail, show,
create, update, delete), all 41 ``POST /servers/{id}/action`` keys with Nova's order of
checks, ``os-instance-actions``, flavors and limits; ``GET /`` and ``GET /v2.1/``
version documents; and the token-less control plane under ``/_sim/`` (see control.py).

Start one with ``novasim.app.create_app(SimConfig(...))`` or
``python -m novasim --port N [--seed N] [--settle-delay S]``. Tokens are realnova's:
``X-Auth-Token: <user>:<project>[:<roles,csv>[:system|domain=<id>]]`` (identity.py).
"""

from novasim.app import RECORDER, SIM, create_app
from novasim.config import SimConfig

__all__ = ["RECORDER", "SIM", "SimConfig", "create_app"]

"""Nova's API status for a vm/task state pair, checked against Nova's own table (the real
Nova's nova/api/openstack/common.py, run in its virtualenv) when it is installed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gateway.nova.states import STATE_MAP, status_from_state
from tests.conftest import skip_or_fail

NOVA_PYTHON = (
    Path(os.environ.get("REALNOVA_HOME", Path.home() / ".cache" / "nova-gateway" / "realnova"))
    / "venv"
    / "bin"
    / "python"
)
DUMP = (
    "import json, warnings; warnings.simplefilter('ignore');"
    "from nova.api.openstack import common; print(json.dumps(common._STATE_MAP))"
)


def test_the_table_is_novas() -> None:
    if not NOVA_PYTHON.exists():
        skip_or_fail(f"the real Nova's virtualenv is not installed ({NOVA_PYTHON})")
    done = subprocess.run(
        [str(NOVA_PYTHON), "-c", DUMP],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OS_NOVA_DISABLE_EVENTLET_PATCHING": "1"},
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == STATE_MAP


@pytest.mark.parametrize(
    ("vm_state", "task_state", "status"),
    [
        ("active", None, "ACTIVE"),
        ("active", "powering-off", "ACTIVE"),
        ("stopped", None, "SHUTOFF"),
        ("stopped", "powering-on", "SHUTOFF"),
        ("paused", None, "PAUSED"),
        ("active", "rebooting_hard", "HARD_REBOOT"),
        ("resized", "resize_reverting", "REVERT_RESIZE"),
        (None, None, "UNKNOWN"),
        ("nonsense", None, "UNKNOWN"),
    ],
)
def test_status_from_state(vm_state: str | None, task_state: str | None, status: str) -> None:
    assert status_from_state(vm_state, task_state) == status

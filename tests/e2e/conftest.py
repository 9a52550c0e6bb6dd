"""Session fixtures for end-to-end tests: one realnova, one realkeystone, HTTP clients.

Owns the lab lifecycle for tests/e2e; must never start a lab per test or leave one running.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import NoReturn

import aiohttp
import pytest
import pytest_asyncio

from tests.e2e.gateway_fixtures import gateway, gateway_realnova  # noqa: F401
from tests.support.api_client import ApiClient
from tests.support.labs import RealKeystone, RealNova, start_realkeystone, start_realnova
from tests.support.processes import ProcessStartError, ServerProcess, shared_dir

E2E_DIR = Path(__file__).resolve().parent
Timings = list[tuple[str, float]]
_TIMINGS: Timings = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end-to-end tests against the real Nova and Keystone from ../shared"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e carries the e2e marker (this hook sees all items)."""
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the log tail of every lab the test used (directly or not)."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            process = getattr(value, "process", None)
            if isinstance(process, ServerProcess):
                report.sections.append((f"{name} log ({process.log_path})", process.log_tail()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for what, seconds in _TIMINGS:
        terminalreporter.write_line(f"e2e timing: {what}: {seconds * 1000:.0f} ms")


def _unavailable(reason: str) -> NoReturn:
    """Skip locally; under CI=true a missing lab is a failure, not a silent skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _require_lab(lab: str) -> None:
    run = shared_dir() / lab / "run"
    if not run.is_file():
        _unavailable(f"{lab} not found at {run} (set NOVA_GATEWAY_SHARED to the shared dir)")


@pytest.fixture(scope="session")
def e2e_timings() -> Callable[[str, float], None]:
    """Record a named duration; all are printed in the terminal summary."""
    return lambda what, seconds: _TIMINGS.append((what, seconds))


@pytest.fixture(scope="session")
def lab_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the labs' stdout/stderr logs go (pytest keeps the last three sessions' dirs)."""
    return tmp_path_factory.mktemp("lab-logs")


@pytest.fixture(scope="session")
def realnova(
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Iterator[RealNova]:
    """The session's realnova (labauth tokens ``user:project``), two seeds each in p1 and p2."""
    _require_lab("realnova")
    try:
        lab = start_realnova(tmp_path_factory.mktemp("realnova-data"), lab_logs)
    except (ProcessStartError, OSError, ValueError) as exc:
        _unavailable(f"realnova did not start: {exc}")
    e2e_timings("realnova start to READY", lab.process.startup_seconds)
    yield lab
    lab.process.stop()


@pytest.fixture(scope="session")
def realkeystone(
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Iterator[RealKeystone]:
    """The session's realkeystone; ``.issue_token(user, project)`` returns a token id."""
    _require_lab("realkeystone")
    try:
        lab = start_realkeystone(tmp_path_factory.mktemp("realkeystone-home"), lab_logs)
    except (ProcessStartError, OSError, ValueError, subprocess.SubprocessError) as exc:
        _unavailable(f"realkeystone did not start: {exc}")
    e2e_timings("realkeystone start to READY", lab.process.startup_seconds)
    yield lab
    lab.process.stop()


@pytest.fixture(scope="session")
def realnova_keystone(
    realkeystone: RealKeystone,
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Iterator[RealNova]:
    """A second realnova validating real Keystone tokens (keystonemiddleware); no seeds.

    Costs ~6 s and ~400 MB more: started only when a test asks for the whole real chain.
    """
    try:
        lab = start_realnova(
            tmp_path_factory.mktemp("realnova-ks-data"),
            lab_logs,
            seed_servers=0,
            keystone_url=realkeystone.url,
        )
    except (ProcessStartError, OSError, ValueError) as exc:
        _unavailable(f"realnova (KEYSTONE_URL mode) did not start: {exc}")
    e2e_timings("realnova (keystone mode, no seeds) start to READY", lab.process.startup_seconds)
    yield lab
    lab.process.stop()


@pytest.fixture(scope="session")
def realnova_bus(
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Iterator[RealNova]:
    """A realnova that publishes its versioned notifications to the real RabbitMQ (exchange
    nova, topic versioned_notifications), two seeds each in p1 and p2.

    Costs ~6 s more: started only by the server-facts tests. Nova also fills its own
    versioned_notifications.info queue; what this session's Nova put there is purged at
    the end (those messages are ours).
    """
    from tests.support.rabbit import VERSIONED_QUEUE, purge, require_rabbit

    rabbit = require_rabbit()
    try:
        lab = start_realnova(
            tmp_path_factory.mktemp("realnova-bus-data"), lab_logs, notify_url=rabbit
        )
    except (ProcessStartError, OSError, ValueError) as exc:
        _unavailable(f"realnova (NOVA_LAB_NOTIFY_URL mode) did not start: {exc}")
    e2e_timings("realnova (notifying) start to READY", lab.process.startup_seconds)
    yield lab
    lab.process.stop()
    purge(VERSIONED_QUEUE)


@pytest_asyncio.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session per test (each test has its own event loop)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def nova(realnova: RealNova, http_session: aiohttp.ClientSession) -> ApiClient:
    """A client for the session's realnova ``/v2.1``."""
    return ApiClient(http_session, realnova.url)


@pytest.fixture
def nova_chain(realnova_keystone: RealNova, http_session: aiohttp.ClientSession) -> ApiClient:
    """A client for the realnova that validates real Keystone tokens."""
    return ApiClient(http_session, realnova_keystone.url)


@pytest.fixture
def keystone(realkeystone: RealKeystone, http_session: aiohttp.ClientSession) -> ApiClient:
    """A client for the session's realkeystone ``/v3``."""
    return ApiClient(http_session, realkeystone.url)

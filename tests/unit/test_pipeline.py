"""The request pipeline's order (gateway/pipeline.py): the checks Nova also makes run in
the order Nova makes them (nova-actions.md §0, read where it lives), the README's stage
table lists STAGES as they are, and only the stages after the lookup decide on a server's
facts."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from gateway import pipeline
from tests.unit.test_docs import README, section

# Nova's numbered steps (§0) and the stage that makes each check in the gateway. Steps 7
# (the body read again) and 14 (success) check nothing of their own.
NOVA_STEPS = {
    "Body size": "receive_body",
    "Authentication": "authenticate",
    "Routing": "check_forwardable",
    "Microversion header": "negotiate_version",
    "Content-Type": "check_content_type",
    "Action lookup": "dispatch_action",
    "URL project_id": "check_url_project",
    "`@wsgi.api_version` gate": "check_action_version",
    "JSON-Schema validation": "validate_body",
    "Server lookup": "look_up_server",
    "Policy": "authorize",
    "Compute-API decorators": "check_lock",
}
NAMES = [stage.__name__ for stage in pipeline.STAGES]


def nova_order(shared_dir: Path) -> list[str]:
    text = (shared_dir / "nova" / "nova-actions.md").read_text(encoding="utf-8")
    start = text.index("## 0. How one action request is processed")
    steps = text[start : text.index("\n## ", start + 1)]
    return re.findall(r"^\d+\. \*\*(.+?)\*\*", steps, re.MULTILINE)


def test_novas_checks_run_in_novas_order(shared_dir: Path) -> None:
    order = [title for title in nova_order(shared_dir) if title in NOVA_STEPS]
    assert order == list(NOVA_STEPS), "§0 changed: map its steps again"
    positions = [NAMES.index(NOVA_STEPS[title]) for title in order]
    assert positions == sorted(positions), [NOVA_STEPS[title] for title in order]
    # Within the compute API's decorators: the lock before the state (§0 step 13).
    assert NAMES.index("check_lock") < NAMES.index("check_state")


def test_the_readme_stage_table_is_the_stage_list() -> None:
    table = section(README, "## What happens to a request")
    assert re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE) == NAMES


def test_only_the_stages_after_the_lookup_rest_on_server_facts() -> None:
    assert NAMES[pipeline.ON_SERVER_FACTS] == "look_up_server"
    assert set(NAMES[pipeline.ON_SERVER_FACTS :]) == {
        "look_up_server",
        "authorize",
        "check_lock",
        "check_state",
        "authorize_after_state",
    }


def test_every_stage_is_listed_once_and_only_those_that_wait_are_coroutines() -> None:
    assert len(NAMES) == len(set(NAMES))
    waiting = {name for name, stage in zip(NAMES, pipeline.STAGES, strict=True)
               if inspect.iscoroutinefunction(stage)}  # fmt: skip
    assert waiting == {
        "receive_body",
        "check_audit_ready",
        "authenticate",
        "look_up_server",
    }

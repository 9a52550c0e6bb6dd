"""The novasim conformance sequence as data, and how two answers to one step are compared.

Owns the steps (request, expected settled status, documented divergences) and the pure
normalisation and comparison of answers; must never send a request or start a process.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MEMBER = "alice:p1"
MEMBER_2 = "bob:p1"
READER = "carol:p1:reader"
MANAGER = "mgr:p1:manager"
ADMIN = "admin:admin"
OTHER_PROJECT = "eve:p2"
STOCK_IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"  # survives the lab's backup rotation
MISSING_ID = "00000000-0000-4000-8000-00000000dead"
SERVER_NAME = "conformance-a"
GONE = "(deleted)"  # a settle target: the server answers 404
LATEST = "latest"
VIEW_VERSION = "2.73"  # the settled view: every §A.9 field, no newer noise
JSON = "application/json"


class Base(enum.Enum):
    """What a step's path is relative to."""

    API = "api"  # the ``/v2.1`` url
    ROOT = "root"  # the versions document's url


@dataclass(frozen=True)
class Known:
    """A documented divergence: the statuses each side answers, and why that is accepted."""

    novasim_status: int
    realnova_status: int
    reason: str


@dataclass(frozen=True)
class Step:
    """One request sent to both, and how its outcome is compared.

    ``path`` may hold ``{id}`` (the side's own conformance server), ``{missing}`` and
    ``{create_request}`` (the request id of the side's create). ``settle``: the status both
    sides must reach (task_state null) after a 2xx answer before the documents are compared.
    """

    label: str
    method: str = "GET"
    path: str = "/servers/{id}"
    token: str | None = MEMBER
    payload: bytes | None = None
    content_type: str | None = None
    microversion: str | None = None
    base: Base = Base.API
    settle: str | None = None
    compare_message: bool = True
    known: Known | None = None

    @property
    def targets_server(self) -> bool:
        return "{id}" in self.path

    @property
    def action_key(self) -> str | None:
        """The action's key for ``POST /servers/{id}/action`` with a one-key JSON object."""
        if not self.path.endswith("/action") or self.payload is None:
            return None
        try:
            body = json.loads(self.payload)
        except ValueError:
            return None
        return next(iter(body)) if isinstance(body, dict) and len(body) == 1 else None

    def describe(self) -> str:
        payload = (self.payload or b"").decode("utf-8", "replace")
        return (
            f"[{self.label}] {self.method} {self.base.value}:{self.path} "
            f"mv={self.microversion or '-'} token={self.token} ct={self.content_type} "
            f"body={payload[:80]}"
        )


def action(
    label: str,
    body: Any,
    *,
    token: str | None = MEMBER,
    microversion: str | None = None,
    settle: str | None = None,
    content_type: str = JSON,
    known: Known | None = None,
    compare_message: bool = True,
) -> Step:
    """``POST /servers/{id}/action`` with ``body`` as JSON (bytes are sent as they are)."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Step(
        label,
        "POST",
        "/servers/{id}/action",
        token=token,
        payload=payload,
        content_type=content_type,
        microversion=microversion,
        settle=settle,
        known=known,
        compare_message=compare_message,
    )


def show(label: str, microversion: str | None, token: str | None = MEMBER) -> Step:
    return Step(label, microversion=microversion, token=token)


CREATE = Step(
    "create server at 2.1",
    "POST",
    "/servers",
    payload=json.dumps(
        {"server": {"name": SERVER_NAME, "imageRef": STOCK_IMAGE, "flavorRef": "1"}}
    ).encode(),
    content_type=JSON,
    settle="ACTIVE",
)

NAME_FILTER = f"name=%5E{SERVER_NAME}%24"  # ^conformance-a$: the session's other servers differ

REFUSALS = [
    action("action body {} (zero keys)", {}),
    action("action body with two keys", {"pause": None, "unpause": None}),
    action("unknown action key", {"fly": None}),
    action("action body a JSON list []", []),
    action("action body a one-element list", ["pause"]),
    action("action body JSON null", None),
    action("action body a JSON number", 42),
    action("action body a JSON string", "pause"),
    action("action body not JSON", b'{"pause": '),
    action("action body with text/plain", {"pause": None}, content_type="text/plain"),
    show("microversion 2.0 (below the minimum)", "2.0"),
    show("microversion 2.200 (above the maximum)", "2.200"),
    show("microversion 3.1 (unknown major)", "3.1"),
    show("microversion 'foo' (not a version)", "foo"),
    action("pause at microversion 2.1000", {"pause": None}, microversion="2.1000"),
    Step("show an unknown server", path="/servers/{missing}"),
    Step(
        "pause an unknown server",
        "POST",
        "/servers/{missing}/action",
        payload=b'{"pause": null}',
        content_type=JSON,
    ),
    Step("no token", token=None),
]

STEPS: list[Step] = [
    CREATE,
    # Version documents (no token).
    Step("versions document", path="/", token=None, base=Base.ROOT),
    Step("v2 version document", path="/v2", token=None, base=Base.ROOT),
    Step("v2.1 version document", path="", token=None),
    Step("v2.1/ version document", path="/", token=None),
    # Show, list and detail at several microversions.
    show("show at 2.1", "2.1"),
    show("show at 2.9", "2.9"),
    show("show at 2.47", "2.47"),
    show("show at 2.73", "2.73"),
    show("show at latest", LATEST),
    show("show as admin at latest", LATEST, token=ADMIN),
    Step("list at 2.1", path=f"/servers?{NAME_FILTER}", microversion="2.1"),
    Step("list at latest", path=f"/servers?{NAME_FILTER}", microversion=LATEST),
    Step("detail at 2.1", path=f"/servers/detail?{NAME_FILTER}", microversion="2.1"),
    Step("detail at 2.47", path=f"/servers/detail?{NAME_FILTER}", microversion="2.47"),
    Step("detail at latest", path=f"/servers/detail?{NAME_FILTER}", microversion=LATEST),
    Step(
        "detail filtered on status PAUSED",
        path=f"/servers/detail?{NAME_FILTER}&status=PAUSED",
        microversion="2.73",
    ),
    # Locks: owner, another member, reason, admin, unlock_override.
    action("lock by the owner", {"lock": None}),
    show("show locked at 2.9", "2.9"),
    action("pause while owner-locked", {"pause": None}),
    Step("delete while locked", "DELETE"),
    action("unlock by another project member", {"unlock": None}, token=MEMBER_2),
    action("lock with a reason at 2.73", {"lock": {"locked_reason": "conf"}}, microversion="2.73"),
    show("show locked_reason at 2.73", "2.73"),
    action("unlock at 2.73", {"unlock": None}, microversion="2.73"),
    action("lock by admin", {"lock": None}, token=ADMIN),
    action("unlock by the owner of an admin lock (unlock_override)", {"unlock": None}),
    action("pause while admin-locked", {"pause": None}),
    action("unlock by admin", {"unlock": None}, token=ADMIN),
    # Pause, suspend, stop, reboot and their state refusals.
    action("pause", {"pause": None}, settle="PAUSED"),
    Step(
        "detail filtered on status PAUSED (paused)",
        path=f"/servers/detail?{NAME_FILTER}&status=PAUSED",
        microversion="2.73",
    ),
    action("pause while PAUSED", {"pause": None}),
    action("suspend while PAUSED", {"suspend": None}),
    action("unpause", {"unpause": None}, settle="ACTIVE"),
    action("unpause while ACTIVE", {"unpause": None}),
    action("suspend", {"suspend": None}, settle="SUSPENDED"),
    action("reboot SOFT while SUSPENDED", {"reboot": {"type": "SOFT"}}),
    action("resume", {"resume": None}, settle="ACTIVE"),
    action("resume while ACTIVE", {"resume": None}),
    action("os-stop", {"os-stop": None}, settle="SHUTOFF"),
    action("os-stop while SHUTOFF", {"os-stop": None}),
    action("reboot SOFT while SHUTOFF", {"reboot": {"type": "SOFT"}}),
    action("os-start", {"os-start": None}, settle="ACTIVE"),
    action("os-start while ACTIVE", {"os-start": None}),
    action("reboot SOFT", {"reboot": {"type": "SOFT"}}, settle="ACTIVE"),
    action("reboot HARD", {"reboot": {"type": "HARD"}}, settle="ACTIVE"),
    action("reboot with an unknown type", {"reboot": {"type": "WARM"}}),
    # Rescue, password, console, images.
    action("rescue", {"rescue": None}, settle="RESCUE"),
    action("rescue while RESCUE", {"rescue": None}),
    action("pause while RESCUE", {"pause": None}),
    action("unrescue", {"unrescue": None}, settle="ACTIVE"),
    action("unrescue while ACTIVE", {"unrescue": None}),
    action("changePassword", {"changePassword": {"adminPass": "c0nformance"}}, settle="ACTIVE"),
    action("os-getConsoleOutput", {"os-getConsoleOutput": {"length": 5}}),
    action("os-getConsoleOutput, all lines", {"os-getConsoleOutput": {}}),
    action(
        "createImage at 2.44",
        {"createImage": {"name": "conf-snap-244"}},
        microversion="2.44",
        settle="ACTIVE",
    ),
    action(
        "createImage at 2.45",
        {"createImage": {"name": "conf-snap-245"}},
        microversion="2.45",
        settle="ACTIVE",
    ),
    # Resize, confirm, revert.
    action("resize to the same flavor", {"resize": {"flavorRef": "1"}}),
    action("confirmResize while ACTIVE", {"confirmResize": None}),
    action("resize to flavor 2", {"resize": {"flavorRef": "2"}}, settle="VERIFY_RESIZE"),
    show("show VERIFY_RESIZE at 2.1 (flavor link)", "2.1"),
    action("resize while VERIFY_RESIZE", {"resize": {"flavorRef": "3"}}),
    action("confirmResize", {"confirmResize": None}, settle="ACTIVE"),
    action("resize back to flavor 1", {"resize": {"flavorRef": "1"}}, settle="VERIFY_RESIZE"),
    action("revertResize", {"revertResize": None}, settle="ACTIVE"),
    action("revertResize while ACTIVE", {"revertResize": None}),
    # Rebuild.
    action("rebuild at 2.1", {"rebuild": {"imageRef": STOCK_IMAGE}}, settle="ACTIVE"),
    action(
        "rebuild at latest",
        {"rebuild": {"imageRef": STOCK_IMAGE}},
        microversion=LATEST,
        settle="ACTIVE",
    ),
    action("rebuild with an unknown image", {"rebuild": {"imageRef": MISSING_ID}}),
    # Shelve (offloaded at once in the lab) and unshelve.
    action("shelve", {"shelve": None}, settle="SHELVED_OFFLOADED"),
    action("pause while SHELVED_OFFLOADED", {"pause": None}),
    action("shelve while SHELVED_OFFLOADED", {"shelve": None}),
    action("unshelve", {"unshelve": None}, settle="ACTIVE"),
    # Admin state reset, then the hard reboot ERROR allows.
    action("os-resetState by a member", {"os-resetState": {"state": "error"}}),
    action(
        "os-resetState to error", {"os-resetState": {"state": "error"}}, token=ADMIN, settle="ERROR"
    ),
    action("reboot SOFT while ERROR", {"reboot": {"type": "SOFT"}}),
    action("reboot HARD while ERROR", {"reboot": {"type": "HARD"}}, settle="ACTIVE"),
    action(
        "os-resetState to active",
        {"os-resetState": {"state": "active"}},
        token=ADMIN,
        settle="ACTIVE",
    ),
    # Other callers.
    show("show by another project", LATEST, token=OTHER_PROJECT),
    action("pause by another project", {"pause": None}, token=OTHER_PROJECT),
    show("show by a reader", "2.73", token=READER),
    action("pause by a reader", {"pause": None}, token=READER),
    action("migrate by a member", {"migrate": None}),
    action(
        "migrate by a project manager", {"migrate": None}, token=MANAGER, settle="VERIFY_RESIZE"
    ),
    action("confirmResize after migrate", {"confirmResize": None}, settle="ACTIVE"),
    # Malformed requests.
    *REFUSALS,
    # Documented divergences (lab artefacts and what novasim does not simulate).
    action(
        "evacuate (admin)",
        {"evacuate": {}},
        token=ADMIN,
        microversion="2.29",
        settle="ACTIVE",
        known=Known(202, 400, "the lab's computes are always up: Nova refuses to evacuate"),
    ),
    action(
        "os-getSPICEConsole at 2.5",
        {"os-getSPICEConsole": {"type": "spice-html5"}},
        microversion="2.5",
        known=Known(200, 400, "the lab config disables SPICE; novasim answers a URL"),
    ),
    action(
        "os-getSerialConsole at 2.5",
        {"os-getSerialConsole": {"type": "serial"}},
        microversion="2.5",
        known=Known(200, 400, "the lab config disables serial consoles; novasim answers a URL"),
    ),
    action(
        "addSecurityGroup",
        {"addSecurityGroup": {"name": "default"}},
        known=Known(202, 500, "the lab's Neutron fixture lacks find_resource (500)"),
    ),
    action(
        "removeSecurityGroup",
        {"removeSecurityGroup": {"name": "default"}},
        known=Known(202, 500, "the lab's Neutron fixture lacks find_resource (500)"),
    ),
    # Instance actions, then delete.
    Step("instance actions at 2.1", path="/servers/{id}/os-instance-actions"),
    Step(
        "instance actions at 2.58",
        path="/servers/{id}/os-instance-actions",
        microversion="2.58",
    ),
    Step(
        "instance action of the create at 2.51",
        path="/servers/{id}/os-instance-actions/{create_request}",
        microversion="2.51",
    ),
    Step(
        "instance actions by another project",
        path="/servers/{id}/os-instance-actions",
        token=OTHER_PROJECT,
    ),
    Step("delete", "DELETE", settle=GONE),
    show("show after delete", LATEST),
    Step("delete again", "DELETE"),
]


# --- comparing two answers -------------------------------------------------------------

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_HOST_URL = re.compile(r"https?://127\.0\.0\.1:\d+")
_REQUEST_ID = re.compile(rf"req-{_UUID}")
_ANY_UUID = re.compile(_UUID)
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_SECRETS = frozenset({"adminPass"})


def normalise_text(text: str, own_ids: Mapping[str, str]) -> str:
    """Host urls, request ids, the side's own ids (named) and other uuids replaced."""
    text = _HOST_URL.sub("<host>", text)
    text = _REQUEST_ID.sub("<request>", text)
    for value, name in own_ids.items():
        text = text.replace(value, f"<{name}>")
    text = _ANY_UUID.sub("<uuid>", text)
    return _TIME.sub("<time>", text)


def normalise(value: Any, own_ids: Mapping[str, str]) -> Any:
    """A JSON value with every volatile string (ids, urls, times, passwords) replaced."""
    if isinstance(value, dict):
        return {
            key: "<secret>" if key in _SECRETS else normalise(item, own_ids)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [normalise(item, own_ids) for item in value]
    if isinstance(value, str):
        return normalise_text(value, own_ids)
    return value


def fault_of(body: Any) -> tuple[str, str] | None:
    """Nova's fault body ``{"<name>": {"code": N, "message": "..."}}`` as (name, message)."""
    if isinstance(body, dict) and len(body) == 1:
        name, detail = next(iter(body.items()))
        if isinstance(detail, dict) and "message" in detail:
            return name, str(detail["message"])
    return None


def _flavor_shape(flavor: Any) -> Any:
    """Before 2.47 ``{id, links}`` (the id compared); from 2.47 the embedded dict itself."""
    if not isinstance(flavor, dict):
        return flavor
    if "links" in flavor:
        return {"keys": sorted(flavor), "id": flavor.get("id")}
    return flavor


def _image_shape(image: Any) -> Any:
    """``""`` for volume-backed servers; else the keys, the id and any properties."""
    if not isinstance(image, dict):
        return image
    return {
        "keys": sorted(image),
        "id": image.get("id"),
        "properties": image.get("properties"),
    }


def server_facts(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a server document (nova-actions.md §A.9) this conformance compares."""
    facts: dict[str, Any] = {
        "keys": sorted(doc),
        "status": doc.get("status"),
        "OS-EXT-STS:vm_state": doc.get("OS-EXT-STS:vm_state"),
        "OS-EXT-STS:task_state": doc.get("OS-EXT-STS:task_state"),
        "tenant_id": doc.get("tenant_id"),
        "user_id": doc.get("user_id"),
        "locked": doc.get("locked", "(absent)"),
        "locked_reason": doc.get("locked_reason", "(absent)"),
        "launched_at": (
            "(absent)"
            if "OS-SRV-USG:launched_at" not in doc
            else "null"
            if doc["OS-SRV-USG:launched_at"] is None
            else "set"
        ),
        "flavor": _flavor_shape(doc.get("flavor")),
        "image": _image_shape(doc.get("image")),
    }
    return facts


def _server_docs(body: Any) -> list[Mapping[str, Any]] | None:
    """The server document(s) of a show/list/detail/rebuild answer, else None."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("server"), dict) and "status" in body["server"]:
        return [body["server"]]
    servers = body.get("servers")
    if isinstance(servers, list):
        return [s for s in servers if isinstance(s, dict)]
    return None


@dataclass(frozen=True)
class Observed:
    """One side's answer to one step, as far as the comparison needs it."""

    status: int
    body: Any
    location: bool
    media_type: str
    own_ids: Mapping[str, str] = field(default_factory=dict)


def differences(
    novasim: Observed, realnova: Observed, compare_message: bool
) -> Iterator[tuple[str, Any, Any]]:
    """(what, novasim's, realnova's) for every compared aspect that differs."""
    if novasim.status != realnova.status:
        yield "status", novasim.status, realnova.status
    sim_fault, real_fault = fault_of(novasim.body), fault_of(realnova.body)
    if (sim_fault is None) != (real_fault is None):
        yield "fault body", sim_fault, real_fault
    elif sim_fault is not None and real_fault is not None:
        if sim_fault[0] != real_fault[0]:
            yield "fault name", sim_fault[0], real_fault[0]
        sim_message = normalise_text(sim_fault[1], novasim.own_ids)
        real_message = normalise_text(real_fault[1], realnova.own_ids)
        if compare_message and sim_message != real_message:
            yield "fault message", sim_message, real_message
        return
    if novasim.location != realnova.location:
        yield "Location header present", novasim.location, realnova.location
    if novasim.media_type != realnova.media_type:
        yield "Content-Type", novasim.media_type, realnova.media_type
    yield from body_differences(novasim, realnova)


def body_differences(novasim: Observed, realnova: Observed) -> Iterator[tuple[str, Any, Any]]:
    """Server documents by their facts; any other JSON body whole, normalised."""
    sim_docs, real_docs = _server_docs(novasim.body), _server_docs(realnova.body)
    if sim_docs is not None and real_docs is not None:
        if len(sim_docs) != len(real_docs):
            yield "server count", len(sim_docs), len(real_docs)
        for sim_doc, real_doc in zip(sim_docs, real_docs, strict=False):
            yield from facts_differences(server_facts(sim_doc), server_facts(real_doc))
        return
    if isinstance(novasim.body, bytes) or isinstance(realnova.body, bytes):
        if type(novasim.body) is not type(realnova.body):
            yield "body kind", _kind(novasim.body), _kind(realnova.body)
        return
    sim_body = normalise(novasim.body, novasim.own_ids)
    real_body = normalise(realnova.body, realnova.own_ids)
    if sim_body != real_body:
        yield "body", sim_body, real_body


def facts_differences(
    sim_facts: Mapping[str, Any], real_facts: Mapping[str, Any]
) -> Iterator[tuple[str, Any, Any]]:
    for name, sim_value in sim_facts.items():
        real_value = real_facts.get(name)
        if name == "keys" and sim_value != real_value:
            sim_keys, real_keys = set(sim_value), set(real_value or ())
            yield (
                "server keys (only novasim / only realnova)",
                sorted(sim_keys - real_keys),
                sorted(real_keys - sim_keys),
            )
        elif sim_value != real_value:
            yield f"server {name}", sim_value, real_value


def _kind(body: Any) -> str:
    return f"{len(body)} raw bytes" if isinstance(body, bytes) else "JSON"

"""Owns the novasim conformance sequence as data and the pure comparison of two answers.
Must never send a request or start a process (test_novasim_conformance.py does that).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Iterator, Mapping
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
NAME_FILTER = f"name=%5E{SERVER_NAME}%24"  # ^conformance-a$: other tests' servers stay out
GONE = "(deleted)"  # a settle target: the server answers 404
LATEST = "latest"
VIEW_VERSION = "2.73"  # the settled view: every nova-actions.md §A.9 field
JSON = "application/json"
Difference = tuple[str, Any, Any]  # (what, novasim's, realnova's)


class Base(enum.Enum):
    """What a step's path is relative to."""

    API = "api"  # the ``/v2.1`` url
    ROOT = "root"  # the versions document's url


@dataclass(frozen=True)
class Known:
    """A documented divergence and why it is accepted.

    ``statuses`` (novasim's, realnova's): the whole answer differs, with these statuses.
    ``fields``: JSON keys (at any depth of the body) whose values differ; the rest agrees.
    """

    reason: str
    statuses: tuple[int, int] | None = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One request sent to both, and how its outcome is compared.

    ``path`` may hold ``{id}`` (the side's own conformance server), ``{missing}`` and
    ``{create_request}`` (the request id of the side's create). ``settle``: the status a
    side must reach (task_state null) after a 2xx answer before the documents are compared.
    ``volatile``: server facts the lab's timing decides at this step (not compared).
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
    known: Known | None = None
    volatile: tuple[str, ...] = ()

    @property
    def targets_server(self) -> bool:
        return "{id}" in self.path

    @property
    def action_key(self) -> str | None:
        """The key of a ``POST /servers/{id}/action`` whose body is a one-key JSON object."""
        if not self.path.endswith("/action") or self.payload is None:
            return None
        try:
            body = json.loads(self.payload)
        except ValueError:
            return None
        return next(iter(body)) if isinstance(body, dict) and len(body) == 1 else None

    def describe(self) -> str:
        """One line that lets a reader replay the request by hand."""
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
    )


def show(label: str, microversion: str | None, token: str | None = MEMBER) -> Step:
    """``GET /servers/{id}`` at ``microversion``."""
    return Step(label, microversion=microversion, token=token)


def listing(label: str, collection: str, microversion: str, query: str = "") -> Step:
    """``GET /servers`` or ``/servers/detail`` narrowed to the conformance server's name."""
    return Step(label, path=f"{collection}?{NAME_FILTER}{query}", microversion=microversion)


CREATE = Step(
    "create at 2.1",
    "POST",
    "/servers",
    payload=json.dumps(
        {"server": {"name": SERVER_NAME, "imageRef": STOCK_IMAGE, "flavorRef": "1"}}
    ).encode(),
    content_type=JSON,
)
SECURITY_GROUPS_500 = "the lab's Neutron fixture lacks find_resource: 500 AttributeError"

STEPS: list[Step] = [
    CREATE,
    Step(
        "show while building",
        microversion="2.73",
        settle="ACTIVE",
        volatile=("OS-EXT-STS:task_state",),  # scheduling/networking/spawning: lab timing
        known=Known(
            "novasim gap: it shows the default security group from the create on; Nova lists "
            "security_groups from the server's Neutron ports, which BUILD has not bound yet",
            fields=("security_groups",),
        ),
    ),
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
    listing("list at 2.1", "/servers", "2.1"),
    listing("list at latest", "/servers", LATEST),
    listing("detail at 2.1", "/servers/detail", "2.1"),
    listing("detail at 2.47", "/servers/detail", "2.47"),
    listing("detail at latest", "/servers/detail", LATEST),
    listing("detail filtered on status PAUSED", "/servers/detail", "2.73", "&status=PAUSED"),
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
    listing(
        "detail filtered on status PAUSED, paused", "/servers/detail", "2.73", "&status=PAUSED"
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
    action("os-getConsoleOutput, 5 lines", {"os-getConsoleOutput": {"length": 5}}),
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
    # Rebuild (the answer is a server document).
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
    # Admin state reset, and the hard reboot that ERROR allows.
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
    # Malformed requests: keys, bodies, microversions, content types, ids, tokens.
    action("action body {} (zero keys)", {}),
    action("action body with two keys", {"pause": None, "unpause": None}),
    action("unknown action key", {"fly": None}),
    action("action body a JSON list []", []),
    action("action body a one-element list", ["pause"]),
    action("action body JSON null", None),
    action("action body a JSON number", 42),
    action("action body a JSON string", "pause"),
    action("action body not JSON", b'{"pause": '),
    action(
        "pause with Content-Type application/xml", {"pause": None}, content_type="application/xml"
    ),
    action(
        "os-getConsoleOutput with Content-Type text/plain (accepted as JSON)",
        {"os-getConsoleOutput": {"length": 1}},
        content_type="text/plain",
    ),
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
    show("show without a token", None, token=None),
    # Instance actions: every action so far, newest first.
    Step("instance actions at 2.1", path="/servers/{id}/os-instance-actions"),
    Step("instance actions at 2.58", path="/servers/{id}/os-instance-actions", microversion="2.58"),
    Step(
        "instance action of the create at 2.51",
        path="/servers/{id}/os-instance-actions/{create_request}",
        microversion="2.51",
        known=Known(
            "novasim runs no compute-side events: [] where Nova lists "
            "compute__do_build_and_run_instance",
            fields=("events",),
        ),
    ),
    Step(
        "instance actions by another project",
        path="/servers/{id}/os-instance-actions",
        token=OTHER_PROJECT,
    ),
    # Documented divergences: lab artefacts and what novasim does not simulate.
    action(
        "evacuate by admin at 2.29",
        {"evacuate": {}},
        token=ADMIN,
        microversion="2.29",
        settle="ACTIVE",
        known=Known("the lab's computes are always up: 400 'still in use'", statuses=(200, 400)),
    ),
    action(
        "os-getSPICEConsole at 2.5",
        {"os-getSPICEConsole": {"type": "spice-html5"}},
        microversion="2.5",
        known=Known("the lab disables SPICE; novasim answers a URL", statuses=(200, 400)),
    ),
    action(
        "os-getSerialConsole at 2.5",
        {"os-getSerialConsole": {"type": "serial"}},
        microversion="2.5",
        known=Known("the lab disables serial consoles; novasim answers a URL", statuses=(200, 400)),
    ),
    action(
        "addSecurityGroup",
        {"addSecurityGroup": {"name": "conformance"}},
        known=Known(SECURITY_GROUPS_500, statuses=(202, 500)),
    ),
    action(
        "removeSecurityGroup",
        {"removeSecurityGroup": {"name": "conformance"}},
        known=Known(SECURITY_GROUPS_500, statuses=(202, 500)),
    ),
    # Delete.
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
    """Host urls, request ids, the side's own ids (named), other uuids and times replaced."""
    text = _HOST_URL.sub("<host>", text)
    text = _REQUEST_ID.sub("<request>", text)
    for value, name in own_ids.items():
        text = text.replace(value, f"<{name}>")
    text = _ANY_UUID.sub("<uuid>", text)
    return _TIME.sub("<time>", text)


def normalise(value: Any, own_ids: Mapping[str, str], dropped: Iterable[str] = ()) -> Any:
    """A JSON value with volatile strings replaced, passwords hidden, ``dropped`` keys gone."""
    dropped = frozenset(dropped)
    if isinstance(value, dict):
        return {
            key: "<secret>" if key in _SECRETS else normalise(item, own_ids, dropped)
            for key, item in value.items()
            if key not in dropped
        }
    if isinstance(value, list):
        return [normalise(item, own_ids, dropped) for item in value]
    if isinstance(value, str):
        return normalise_text(value, own_ids)
    return value


def fault_of(body: Any) -> tuple[str, str] | None:
    """Nova's fault body ``{"<name>": {"code": N, "message": "..."}}`` as (name, message).

    ``{"instanceAction": {..., "message": null}}`` has the same outline: the code decides.
    """
    if isinstance(body, dict) and len(body) == 1:
        name, detail = next(iter(body.items()))
        if isinstance(detail, dict) and {"code", "message"} <= detail.keys():
            return name, str(detail["message"])
    return None


def _flavor_shape(flavor: Any) -> Any:
    """Before 2.47 ``{id, links}`` (keys and id compared); from 2.47 the embedded dict."""
    if isinstance(flavor, dict) and "links" in flavor:
        return {"keys": sorted(flavor), "id": flavor.get("id")}
    return flavor


def _image_shape(image: Any) -> Any:
    """``""`` for volume-backed servers; else the keys, the id and any properties."""
    if not isinstance(image, dict):
        return image
    return {"keys": sorted(image), "id": image.get("id"), "properties": image.get("properties")}


def _presence(doc: Mapping[str, Any], key: str) -> str:
    if key not in doc:
        return "(absent)"
    return "null" if doc[key] is None else "set"


def server_facts(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a server document (nova-actions.md §A.9) this conformance compares."""
    return {
        "keys": sorted(doc),
        "status": doc.get("status"),
        "OS-EXT-STS:vm_state": doc.get("OS-EXT-STS:vm_state"),
        "OS-EXT-STS:task_state": doc.get("OS-EXT-STS:task_state"),
        "tenant_id": doc.get("tenant_id"),
        "user_id": doc.get("user_id"),
        "locked": doc.get("locked", "(absent)"),
        "locked_reason": doc.get("locked_reason", "(absent)"),
        "OS-SRV-USG:launched_at": _presence(doc, "OS-SRV-USG:launched_at"),
        "flavor": _flavor_shape(doc.get("flavor")),
        "image": _image_shape(doc.get("image")),
        "name": doc.get("name"),
        "description": doc.get("description", "(absent)"),
    }


def server_docs(body: Any) -> list[Mapping[str, Any]] | None:
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
    body: Any  # parsed JSON, or the raw bytes of a non-JSON (or empty) body
    location: bool
    media_type: str
    own_ids: Mapping[str, str] = field(default_factory=dict)


def differences(
    novasim: Observed,
    realnova: Observed,
    *,
    dropped: Iterable[str] = (),
    volatile: Iterable[str] = (),
) -> Iterator[Difference]:
    """Every compared aspect that differs: status, fault name and message, headers, body."""
    if novasim.status != realnova.status:
        yield "status", novasim.status, realnova.status
    sim_fault, real_fault = fault_of(novasim.body), fault_of(realnova.body)
    if sim_fault is not None or real_fault is not None:
        if sim_fault is None or real_fault is None:
            yield "fault body", sim_fault, real_fault
            return
        if sim_fault[0] != real_fault[0]:
            yield "fault name", sim_fault[0], real_fault[0]
        sim_message = normalise_text(sim_fault[1], novasim.own_ids)
        real_message = normalise_text(real_fault[1], realnova.own_ids)
        if sim_message != real_message:
            yield "fault message", sim_message, real_message
        return
    if novasim.location != realnova.location:
        yield "Location header present", novasim.location, realnova.location
    if novasim.media_type != realnova.media_type:
        yield "Content-Type", novasim.media_type, realnova.media_type
    yield from _body_differences(novasim, realnova, frozenset(dropped), frozenset(volatile))


def _body_differences(
    novasim: Observed, realnova: Observed, dropped: frozenset[str], volatile: frozenset[str]
) -> Iterator[Difference]:
    """Server documents by their facts; any other JSON body whole, normalised."""
    sim_docs, real_docs = server_docs(novasim.body), server_docs(realnova.body)
    if sim_docs is not None and real_docs is not None:
        if len(sim_docs) != len(real_docs):
            yield "server count", len(sim_docs), len(real_docs)
        for sim_doc, real_doc in zip(sim_docs, real_docs, strict=False):
            sim_facts = server_facts({k: v for k, v in sim_doc.items() if k not in dropped})
            real_facts = server_facts({k: v for k, v in real_doc.items() if k not in dropped})
            yield from facts_differences(sim_facts, real_facts, volatile)
        return
    if isinstance(novasim.body, bytes) or isinstance(realnova.body, bytes):
        if type(novasim.body) is not type(realnova.body):
            yield "body kind", _kind(novasim.body), _kind(realnova.body)
        return
    sim_body = normalise(novasim.body, novasim.own_ids, dropped)
    real_body = normalise(realnova.body, realnova.own_ids, dropped)
    if sim_body != real_body:
        yield "body", sim_body, real_body


def facts_differences(
    sim_facts: Mapping[str, Any], real_facts: Mapping[str, Any], volatile: Iterable[str] = ()
) -> Iterator[Difference]:
    """The server facts that differ (keys: those only novasim / only realnova has)."""
    skipped = frozenset(volatile)
    for name, sim_value in sim_facts.items():
        real_value = real_facts.get(name)
        if name in skipped or sim_value == real_value:
            continue
        if name == "keys":
            sim_keys, real_keys = set(sim_value), set(real_value or ())
            yield "server keys only in", sorted(sim_keys - real_keys), sorted(real_keys - sim_keys)
        else:
            yield f"server {name}", sim_value, real_value


def _kind(body: Any) -> str:
    return f"{len(body)} raw bytes" if isinstance(body, bytes) else "JSON"

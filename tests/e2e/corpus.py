"""The action-request corpus: server action requests sent to Nova alone and via the gateway.

Owns the requests as data (bytes, headers, target server, token) and what Nova alone answers
to each; must never send anything itself. Every request is harmless: it fails before Nova
changes any state, or it is idempotent (lock, unlock, console output) on a corpus server.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

MEMBER = "alice:p1"
ADMIN = "admin:admin"
OTHER_PROJECT_MEMBER = "zed:abc"  # a project id Nova's URL route accepts ([0-9a-f-]+)
STOCK_IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"
MISSING_SERVER_ID = "00000000-0000-4000-8000-00000000dead"
MAX_VERSION = "2.104"
BODY_LIMIT = 114688  # Nova's [oslo_middleware] max_request_body_size

# The 41 keys Nova registers on /servers/{id}/action (nova-actions.md §1).
ACTION_KEYS = (
    "confirmResize",
    "revertResize",
    "reboot",
    "resize",
    "rebuild",
    "createImage",
    "os-start",
    "os-stop",
    "trigger_crash_dump",
    "resetNetwork",
    "injectNetworkInfo",
    "os-resetState",
    "changePassword",
    "os-getConsoleOutput",
    "createBackup",
    "restore",
    "forceDelete",
    "evacuate",
    "addFloatingIp",
    "removeFloatingIp",
    "lock",
    "unlock",
    "migrate",
    "os-migrateLive",
    "addFixedIp",
    "removeFixedIp",
    "pause",
    "unpause",
    "os-getVNCConsole",
    "os-getSPICEConsole",
    "os-getSerialConsole",
    "os-getRDPConsole",
    "rescue",
    "unrescue",
    "addSecurityGroup",
    "removeSecurityGroup",
    "shelve",
    "shelveOffload",
    "unshelve",
    "suspend",
    "resume",
)


class Target(enum.Enum):
    """The server a request is sent to (the corpus servers belong to project p1)."""

    ACTIVE = "active"  # left ACTIVE: lock/unlock, console output, paused-only actions (409)
    PAUSED = "paused"  # left PAUSED: valid state-changing actions end in 409 (or 403)
    MISSING = "missing"  # exists nowhere: valid actions that would act end in 404
    FOREIGN = "foreign"  # a seed server of project p2: 404 to alice


class Category(enum.Enum):
    """What a request exercises, for the corpus breakdown."""

    VALID = "valid (schema passes; Nova answers 2xx/403/404/409/410/500)"
    SCHEMA = "schema-invalid body (400)"
    VERSION_GATE = "action outside its microversion range (404)"
    DISPATCH = "dispatch: zero/two/unknown keys, non-object, invalid JSON"
    MICROVERSION = "microversion header (400/406/precedence)"
    CONTENT_TYPE = "content type (415 or accepted)"
    TRANSPORT = "URL project id, token, body size"


@dataclass(frozen=True)
class ActionRequest:
    """One POST to a server's action resource, and the status Nova alone answers."""

    label: str
    body: bytes
    nova_status: int
    category: Category
    microversion: str | None = "2.1"  # sent as ``OpenStack-API-Version: compute <v>``
    content_type: str | None = "application/json"  # None: no Content-Type header at all
    target: Target = Target.PAUSED
    token: str | None = MEMBER
    headers: tuple[tuple[str, str], ...] = ()  # further raw headers, repeats allowed
    path: str = "/servers/{server_id}/action"  # after ``prefix``
    method: str = "POST"
    prefix: str = "/v2.1"  # the API root the path is under

    @property
    def action_key(self) -> str | None:
        """The body's only key when it is a one-key JSON object, else None."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        if isinstance(value, dict) and len(value) == 1:
            return str(next(iter(value)))
        return None


@dataclass(frozen=True)
class StricterRequest:
    """A request the README documents the gateway answering differently from Nova, and how."""

    request: ActionRequest  # its nova_status is what Nova alone answers
    gateway_status: int
    gateway_fault: str | None  # None: not a fault body (a webob page)
    why: str
    locked: bool = False  # sent while the ACTIVE corpus server is locked (by its owner)


def encode(value: object) -> bytes:
    return json.dumps(value).encode()


def padded_pause(size: int) -> bytes:
    """A ``{"pause": "xxx…"}`` body of exactly ``size`` bytes."""
    return b'{"pause": "' + b"x" * (size - len(b'{"pause": ""}')) + b'"}'


def _r(
    label: str,
    key: str,
    value: object,
    nova_status: int,
    category: Category,
    microversion: str | None = "2.1",
    target: Target = Target.PAUSED,
    token: str | None = MEMBER,
) -> ActionRequest:
    """A well-formed one-key action body ``{key: value}``."""
    return ActionRequest(
        label,
        encode({key: value}),
        nova_status,
        category,
        microversion=microversion,
        target=target,
        token=token,
    )


V = Category.VALID
S = Category.SCHEMA
G = Category.VERSION_GATE
P, A, M, F = Target.PAUSED, Target.ACTIVE, Target.MISSING, Target.FOREIGN


def _dispatch() -> list[ActionRequest]:
    """Nova's action_peek: exactly one key naming an action, else 400/404 (§A.3)."""
    d = Category.DISPATCH
    raw: list[tuple[str, bytes, int]] = [
        ("empty body", b"", 400),
        ("zero keys {}", b"{}", 400),
        ("two known keys", b'{"pause": null, "unpause": null}', 400),
        ("a known and an unknown key", b'{"pause": null, "foo": 1}', 400),
        ("three keys", b'{"pause": null, "lock": null, "unlock": null}', 400),
        ("unknown key", b'{"foo": null}', 400),
        ("Reboot (case)", b'{"Reboot": {"type": "HARD"}}', 400),
        ("PAUSE (case)", b'{"PAUSE": null}', 400),
        ("empty key", b'{"": null}', 400),
        ("key with a space", b'{"pause ": null}', 400),
        ("[1]", b"[1]", 404),
        ('"a"', b'"a"', 404),
        ("1", b"1", 404),
        ("0", b"0", 404),
        ("-1", b"-1", 404),
        ("1.5", b"1.5", 404),
        ("null", b"null", 404),
        ("true", b"true", 404),
        ("false", b"false", 404),
        ('["pause"]', b'["pause"]', 404),
        ('[{"pause": null}]', b'[{"pause": null}]', 404),
        ("[]", b"[]", 400),
        ('"ab"', b'"ab"', 400),
        ('""', b'""', 400),
        ("[1, 2]", b"[1, 2]", 400),
        ("invalid JSON {", b"{", 400),
        ("invalid JSON missing value", b'{"pause": }', 400),
        ("invalid JSON single quotes", b"{'pause': None}", 400),
        ("invalid JSON trailing data", b'{"pause": null}x', 400),
        ("invalid JSON two documents", b'{"pause": null} {"pause": null}', 400),
        ("invalid JSON bare word", b"pause", 400),
        ("invalid JSON trailing comma", b'{"pause": null,}', 400),
        ("invalid UTF-8", b'{"pause": "\xff"}', 400),
        ("UTF-16 body", '{"pause": null}'.encode("utf-16"), 400),
        ("UTF-8 byte order mark", b'\xef\xbb\xbf{"pause": null}', 400),
        ("whitespace around the object", b' \n {"pause": null} \n', 409),
        ("escaped key \\u0070ause", b'{"\\u0070ause": null}', 409),
        ("nested 20 deep", b'{"pause": ' + b"[" * 19 + b"]" * 19 + b"}", 409),
    ]
    return [ActionRequest(label, body, status, d) for label, body, status in raw]


def _microversions() -> list[ActionRequest]:
    """Header parsing (400/406) and precedence, discriminated by addFloatingIp's 2.43 end."""
    m = Category.MICROVERSION
    pause = encode({"pause": None})
    fip = encode({"addFloatingIp": {}})  # ≤2.43: 400 (address required); ≥2.44: 404
    requests = [
        ActionRequest("no version header (2.1)", pause, 409, m, microversion=None),
        ActionRequest("version latest", pause, 409, m, microversion="latest"),
        ActionRequest("version 2.50", pause, 409, m, microversion="2.50"),
    ]
    for text, status in (
        ("2.01", 400),
        ("abc", 400),
        ("LATEST", 400),
        ("2", 400),
        ("2.1.0", 400),
        ("02.1", 400),
        ("2.", 400),
        ("2.0", 406),
        ("1.1", 406),
        ("2.105", 406),
        ("2.1000", 406),
        ("3.0", 406),
    ):
        requests.append(ActionRequest(f"version {text}", pause, status, m, microversion=text))
    headered: list[tuple[str, tuple[tuple[str, str], ...], bytes, int]] = [
        (
            "standard header 'compute' without version",
            (("OpenStack-API-Version", "compute"),),
            pause,
            409,
        ),
        ("legacy header 2.43", (("X-OpenStack-Nova-API-Version", "2.43"),), fip, 400),
        ("legacy header 2.44", (("X-OpenStack-Nova-API-Version", "2.44"),), fip, 404),
        ("legacy header empty", (("X-OpenStack-Nova-API-Version", ""),), pause, 400),
        ("legacy header abc", (("X-OpenStack-Nova-API-Version", "abc"),), pause, 400),
        ("legacy header 2.200", (("X-OpenStack-Nova-API-Version", "2.200"),), pause, 406),
        (
            "legacy header list, last wins",
            (("X-OpenStack-Nova-API-Version", "2.3, 2.50"),),
            fip,
            404,
        ),
        (
            "other service + legacy 2.44",
            (("OpenStack-API-Version", "volume 3.1"), ("X-OpenStack-Nova-API-Version", "2.44")),
            fip,
            404,
        ),
        (
            "standard wins over legacy",
            (("OpenStack-API-Version", "compute 2.44"), ("X-OpenStack-Nova-API-Version", "2.3")),
            fip,
            404,
        ),
        ("service name case-insensitive", (("OpenStack-API-Version", "COMPUTE 2.44"),), fip, 404),
        (
            "last compute entry wins (2.3)",
            (("OpenStack-API-Version", "compute 2.44, compute 2.3"),),
            fip,
            400,
        ),
        (
            "last compute entry wins (2.44)",
            (("OpenStack-API-Version", "compute 2.3, compute 2.44"),),
            fip,
            404,
        ),
        (
            "repeated header lines folded",
            (("OpenStack-API-Version", "compute 2.3"), ("OpenStack-API-Version", "compute 2.44")),
            fip,
            404,
        ),
        ("compute latest", (("OpenStack-API-Version", "compute latest"),), fip, 404),
        # realnova's WSGI server ignores '_' spellings; the gateway drops them (README).
        (
            "header spelt OpenStack_API_Version",
            (("OpenStack_API_Version", "compute 2.44"),),
            fip,
            400,
        ),
    ]
    for label, headers, body, status in headered:
        requests.append(ActionRequest(label, body, status, m, microversion=None, headers=headers))
    return requests


def _content_types() -> list[ActionRequest]:
    """Nova's 415 for non-JSON media types; version errors come first, body errors after."""
    c = Category.CONTENT_TYPE
    pause = encode({"pause": None})
    requests = [
        ActionRequest(f"content type {ct!r}", pause, status, c, content_type=ct)
        for ct, status in (
            ("application/json; charset=UTF-8", 409),
            ("application/xml", 415),
            ("text/html", 415),
            ("application/x-www-form-urlencoded", 415),
            ("multipart/form-data; boundary=x", 415),
            ("APPLICATION/JSON", 415),
            ("application/json-patch+json", 415),
        )
    ]
    xml = "application/xml"
    requests += [
        ActionRequest("415 before body errors", b"{", 415, c, content_type=xml),
        ActionRequest(
            "400 version before 415", pause, 400, c, microversion="abc", content_type=xml
        ),
        ActionRequest(
            "406 version before 415", pause, 406, c, microversion="2.105", content_type=xml
        ),
        ActionRequest(
            "Content-Encoding identity", pause, 409, c, headers=(("Content-Encoding", "identity"),)
        ),
    ]
    return requests


def _transport() -> list[ActionRequest]:
    """URL project id (§0 step 8), tokens, and the body size limit (§A.7)."""
    t = Category.TRANSPORT
    pause = encode({"pause": None})
    return [
        ActionRequest(
            "URL project id not the token's", pause, 400, t, path="/abc/servers/{server_id}/action"
        ),
        ActionRequest(
            "URL project id of the token, server elsewhere",
            pause,
            404,
            t,
            token=OTHER_PROJECT_MEMBER,
            path="/abc/servers/{server_id}/action",
        ),
        ActionRequest(
            "URL project id checked before the version gate",
            encode({"trigger_crash_dump": None}),
            400,
            t,
            path="/abc/servers/{server_id}/action",
        ),
        ActionRequest(
            "URL project id checked before the schema",
            encode({"reboot": {}}),
            400,
            t,
            path="/abc/servers/{server_id}/action",
        ),
        ActionRequest(
            "URL project id checked after the action lookup",
            encode({"foo": None}),
            400,
            t,
            path="/abc/servers/{server_id}/action",
        ),
        ActionRequest(
            "URL project id of the token, action outside its range",
            encode({"trigger_crash_dump": None}),
            404,
            t,
            token=OTHER_PROJECT_MEMBER,
            path="/abc/servers/{server_id}/action",
        ),
        ActionRequest("body of exactly the limit", padded_pause(BODY_LIMIT), 409, t),
        # Answered by the layers around Nova's API, and by the gateway as they answer.
        ActionRequest("body one byte over the limit", padded_pause(BODY_LIMIT + 1), 413, t),
        ActionRequest("no token", pause, 401, t, token=None),
        ActionRequest("token without a project", pause, 401, t, token="garbage"),
        ActionRequest("trailing slash", pause, 404, t, path="/servers/{server_id}/action/"),
        ActionRequest("action.json suffix", pause, 404, t, path="/servers/{server_id}/action.json"),
        ActionRequest("Action (case)", pause, 404, t, path="/servers/{server_id}/Action"),
        ActionRequest("GET on action", b"", 404, t, method="GET", content_type=None),
        ActionRequest("PUT on action", pause, 404, t, method="PUT"),
        ActionRequest(
            "URL project id not [0-9a-f-]+", pause, 404, t, path="/p1/servers/{server_id}/action"
        ),
    ]


def _any_value_actions() -> list[ActionRequest]:
    """Actions whose value is not validated: valid at 2.1 and the maximum, on a safe target."""
    requests: list[ActionRequest] = []
    cases: list[tuple[str, Target, int, str | None]] = [
        # key, target, status, token
        ("confirmResize", P, 409, MEMBER),
        ("revertResize", P, 409, MEMBER),
        ("os-start", P, 409, MEMBER),
        ("os-stop", P, 409, MEMBER),
        ("restore", P, 409, MEMBER),
        ("forceDelete", M, 404, MEMBER),
        ("pause", P, 409, MEMBER),
        ("unpause", A, 409, MEMBER),
        ("unrescue", P, 409, MEMBER),
        ("shelve", M, 404, MEMBER),
        ("shelveOffload", P, 403, MEMBER),
        ("suspend", P, 409, MEMBER),
        ("resume", P, 409, MEMBER),
        ("injectNetworkInfo", P, 403, MEMBER),
        ("resetNetwork", P, 410, MEMBER),
    ]
    for key, target, status, token in cases:
        requests.append(_r(f"{key} null at 2.1", key, None, status, V, "2.1", target, token))
        requests.append(
            _r(f"{key} {{'x': 1}} at max", key, {"x": 1}, status, V, MAX_VERSION, target, token)
        )
    requests += [
        _r("pause another project's server", "pause", None, 404, V, target=F),
        _r("pause a missing server", "pause", None, 404, V, target=M),
        _r("forceDelete another project's server", "forceDelete", None, 404, V, target=F),
        _r("shelve another project's server", "shelve", None, 404, V, target=F),
        _r("shelveOffload as admin (not shelved)", "shelveOffload", None, 409, V, token=ADMIN),
        _r(
            "injectNetworkInfo as admin, missing server",
            "injectNetworkInfo",
            None,
            404,
            V,
            target=M,
            token=ADMIN,
        ),
        _r("resetNetwork, missing server (no lookup)", "resetNetwork", "x", 410, V, target=M),
        _r("unpause at latest", "unpause", [], 409, V, "latest", A),
        _r("os-start on an active server", "os-start", None, 409, V, target=A),
        # os-start/os-stop/trigger_crash_dump look up through the instance mapping (§1.1).
        _r("os-start, missing server", "os-start", None, 404, V, target=M),
        _r("os-stop, missing server", "os-stop", None, 404, V, MAX_VERSION, M),
        _r("resume on an active server", "resume", None, 409, V, target=A),
    ]
    return requests


def _reboot_resize_password() -> list[ActionRequest]:
    return [
        _r("reboot SOFT", "reboot", {"type": "SOFT"}, 409, V),
        _r("reboot soft at max", "reboot", {"type": "soft"}, 409, V, MAX_VERSION),
        _r("reboot Hard, missing server", "reboot", {"type": "Hard"}, 404, V, target=M),
        _r("reboot type FOO", "reboot", {"type": "FOO"}, 400, S),
        _r("reboot no type", "reboot", {}, 400, S),
        _r("reboot extra property", "reboot", {"type": "SOFT", "x": 1}, 400, S),
        _r("reboot type 1", "reboot", {"type": 1}, 400, S),
        _r("reboot null", "reboot", None, 400, S),
        _r("reboot 'SOFT' string", "reboot", "SOFT", 400, S),
        _r("resize flavorRef '2'", "resize", {"flavorRef": "2"}, 409, V),
        _r("resize flavorRef 2 at max", "resize", {"flavorRef": 2}, 409, V, MAX_VERSION),
        _r("resize flavorRef ''", "resize", {"flavorRef": ""}, 400, S),
        _r("resize no flavorRef", "resize", {}, 400, S),
        _r(
            "resize diskConfig FOO",
            "resize",
            {"flavorRef": "2", "OS-DCF:diskConfig": "FOO"},
            400,
            S,
        ),
        _r("resize extra property", "resize", {"flavorRef": "2", "x": 1}, 400, S),
        _r("resize flavorRef true", "resize", {"flavorRef": True}, 400, S),
        _r("changePassword", "changePassword", {"adminPass": "s3cret"}, 409, V),
        _r("changePassword empty at max", "changePassword", {"adminPass": ""}, 409, V, MAX_VERSION),
        _r("changePassword no adminPass", "changePassword", {}, 400, S),
        _r("changePassword adminPass 1", "changePassword", {"adminPass": 1}, 400, S),
        _r("changePassword extra", "changePassword", {"adminPass": "x", "y": 1}, 400, S),
        _r("changePassword null", "changePassword", None, 400, S),
    ]


def _rebuild() -> list[ActionRequest]:
    """Every schema range boundary: 2.18/2.19, 2.53/2.54, 2.56/2.57, 2.62/2.63, 2.89/2.90,
    2.93/2.94; valid bodies meet a PAUSED server (409), invalid ones fail validation."""
    base = {"imageRef": STOCK_IMAGE}

    def rebuild(label: str, extra: dict[str, object], status: int, version: str) -> ActionRequest:
        category = S if status == 400 else V
        return _r(
            f"rebuild {label} at {version}", "rebuild", {**base, **extra}, status, category, version
        )

    return [
        rebuild("imageRef only", {}, 409, "2.1"),
        rebuild("imageRef only", {}, 409, MAX_VERSION),
        _r("rebuild imageRef not a uuid", "rebuild", {"imageRef": "not-a-uuid"}, 400, S),
        _r("rebuild no imageRef", "rebuild", {"name": "x"}, 400, S),
        _r("rebuild null", "rebuild", None, 400, S),
        rebuild("extra property", {"foo": 1}, 400, "2.1"),
        rebuild("name ''", {"name": ""}, 400, "2.1"),
        rebuild("name with leading space", {"name": " x"}, 400, "2.1"),
        rebuild("name 256 long", {"name": "x" * 256}, 400, "2.1"),
        rebuild("name 255 long", {"name": "x" * 255}, 409, "2.1"),
        rebuild("adminPass 1", {"adminPass": 1}, 400, "2.1"),
        rebuild("metadata value 1", {"metadata": {"k": 1}}, 400, "2.1"),
        rebuild("metadata value 256 long", {"metadata": {"k": "v" * 256}}, 400, "2.1"),
        rebuild("preserve_ephemeral 'yes'", {"preserve_ephemeral": "yes"}, 409, "2.1"),
        rebuild("preserve_ephemeral 'maybe'", {"preserve_ephemeral": "maybe"}, 400, "2.1"),
        rebuild("accessIPv4 bad", {"accessIPv4": "999.1.1.1"}, 400, "2.1"),
        rebuild("accessIPv6 bad", {"accessIPv6": "zz::zz::1"}, 400, "2.1"),
        rebuild("diskConfig FOO", {"OS-DCF:diskConfig": "FOO"}, 400, "2.1"),
        rebuild("description", {"description": "d"}, 400, "2.18"),
        rebuild("description", {"description": "d"}, 409, "2.19"),
        rebuild("description null", {"description": None}, 409, "2.19"),
        rebuild("description 256 long", {"description": "d" * 256}, 400, "2.19"),
        rebuild("key_name", {"key_name": "k"}, 400, "2.53"),
        rebuild("key_name", {"key_name": "k"}, 409, "2.54"),
        rebuild("key_name ''", {"key_name": ""}, 400, "2.54"),
        rebuild("personality", {"personality": [{"path": "/f", "contents": "YQ=="}]}, 409, "2.56"),
        rebuild("personality", {"personality": [{"path": "/f", "contents": "YQ=="}]}, 400, "2.57"),
        rebuild("user_data", {"user_data": "YQ=="}, 400, "2.56"),
        rebuild("user_data", {"user_data": "YQ=="}, 409, "2.57"),
        rebuild("user_data not base64", {"user_data": "not base64!"}, 400, "2.57"),
        rebuild("trusted_image_certificates", {"trusted_image_certificates": ["c"]}, 400, "2.62"),
        rebuild("trusted_image_certificates", {"trusted_image_certificates": ["c"]}, 409, "2.63"),
        rebuild("trusted_image_certificates []", {"trusted_image_certificates": []}, 400, "2.63"),
        rebuild(
            "trusted_image_certificates repeated",
            {"trusted_image_certificates": ["c", "c"]},
            400,
            "2.63",
        ),
        rebuild("hostname", {"hostname": "good-host"}, 400, "2.89"),
        rebuild("hostname", {"hostname": "good-host"}, 409, "2.90"),
        rebuild("hostname of 1 character", {"hostname": "a"}, 400, "2.90"),
        rebuild("hostname FQDN", {"hostname": "a.example.com"}, 400, "2.93"),
        rebuild("hostname FQDN", {"hostname": "a.example.com"}, 409, "2.94"),
        rebuild("hostname of 1 character", {"hostname": "a"}, 409, "2.94"),
        rebuild("hostname with '!'", {"hostname": "bad!host"}, 400, "2.94"),
    ]


def _images_and_backups() -> list[ActionRequest]:
    backup = {"name": "b", "backup_type": "daily", "rotation": 1000000}
    return [
        _r("createImage, missing server", "createImage", {"name": "snap"}, 404, V, target=M),
        _r(
            "createImage at 2.45, missing server",
            "createImage",
            {"name": "snap"},
            404,
            V,
            "2.45",
            M,
        ),
        _r(
            "createImage at max, missing server",
            "createImage",
            {"name": "snap", "metadata": {"k": "v"}},
            404,
            V,
            MAX_VERSION,
            M,
        ),
        _r("createImage no name", "createImage", {}, 400, S),
        _r("createImage name ''", "createImage", {"name": ""}, 400, S),
        _r("createImage name with trailing space", "createImage", {"name": "x "}, 400, S),
        _r("createImage name 256 long", "createImage", {"name": "x" * 256}, 400, S),
        _r(
            "createImage metadata key '!'",
            "createImage",
            {"name": "x", "metadata": {"!": "v"}},
            400,
            S,
        ),
        _r("createImage extra", "createImage", {"name": "x", "y": 1}, 400, S),
        _r("createImage null", "createImage", None, 400, S),
        _r("createBackup, missing server", "createBackup", backup, 404, V, target=M),
        _r(
            "createBackup rotation '3', missing server",
            "createBackup",
            {**backup, "rotation": "3"},
            404,
            V,
            MAX_VERSION,
            M,
        ),
        _r(
            "createBackup no rotation",
            "createBackup",
            {"name": "b", "backup_type": "daily"},
            400,
            S,
        ),
        _r("createBackup rotation -1", "createBackup", {**backup, "rotation": -1}, 400, S),
        _r("createBackup rotation 'x'", "createBackup", {**backup, "rotation": "x"}, 400, S),
        _r("createBackup no name", "createBackup", {"backup_type": "d", "rotation": 1}, 400, S),
        _r("createBackup no backup_type", "createBackup", {"name": "b", "rotation": 1}, 400, S),
        _r("createBackup extra", "createBackup", {**backup, "x": 1}, 400, S),
    ]


def _crash_dump_and_admin() -> list[ActionRequest]:
    """trigger_crash_dump's 2.16/2.17 start; os-resetState (admin only)."""
    return [
        _r("trigger_crash_dump at 2.1", "trigger_crash_dump", None, 404, G, "2.1"),
        _r("trigger_crash_dump at 2.16", "trigger_crash_dump", None, 404, G, "2.16"),
        _r("trigger_crash_dump {} at 2.16", "trigger_crash_dump", {}, 404, G, "2.16"),
        _r(
            "trigger_crash_dump at 2.17, missing server",
            "trigger_crash_dump",
            None,
            404,
            V,
            "2.17",
            M,
        ),
        _r(
            "trigger_crash_dump at max, another project's server",
            "trigger_crash_dump",
            None,
            404,
            V,
            MAX_VERSION,
            F,
        ),
        _r("trigger_crash_dump {} at 2.17", "trigger_crash_dump", {}, 400, S, "2.17"),
        _r("trigger_crash_dump 'x' at 2.17", "trigger_crash_dump", "x", 400, S, "2.17"),
        _r("os-resetState as member", "os-resetState", {"state": "active"}, 403, V),
        _r(
            "os-resetState as admin, missing server",
            "os-resetState",
            {"state": "error"},
            404,
            V,
            MAX_VERSION,
            M,
            ADMIN,
        ),
        _r("os-resetState state paused", "os-resetState", {"state": "paused"}, 400, S),
        _r("os-resetState no state", "os-resetState", {}, 400, S),
        _r("os-resetState extra", "os-resetState", {"state": "active", "x": 1}, 400, S),
        _r("os-resetState null", "os-resetState", None, 400, S),
    ]


def _console_output() -> list[ActionRequest]:
    out = "os-getConsoleOutput"
    return [
        _r("os-getConsoleOutput {}", out, {}, 200, V, target=A),
        _r("os-getConsoleOutput length 10", out, {"length": 10}, 200, V, target=A),
        _r("os-getConsoleOutput length '10'", out, {"length": "10"}, 200, V, target=A),
        _r("os-getConsoleOutput length -1 at max", out, {"length": -1}, 200, V, MAX_VERSION, A),
        _r("os-getConsoleOutput length null", out, {"length": None}, 200, V, target=A),
        _r("os-getConsoleOutput another project's server", out, {}, 404, V, target=F),
        _r("os-getConsoleOutput length -2", out, {"length": -2}, 400, S, target=A),
        _r("os-getConsoleOutput length 'abc'", out, {"length": "abc"}, 400, S, target=A),
        _r("os-getConsoleOutput length '-5'", out, {"length": "-5"}, 400, S, target=A),
        _r("os-getConsoleOutput length 1.5", out, {"length": 1.5}, 400, S, target=A),
        _r("os-getConsoleOutput null", out, None, 400, S, target=A),
        _r("os-getConsoleOutput extra", out, {"lines": 1}, 400, S, target=A),
    ]


def _evacuate() -> list[ActionRequest]:
    """Boundaries 2.13/2.14 (onSharedStorage), 2.28/2.29 and 2.67/2.68 (force), 2.94/2.95."""
    ev = "evacuate"
    shared = {"onSharedStorage": False}
    return [
        _r("evacuate onSharedStorage at 2.13", ev, shared, 403, V, "2.13"),
        _r("evacuate {} at 2.13", ev, {}, 400, S, "2.13"),
        _r("evacuate onSharedStorage 'maybe' at 2.1", ev, {"onSharedStorage": "maybe"}, 400, S),
        _r("evacuate host with '!' at 2.1", ev, {**shared, "host": "bad!host"}, 400, S),
        _r("evacuate onSharedStorage at 2.14", ev, shared, 400, S, "2.14"),
        _r("evacuate {} at 2.14", ev, {}, 403, V, "2.14"),
        _r("evacuate force at 2.28", ev, {"force": False}, 400, S, "2.28"),
        _r("evacuate force at 2.29", ev, {"force": False}, 403, V, "2.29"),
        _r("evacuate force 'maybe' at 2.29", ev, {"force": "maybe"}, 400, S, "2.29"),
        _r("evacuate force at 2.67", ev, {"force": False}, 403, V, "2.67"),
        _r("evacuate force at 2.68", ev, {"force": False}, 400, S, "2.68"),
        _r("evacuate {} at 2.94", ev, {}, 403, V, "2.94"),
        _r("evacuate {} at 2.95", ev, {}, 403, V, "2.95"),
        _r("evacuate as admin, paused server", ev, {}, 409, V, "2.14", P, ADMIN),
        _r("evacuate as admin, missing server", ev, {}, 404, V, MAX_VERSION, M, ADMIN),
        _r("evacuate null", ev, None, 400, S, "2.14"),
    ]


def _network() -> list[ActionRequest]:
    """Floating and fixed IP actions end at 2.43 (2.43/2.44); security groups."""
    requests: list[ActionRequest] = []
    for key, valid, invalid in (
        ("addFloatingIp", {"address": "10.0.0.1"}, {"address": "not-an-ip"}),
        ("removeFloatingIp", {"address": "10.0.0.1"}, {"address": 1}),
        ("addFixedIp", {"networkId": "net"}, {"networkId": ""}),
        ("removeFixedIp", {"address": "10.0.0.2"}, {"address": "bad"}),
    ):
        requests += [
            _r(f"{key} at 2.1, missing server", key, valid, 404, V, "2.1", M),
            _r(f"{key} at 2.43, missing server", key, valid, 404, V, "2.43", M),
            _r(f"{key} at 2.44", key, valid, 404, G, "2.44", M),
            _r(f"{key} at max", key, valid, 404, G, MAX_VERSION),
            _r(f"{key} {{}} at 2.43", key, {}, 400, S, "2.43"),
            _r(f"{key} {{}} at 2.44 (version gate first)", key, {}, 404, G, "2.44"),
            _r(f"{key} invalid at 2.43", key, invalid, 400, S, "2.43"),
            _r(f"{key} extra at 2.1", key, {**valid, "x": 1}, 400, S),
        ]
    requests += [
        _r(
            "addFloatingIp fixed_address bad",
            "addFloatingIp",
            {"address": "10.0.0.1", "fixed_address": "bad"},
            400,
            S,
        ),
        _r("addFixedIp networkId 37 long", "addFixedIp", {"networkId": "n" * 37}, 400, S),
        _r(
            "addFixedIp networkId 5, missing server",
            "addFixedIp",
            {"networkId": 5},
            404,
            V,
            target=M,
        ),
        _r("addFixedIp networkId true", "addFixedIp", {"networkId": True}, 400, S),
    ]
    for key in ("addSecurityGroup", "removeSecurityGroup"):
        requests += [
            # realnova's Neutron fixture lacks find_resource: Nova answers 500 (README).
            _r(f"{key} default", key, {"name": "default"}, 500, V),
            _r(f"{key} at max, missing server", key, {"name": "default"}, 404, V, MAX_VERSION, M),
            _r(f"{key} {{}}", key, {}, 400, S),
            _r(f"{key} name ''", key, {"name": ""}, 400, S),
            _r(f"{key} name 1", key, {"name": 1}, 400, S),
            _r(f"{key} extra", key, {"name": "default", "x": 1}, 400, S),
            _r(f"{key} null", key, None, 400, S),
        ]
    return requests


def _lock() -> list[ActionRequest]:
    """lock's 2.72/2.73 schema change; unlock is never validated. Ends unlocked."""
    lock, unlock = "lock", "unlock"
    return [
        _r("lock null at 2.1", lock, None, 202, V, "2.1", A),
        _r("lock 'x' at 2.72", lock, "x", 202, V, "2.72", A),
        _r("lock locked_reason at 2.72 (ignored)", lock, {"locked_reason": "r"}, 202, V, "2.72", A),
        _r("lock locked_reason at 2.73", lock, {"locked_reason": "maintenance"}, 202, V, "2.73", A),
        _r("lock {} at 2.73", lock, {}, 202, V, "2.73", A),
        _r("lock null at max", lock, None, 202, V, MAX_VERSION, A),
        _r("lock locked_reason '' at 2.73", lock, {"locked_reason": ""}, 400, S, "2.73", A),
        _r(
            "lock locked_reason 256 long at 2.73",
            lock,
            {"locked_reason": "r" * 256},
            400,
            S,
            "2.73",
            A,
        ),
        _r("lock reason (wrong key) at 2.73", lock, {"reason": "r"}, 400, S, "2.73", A),
        _r("lock 'x' at 2.73", lock, "x", 400, S, "2.73", A),
        _r("lock another project's server", lock, None, 404, V, target=F),
        # While locked by its owner: lock-checked actions 409, the others still answer.
        _r("unpause on a locked server", "unpause", None, 409, V, target=A),
        _r("pause on a locked server", "pause", None, 409, V, target=A),
        _r("reboot SOFT on a locked server", "reboot", {"type": "SOFT"}, 409, V, target=A),
        _r("os-getConsoleOutput on a locked server", "os-getConsoleOutput", {}, 200, V, target=A),
        _r("unlock {'x': 1} at 2.72", unlock, {"x": 1}, 202, V, "2.72", A),
        _r("unlock {'x': 1} at 2.73 (no schema)", unlock, {"x": 1}, 202, V, "2.73", A),
        _r("unlock 'x' at max", unlock, "x", 202, V, MAX_VERSION, A),
        _r("unlock null at 2.1", unlock, None, 202, V, "2.1", A),
        _r("unpause after unlock", "unpause", None, 409, V, target=A),
    ]


def _migrations() -> list[ActionRequest]:
    """migrate 2.55/2.56; os-migrateLive 2.24/2.25, 2.29/2.30, 2.67/2.68 (manager/admin)."""
    mig, live = "migrate", "os-migrateLive"
    old_live = {"block_migration": False, "disk_over_commit": False, "host": None}
    new_live = {"block_migration": "auto", "host": None}
    return [
        _r("migrate null as member", mig, None, 403, V),
        _r("migrate garbage at 2.55 (no schema)", mig, "garbage", 403, V, "2.55"),
        _r("migrate host at 2.55 (ignored)", mig, {"host": "bad!host"}, 403, V, "2.55"),
        _r("migrate garbage at 2.56", mig, "garbage", 400, S, "2.56"),
        _r("migrate host with '!' at 2.56", mig, {"host": "bad!host"}, 400, S, "2.56"),
        _r("migrate extra at 2.56", mig, {"foo": 1}, 400, S, "2.56"),
        _r("migrate host null at 2.56", mig, {"host": None}, 403, V, "2.56"),
        _r("migrate host at max (admin rule)", mig, {"host": "compute2"}, 403, V, MAX_VERSION),
        _r("migrate as admin, paused server", mig, None, 409, V, "2.56", P, ADMIN),
        _r("os-migrateLive at 2.24", live, old_live, 403, V, "2.24"),
        _r(
            "os-migrateLive no disk_over_commit at 2.24",
            live,
            {"block_migration": False, "host": None},
            400,
            S,
            "2.24",
        ),
        _r(
            "os-migrateLive block_migration auto at 2.24",
            live,
            {**old_live, "block_migration": "auto"},
            400,
            S,
            "2.24",
        ),
        _r("os-migrateLive disk_over_commit at 2.25", live, old_live, 400, S, "2.25"),
        _r("os-migrateLive auto at 2.25", live, new_live, 403, V, "2.25"),
        _r("os-migrateLive no host at 2.25", live, {"block_migration": True}, 400, S, "2.25"),
        _r(
            "os-migrateLive host with '!' at 2.25",
            live,
            {**new_live, "host": "bad!host"},
            400,
            S,
            "2.25",
        ),
        _r("os-migrateLive force at 2.29", live, {**new_live, "force": False}, 400, S, "2.29"),
        _r("os-migrateLive force at 2.30", live, {**new_live, "force": False}, 403, V, "2.30"),
        _r("os-migrateLive force at 2.67", live, {**new_live, "force": False}, 403, V, "2.67"),
        _r("os-migrateLive force at 2.68", live, {**new_live, "force": False}, 400, S, "2.68"),
        _r("os-migrateLive at max", live, new_live, 403, V, MAX_VERSION),
        _r(
            "os-migrateLive as admin, missing server", live, new_live, 404, V, MAX_VERSION, M, ADMIN
        ),
        _r("os-migrateLive null", live, None, 400, S),
    ]


def _consoles() -> list[ActionRequest]:
    """The four console actions end at 2.5 (2.5/2.6); RDP is removed (always 400)."""
    requests: list[ActionRequest] = []
    for key, kind, valid_status in (
        ("os-getVNCConsole", "novnc", 200),
        ("os-getSPICEConsole", "spice-html5", 400),  # realnova: "Unavailable console type"
        ("os-getSerialConsole", "serial", 400),  # realnova: "Unavailable console type"
        ("os-getRDPConsole", "rdp-html5", 400),  # removed: 400 before anything else
    ):
        requests += [
            _r(f"{key} {kind} at 2.1", key, {"type": kind}, valid_status, V, "2.1"),
            _r(f"{key} {kind} at 2.5", key, {"type": kind}, valid_status, V, "2.5"),
            _r(f"{key} {kind} at 2.6", key, {"type": kind}, 404, G, "2.6"),
            _r(f"{key} {{}} at 2.6 (version gate first)", key, {}, 404, G, "2.6"),
            _r(f"{key} at max", key, {"type": kind}, 404, G, MAX_VERSION),
        ]
    requests += [
        _r("os-getVNCConsole type bad", "os-getVNCConsole", {"type": "bad"}, 400, S, "2.5"),
        _r("os-getVNCConsole {}", "os-getVNCConsole", {}, 400, S, "2.5"),
        # Passes the schema; Nova 34 then answers 500 (ConsoleTypeInvalid is not caught),
        # not the 400 "Unavailable console type" nova-actions.md describes for master.
        _r("os-getVNCConsole xvpvnc", "os-getVNCConsole", {"type": "xvpvnc"}, 500, V, "2.5"),
        _r("os-getVNCConsole extra", "os-getVNCConsole", {"type": "novnc", "x": 1}, 400, S),
        _r(
            "os-getVNCConsole another project's server",
            "os-getVNCConsole",
            {"type": "novnc"},
            404,
            V,
            "2.5",
            F,
        ),
        _r("os-getSPICEConsole type novnc", "os-getSPICEConsole", {"type": "novnc"}, 400, S),
        _r("os-getSerialConsole type x", "os-getSerialConsole", {"type": "x"}, 400, S, "2.5"),
        _r("os-getRDPConsole null, missing server", "os-getRDPConsole", None, 400, V, "2.1", M),
    ]
    return requests


def _rescue_unshelve() -> list[ActionRequest]:
    """rescue's object-or-null schema; unshelve 2.76/2.77 and 2.90/2.91."""
    res, uns = "rescue", "unshelve"
    return [
        _r("rescue null", res, None, 409, V),
        _r("rescue adminPass", res, {"adminPass": "p"}, 409, V),
        _r("rescue {} at max", res, {}, 409, V, MAX_VERSION),
        _r("rescue rescue_image_ref not a uuid", res, {"rescue_image_ref": "x"}, 400, S),
        _r("rescue adminPass 1", res, {"adminPass": 1}, 400, S),
        _r("rescue extra", res, {"x": 1}, 400, S),
        _r("rescue 'x'", res, "x", 400, S),
        _r("unshelve null", uns, None, 409, V),
        _r("unshelve az at 2.76 (no schema)", uns, {"availability_zone": "nova"}, 409, V, "2.76"),
        _r("unshelve garbage at 2.76", uns, "garbage", 409, V, "2.76"),
        _r("unshelve {} at 2.76", uns, {}, 409, V, "2.76"),
        _r("unshelve {} at 2.77", uns, {}, 400, S, "2.77"),
        _r("unshelve az at 2.77", uns, {"availability_zone": "nova"}, 409, V, "2.77"),
        _r("unshelve az null at 2.77", uns, {"availability_zone": None}, 400, S, "2.77"),
        _r("unshelve host at 2.77", uns, {"host": "compute1"}, 400, S, "2.77"),
        _r("unshelve null at 2.77", uns, None, 409, V, "2.77"),
        _r("unshelve garbage at 2.77", uns, "garbage", 400, S, "2.77"),
        _r("unshelve {} at 2.90", uns, {}, 400, S, "2.90"),
        _r("unshelve {} at 2.91", uns, {}, 409, V, "2.91"),
        _r("unshelve az null at 2.91", uns, {"availability_zone": None}, 409, V, "2.91"),
        _r("unshelve host at 2.91", uns, {"host": "compute1"}, 409, V, "2.91"),
        _r("unshelve az 1 at 2.91", uns, {"availability_zone": 1}, 400, S, "2.91"),
        _r("unshelve extra at 2.91", uns, {"foo": 1}, 400, S, "2.91"),
        _r("unshelve null at max", uns, None, 409, V, MAX_VERSION),
    ]


CORPUS: tuple[ActionRequest, ...] = (
    *_dispatch(),
    *_microversions(),
    *_content_types(),
    *_transport(),
    *_any_value_actions(),
    *_reboot_resize_password(),
    *_rebuild(),
    *_images_and_backups(),
    *_crash_dump_and_admin(),
    *_console_output(),
    *_evacuate(),
    *_network(),
    *_lock(),
    *_migrations(),
    *_consoles(),
    *_rescue_unshelve(),
)


# Same status and fault name, another message (README: differences from Nova).
MESSAGE_DIFFERS: dict[str, str] = {
    **{
        f"removeFloatingIp at {version}, missing server": (
            "Nova looks the floating IP up first ('Floating IP not found for address ...'); "
            "the gateway cannot see Neutron and looks the server up"
        )
        for version in ("2.1", "2.43")
    },
    "token without a project": (
        "realnova's stand-in for keystonemiddleware words an invalid lab token its own way; "
        "keystonemiddleware, and the gateway, say 'The request you have made requires "
        "authentication.' (pinned against the real one by tests/e2e/test_differential.py)"
    ),
}


def _stricter() -> list[StricterRequest]:
    """Where the gateway refuses what Nova would read (README: deliberately stricter)."""
    pause = encode({"pause": None})
    d, t = Category.DISPATCH, Category.TRANSPORT
    ambiguous = "Nova keeps the last duplicate / reads NaN; the gateway refuses ambiguity"
    non_canonical = "a path Nova normalises and routes; the gateway refuses non-canonical paths"
    deep = b'{"pause": ' + b"[" * 40 + b"]" * 40 + b"}"
    i_json = "Python reads it one way, double or strict-UTF-8 readers another (I-JSON)"
    json_only = "Nova reads JSON from these too; other readers may not: bodies go up as JSON"
    c = Category.CONTENT_TYPE
    return [
        *(
            StricterRequest(
                ActionRequest(f"content type {ct!r}", pause, 409, c, content_type=ct),
                415,
                "badMediaType",
                json_only,
            )
            for ct in (
                None,
                "",
                "text/plain",
                "application/vnd.openstack.compute+json",
                "application/json; charset=utf-16",
            )
        ),
        StricterRequest(
            ActionRequest("text/plain body still parsed", b"{", 400, c, content_type="text/plain"),
            415,
            "badMediaType",
            json_only,
        ),
        StricterRequest(
            ActionRequest("number overflowing to infinity", b'{"pause": 1e400}', 409, d),
            400,
            "badRequest",
            i_json,
        ),
        StricterRequest(
            ActionRequest("integer beyond 2**53", b'{"pause": 9007199254740993}', 409, d),
            400,
            "badRequest",
            i_json,
        ),
        StricterRequest(
            ActionRequest("lone surrogate", b'{"pause": "\\ud800"}', 409, d),
            400,
            "badRequest",
            i_json,
        ),
        StricterRequest(
            ActionRequest(
                "method override header",
                pause,
                409,
                t,
                headers=(("X-HTTP-Method-Override", "DELETE"),),
            ),
            400,
            "badRequest",
            "a request names its method once",
        ),
        StricterRequest(
            ActionRequest("duplicate key", b'{"pause": null, "pause": null}', 409, d),
            400,
            "badRequest",
            ambiguous,
        ),
        StricterRequest(
            ActionRequest(
                "duplicate nested key",
                b'{"os-getConsoleOutput": {"length": 1, "length": 2}}',
                200,
                d,
                target=A,
            ),
            400,
            "badRequest",
            ambiguous,
        ),
        StricterRequest(
            ActionRequest("NaN", b'{"pause": NaN}', 409, d), 400, "badRequest", ambiguous
        ),
        StricterRequest(
            ActionRequest("Infinity", b'{"pause": Infinity}', 409, d), 400, "badRequest", ambiguous
        ),
        StricterRequest(
            ActionRequest("-Infinity", b'{"pause": -Infinity}', 409, d),
            400,
            "badRequest",
            ambiguous,
        ),
        StricterRequest(
            ActionRequest("nested 40 deep", deep, 409, d),
            400,
            "badRequest",
            "the gateway bounds JSON nesting at 32 levels",
        ),
        StricterRequest(
            ActionRequest(
                "gzip Content-Encoding, plain body",
                pause,
                409,
                t,
                headers=(("Content-Encoding", "gzip"),),
            ),
            415,
            "badMediaType",
            "the gateway validates exactly the bytes Nova reads",
        ),
        StricterRequest(
            ActionRequest(
                "deflate Content-Encoding, plain body",
                pause,
                409,
                t,
                headers=(("Content-Encoding", "deflate"),),
            ),
            415,
            "badMediaType",
            "the gateway validates exactly the bytes Nova reads",
        ),
        StricterRequest(
            ActionRequest("empty path segment", pause, 409, t, path="//servers/{server_id}/action"),
            400,
            "badRequest",
            non_canonical,
        ),
        StricterRequest(
            ActionRequest(
                "percent-encoded 'a' in action", pause, 409, t, path="/servers/{server_id}/%61ction"
            ),
            400,
            "badRequest",
            non_canonical,
        ),
    ]


def _documented_differences() -> list[StricterRequest]:
    """The README's other documented differences: legacy roots, header spellings, 413, 500s."""
    pause = encode({"pause": None})
    t, v = Category.TRANSPORT, Category.VALID
    legacy = "the legacy /v2 application (or a /V2.1 spelling) would run actions undecided"
    return [
        StricterRequest(
            ActionRequest("legacy /v2 root", pause, 409, t, prefix="/v2"),
            404,
            None,  # the webob page of a router that routes nothing there
            legacy,
        ),
        StricterRequest(
            ActionRequest("/V2.1 root spelling", pause, 300, t, prefix="/V2.1"),
            404,
            None,
            legacy,
        ),
        StricterRequest(
            # The README says Nova routes dot segments; realnova (Nova 34) answers 404.
            ActionRequest("dot segment", pause, 404, t, path="/servers/x/../{server_id}/action"),
            400,
            "badRequest",
            "one spelling of a path is decided and forwarded; the gateway refuses the others",
        ),
        StricterRequest(
            _r(
                "addFixedIp on a locked server",
                "addFixedIp",
                {"networkId": "net"},
                500,
                v,
                "2.43",
                Target.ACTIVE,
            ),
            409,
            "conflictingRequest",
            "Nova does not catch InstanceIsLocked there (500); the gateway says what happened",
            locked=True,
        ),
        StricterRequest(
            _r(
                "removeFixedIp on a locked server",
                "removeFixedIp",
                {"address": "10.0.0.2"},
                500,
                v,
                "2.43",
                Target.ACTIVE,
            ),
            409,
            "conflictingRequest",
            "Nova does not catch InstanceIsLocked there (500); the gateway says what happened",
            locked=True,
        ),
    ]


STRICTER: tuple[StricterRequest, ...] = (*_stricter(), *_documented_differences())

"""How answers look on the wire: request ids, version headers, Nova fault bodies and the
webob / keystonemiddleware bodies Nova's middlewares produce.

Owns header names, content types and body bytes of every answer; it must never decide
which answer a request gets.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from novasim import faults
from novasim.identity import WWW_AUTHENTICATE
from novasim.microversion import Version, answer_headers

REQUEST_ID_HEADERS = ("x-openstack-request-id", "x-compute-request-id")
JSON = "application/json"
# What webob.Response defaults to: Nova answers with it where a controller returns a
# bare webob.Response (createImage/createBackup below 2.45, add/removeFloatingIp).
WEBOB_DEFAULT_TYPE = "text/html; charset=UTF-8"


# oslo.middleware's RequestId: Nova keeps a caller's X-OpenStack-Request-ID as the
# request's global id only in this form (oslo_middleware/request_id.py ID_FORMAT).
GLOBAL_ID_FORMAT = re.compile(r"^req-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")


def global_request_id(value: str | None) -> str | None:
    """The caller's ``X-OpenStack-Request-ID`` if Nova would keep it as the global id."""
    return value if value is not None and GLOBAL_ID_FORMAT.match(value) else None


def new_request_id() -> str:
    """``req-<uuid4>``; ids need to be unique, not unguessable, so no os.urandom call."""
    value = random.getrandbits(128)
    value = (value & ~(0xF << 76)) | (0x4 << 76)  # version 4
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    text = f"{value:032x}"
    return f"req-{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def base_headers(request_id: str, version: Version | None) -> CIMultiDict[str]:
    """Request ids on everything; version headers and two Vary lines once negotiated."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name in REQUEST_ID_HEADERS:
        headers[name] = request_id
    if version is not None:
        for name, value in answer_headers(version):
            headers.add(name, value)
    return headers


def json_response(
    request_id: str,
    version: Version | None,
    payload: Any,
    status: int = 200,
    extra: dict[str, str] | None = None,
) -> web.Response:
    headers = base_headers(request_id, version)
    headers["Content-Type"] = JSON
    if extra:
        headers.update(extra)
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=headers)


def empty_response(
    request_id: str,
    version: Version | None,
    status: int,
    content_type: str = JSON,
    extra: dict[str, str] | None = None,
) -> web.Response:
    """A 202/204 without a body; Nova still labels it (application/json by default)."""
    headers = base_headers(request_id, version)
    headers["Content-Type"] = content_type
    if extra:
        headers.update(extra)
    return web.Response(status=status, headers=headers)


def fault_response(request_id: str, version: Version | None, fault: faults.Fault) -> web.Response:
    """Nova's ``{"<name>": {"code", "message"}}`` with the version headers of ``version``
    (None where Nova had no version yet: a malformed version header)."""
    headers = base_headers(request_id, version)
    headers["Content-Type"] = faults.CONTENT_TYPE
    return web.Response(status=fault.status, body=fault.body(), headers=headers)


def unauthorized_response(request_id: str, message: str) -> web.Response:
    """keystonemiddleware's 401 (no version headers: Nova never saw the request)."""
    headers = base_headers(request_id, None)
    headers["Content-Type"] = JSON
    headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    body = {"error": {"code": 401, "title": "Unauthorized", "message": message}}
    return web.Response(status=401, body=json.dumps(body).encode(), headers=headers)


# --- webob.exc bodies (router misses, the body-size limit) ------------------------------

_WEBOB_TITLES = {404: "Not Found", 413: "Request Entity Too Large"}
NOT_FOUND_TEXT = "The resource could not be found."
TOO_LARGE_TEXT = "Request is too large. Larger than max_request_body_size (%s)."


def _accept_quality(accept: str, offer: str) -> float:
    """The q webob's acceptable_offers gives ``offer``: its most specific matching range."""
    offer_type, offer_subtype = offer.split("/")
    best: tuple[int, float] = (-1, 0.0)
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if "/" not in media:
            continue
        kind, subtype = (piece.lower() for piece in media.split("/", 1))
        if kind == offer_type and subtype == offer_subtype:
            specificity = 2
        elif kind == offer_type and subtype == "*":
            specificity = 1
        elif kind == "*" and subtype == "*":
            specificity = 0
        else:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def webob_error(request_id: str, status: int, text: str, accept: str) -> web.Response:
    """webob.exc's generated body: HTML, JSON or plain text by the Accept header."""
    title = _WEBOB_TITLES[status]
    status_line = f"{status} {title}"
    html_q = _accept_quality(accept, "text/html") if accept else 0.0
    json_q = _accept_quality(accept, "application/json") if accept else 0.0
    headers = base_headers(request_id, None)
    if html_q > 0 and html_q >= json_q:
        headers["Content-Type"] = "text/html; charset=UTF-8"
        body = (
            f"<html>\n <head>\n  <title>{status_line}</title>\n </head>\n <body>\n"
            f"  <h1>{status_line}</h1>\n  {text}<br /><br />\n\n\n\n </body>\n</html>"
        )
    elif json_q > 0:
        headers["Content-Type"] = JSON
        body = json.dumps(
            {"message": f"{text}<br /><br />\n\n\n", "code": status_line, "title": title}
        )
    else:
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        body = f"{status_line}\n\n{text}\n\n   "
    return web.Response(status=status, body=body.encode(), headers=headers)

"""receive_body: a body already whole is taken at once, one still arriving under the
deadline; both are held to the size limit (Nova's sizelimit) in the same way."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from aiohttp import streams
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDict

from gateway.nova.faults import Fault
from gateway.pipeline import receive_body

LIMIT = 1024


def chunked_request(*pieces: bytes, eof: bool) -> Any:
    """A POST whose body has no Content-Length (chunked), with ``pieces`` in its buffer."""
    protocol = mock.Mock(_reading_paused=False)
    payload = streams.StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    for piece in pieces:
        payload.feed_data(piece)
    if eof:
        payload.feed_eof()
    headers = CIMultiDict({"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    return make_mocked_request("POST", "/v2.1/servers/x/action", headers, payload=payload)


def gate() -> Any:
    return SimpleNamespace(max_body=LIMIT, body_timeout=5.0)


@pytest.mark.parametrize("eof", [True, False], ids=["whole", "arriving"])
async def test_a_body_at_the_limit_is_read_whole(eof: bool) -> None:
    body = b"x" * LIMIT
    request = chunked_request(body[:100], body[100:], eof=eof)
    call = SimpleNamespace(body=None)
    if not eof:
        asyncio.get_running_loop().call_soon(request.content.feed_eof)
    await receive_body(gate(), call, request)  # type: ignore[arg-type]
    assert call.body == body


@pytest.mark.parametrize("eof", [True, False], ids=["whole", "arriving"])
async def test_a_body_over_the_limit_is_413_however_it_came(eof: bool) -> None:
    request = chunked_request(b"x" * LIMIT, b"y", eof=eof)
    if not eof:
        asyncio.get_running_loop().call_soon(request.content.feed_eof)
    with pytest.raises(Fault) as refused:
        await receive_body(gate(), SimpleNamespace(body=None), request)  # type: ignore[arg-type]
    assert refused.value.status == 413


async def test_a_body_that_broke_off_is_400_not_500() -> None:
    request = chunked_request(b"{", eof=False)
    request.content.set_exception(RequestPayloadError("the chunked framing broke off"))
    with pytest.raises(Fault) as refused:
        await receive_body(gate(), SimpleNamespace(body=None), request)  # type: ignore[arg-type]
    assert refused.value.status == 400

"""The upstream client's request bytes, read back by a parser that is not the gateway's.

Owns the property that what the hop's client writes is read by an independent HTTP reader
(the standard library's header parser, not llhttp, not the client) as exactly the request
it was given: the request line, every header in order and spelling, ``Host`` and
``Content-Length`` by aiohttp's rule, and the body to its last byte; and that a line break
in any name, value or target sends nothing. It must never need a socket.
"""

from __future__ import annotations

import io
from http.client import parse_headers

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.proxy.client import BODILESS, UpstreamClient

BOUNDED = settings(max_examples=300, deadline=None)
TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
# Framing and Host are the client's own: the gateway's header policy never passes them on.
FRAMING = {"host", "content-length", "transfer-encoding"}

names = st.text(TCHAR, min_size=1, max_size=20).filter(lambda name: name.lower() not in FRAMING)
values = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.text(VISIBLE, min_size=1, max_size=1),
    st.text(VISIBLE + " \t", max_size=40),
    st.text(VISIBLE, max_size=1),
).filter(lambda value: value == value.strip())
headers = st.lists(st.tuples(names, values), max_size=12)
targets = st.text(VISIBLE.replace("#", ""), min_size=0, max_size=60).map(lambda t: "/v2.1/" + t)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
bodies = st.binary(max_size=300)

CLIENT = UpstreamClient("http://nova.example:8774/compute", None, 1.0, 1.0)


@BOUNDED
@given(methods, targets, headers, bodies)
def test_an_independent_reader_reads_the_request_as_given(
    method: str, target: str, given_headers: list[tuple[str, str]], body: bytes
) -> None:
    if method in BODILESS:
        body = b""  # the pipeline never forwards a body on GET or HEAD
    data = CLIENT._serialise(method, target, given_headers, body)
    stream = io.BytesIO(data)
    assert stream.readline() == f"{method} /compute{target} HTTP/1.1\r\n".encode()
    message = parse_headers(stream)
    expected = [("Host", "nova.example:8774"), *given_headers]
    if body or method not in BODILESS:
        expected.append(("Content-Length", str(len(body))))
    assert message.items() == expected
    assert message.defects == []
    assert stream.read() == body


@BOUNDED
@given(
    methods,
    headers,
    st.integers(min_value=0, max_value=11),
    st.sampled_from(["\r", "\n", "\r\n"]),
    st.sampled_from(["name", "value", "target"]),
)
def test_a_line_break_anywhere_sends_nothing(
    method: str,
    given_headers: list[tuple[str, str]],
    where: int,
    brk: str,
    part: str,
) -> None:
    target = "/v2.1/servers"
    given_headers = given_headers or [("X-A", "1")]
    index = where % len(given_headers)
    name, value = given_headers[index]
    if part == "name":
        given_headers[index] = (name[:1] + brk + name[1:], value)
    elif part == "value":
        given_headers[index] = (name, value[:1] + brk + "X-Injected: 1")
    else:
        target += brk + "X-Injected: 1"
    with pytest.raises(ValueError):
        CLIENT._serialise(method, target, given_headers, b"")

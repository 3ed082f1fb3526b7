"""HTTP/1.x framing and request counting, fed byte streams the way reassembly does."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tcptrace.analyzers.reuse import AppTracker, head_end

MS = 1_000_000


def feed(tracker: AppTracker, exchanges: list[tuple[bool, int, bytes]]) -> AppTracker:
    for client, ts_ms, data in exchanges:
        tracker.data(client, ts_ms * MS, len(data), data)
    return tracker


def test_chunked_and_content_length_bodies() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        (False, 1, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        (False, 2, b"0\r\n\r\n"),
        (True, 10, b"POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"),
        (False, 11, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
    ])
    assert t.result().protocol == "http/1.1"
    assert (t.result().requests, t.result().responses) == (2, 2)
    assert t.result().idle_gaps_ms == [8.0]


def test_head_and_304_have_no_body_and_100_continue_is_interim() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"HEAD / HTTP/1.1\r\n\r\n"),
        (False, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"),
        (True, 2, b"GET / HTTP/1.1\r\nIf-None-Match: x\r\n\r\n"),
        (False, 3, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
        (True, 4, b"PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
        (False, 5, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (True, 6, b"abc"),
        (False, 7, b"HTTP/1.1 204 No Content\r\n\r\n"),
    ])
    r = t.result()
    assert (r.requests, r.responses) == (3, 3)


def test_pipelined_requests_in_one_segment() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"),
        (False, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 3),
    ])
    assert (t.result().requests, t.result().responses) == (3, 3)


def test_request_split_byte_by_byte_counts_once() -> None:
    request = b"GET /split HTTP/1.0\r\nHost: x\r\n\r\n"
    t = feed(AppTracker(), [(True, i, request[i:i + 1]) for i in range(len(request))])
    assert t.result().requests == 1 and t.result().protocol == "http/1.0"


def test_response_without_length_runs_until_close() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"GET / HTTP/1.0\r\n\r\n"),
        (False, 1, b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 5000),
        (False, 2, b"GET / HTTP/1.1\r\n\r\n"),  # body bytes, not a new message
    ])
    assert (t.result().requests, t.result().responses) == (1, 1)


def test_body_skipped_without_bytes() -> None:
    t = AppTracker()
    t.data(True, 0, 18, b"GET / HTTP/1.1\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    t.data(False, 1 * MS, len(head), head)
    assert not t.wants(False)  # the body is skipped by length: no bytes needed
    t.data(False, 2 * MS, 100000, None)
    assert t.wants(False)
    t.data(True, 3 * MS, 18, b"GET / HTTP/1.1\r\n\r\n")
    assert t.result().requests == 2 and t.result().idle_gaps_ms == [1.0]


def test_other_protocols_count_turns() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"\x16\x03\x01 hello"), (False, 5, b"\x16\x03\x03 server"),
        (True, 10, b"a"), (True, 11, b"b"), (False, 20, b"c"), (True, 50, b"d"),
    ])
    r = t.result()
    assert (r.protocol, r.requests, r.responses) == (None, 3, 2)
    assert r.idle_gaps_ms == [5.0, 30.0]


def test_server_speaking_first_is_not_http() -> None:
    t = feed(AppTracker(), [(False, 0, b"220 smtp ready\r\n"),
                            (True, 1, b"GET / HTTP/1.1\r\n\r\n")])
    assert t.result().protocol is None


def test_word_that_is_not_a_request_line_is_not_http() -> None:
    t = feed(AppTracker(), [(True, 0, b"PING\n"), (False, 1, b"PONG\n")])
    assert t.result().protocol is None and t.result().requests == 1


def test_framing_headers_take_the_last_exact_name_in_any_case() -> None:
    from tcptrace.analyzers.reuse import framing_headers

    head = (b"HTTP/1.1 200 OK\r\nContent-Length-Hint: 9\r\ncontent-length: 5\r\n"
            b"X-Note: content-length: 7\r\nCONTENT-LENGTH : 6\r\nTransfer-Encoding: gzip, chunked")
    assert framing_headers(head) == {b"content-length": b"6",
                                     b"transfer-encoding": b"gzip, chunked"}
    assert framing_headers(b"GET / HTTP/1.1") == {}
    assert framing_headers(b"Content-Length: 3\r\nHost: x") == {}  # the start line is no header


@given(st.binary(max_size=40).map(lambda b: bytes(b"\r\nab "[x % 5] for x in b)),
       st.integers(0, 40))
def test_head_end_finds_what_the_regular_expression_would(data: bytes, pos: int) -> None:
    match = re.compile(rb"\r?\n\r?\n").search(data, pos)
    expected = (match.start(), match.end()) if match else None
    assert head_end(data, pos) == expected
    assert head_end(bytearray(data), pos) == expected

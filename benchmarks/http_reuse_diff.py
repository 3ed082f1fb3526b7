"""Differential test of the native HTTP reuse tracker against the Python reference.

Random scripts of AppTracker calls (HTTP-ish requests and responses, chunked bodies with bad
and negative sizes, heads over MAX_HEAD, split at random points, gaps, missing bytes) run on
`tcptrace.analyzers.reuse.AppTracker` and on the Rust port (`examples/http_replay.rs`), and
their results and internal counters are compared.

    cargo build --example http_replay
    python benchmarks/http_reuse_diff.py target/debug/examples/http_replay [SCRIPTS] [SEED]

COVER=1 also lists the lines of reuse.py the scripts never ran. NEGATIVE=p makes a chunk
size negative with probability p (the default scripts have a few among other bad sizes). A
negative chunk size once stepped Python's parser backwards, and some never returned: both
engines now lose the framing there, and a script Python does not finish within a timer counts
as a difference.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile

from tcptrace.analyzers.reuse import AppTracker

METHODS = [
    b"GET",
    b"POST",
    b"HEAD",
    b"CONNECT",
    b"PUT",
    b"OPTIONS",
    b"M-_",
    b"A",
    b"AB",
    b"get",
    b"ABCDEFGHIJKLMNOPQRST",
    b"ABCDEFGHIJKLMNOPQRSTU",
    b"X_Y",
    b"G1T",
    b"\xc3\x89T",
]
TARGETS = [b"/", b"/a/b?c=d", b"*", b"example.com:443", b"", b"/x y", b"/\r", b"http://h/p"]
VERSIONS = [
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/1.2",
    b"HTTP/2.0",
    b"http/1.1",
    b"HTTP/1.1\r",
    b"HTTP/1.1 ",
    b"HTTP/1.",
]
STATUSES = [
    b"100",
    b"101",
    b"102",
    b"200",
    b"201",
    b"204",
    b"206",
    b"304",
    b"404",
    b"500",
    b"199",
    b"2x0",
    b"20",
    b"0200",
    b"999",
]
HEX_SIZES = [
    b"0",
    b"5",
    b"a",
    b"A",
    b"1f",
    b"0x5",
    b"0X_5",
    b"1_0",
    b"1__0",
    b"_1",
    b"1_",
    b"+5",
    b"-1",
    b"-2",
    b"-3",
    b"-4",
    b"-5",
    b"-6",
    b"-7",
    b"-a",
    b"-10",
    b"-1f",
    b"-100",
    b"-0x8",
    b" 5",
    b"5 ",
    b"\x0b5\x0c",
    b"5;ext=1",
    b"5 ;x",
    b"",
    b"zz",
    b"0x",
    b"00",
    b"-0",
    b"ffffffffffffffffffffffff",
    b"-ffffffffffffffffffffffffff",
    b"5\x00",
    b"\x1c5",
    b"7fffffffffffffff",
    b"4000000000000000",
    b"3fffffffffffffff",
    b"0_0",
]
NEGATIVE_SIZES = [
    b"-1",
    b"-2",
    b"-3",
    b"-5",
    b"-6",
    b"-10",
    b"-0x5",
    b" -1 ",
    b"-0",
    b"-0x0",
    b"-1_0",
    b"-ffffffffffffffffffffffffff",
]
NEGATIVE = float(os.environ.get("NEGATIVE", "0"))
LENGTHS = [
    b"0",
    b"5",
    b"12",
    b"00",
    b"007",
    b" 5",
    b"5 ",
    b"-5",
    b"+5",
    b"5a",
    b"",
    b"1_0",
    b"99999999999999999999999",
    b"9" * 60,
    b"18446744073709551616",
    b"\xd9\xa1",
]


def eol(rng: random.Random) -> bytes:
    return rng.choice([b"\r\n"] * 6 + [b"\n", b"\r\r\n", b"\n\r"])


def body_bytes(rng: random.Random, n: int) -> bytes:
    alphabet = rng.choice([b"abcdef", b"\r\n0123456789abcdef;", b"HTTP/1. GET\r\n"])
    return bytes(rng.choice(alphabet) for _ in range(n))


def headers(rng: random.Random) -> tuple[bytes, str, int]:
    """Header lines (each with its line end), the framing used, and a body length."""
    lines = []
    framing, length = "none", 0
    for _ in range(rng.randint(0, 3)):
        lines.append(
            rng.choice(
                [
                    b"Host: x",
                    b"X-Note: content-length: 7",
                    b"Content-Length-Hint: 3",
                    b"Accept: */*",
                    b"content-lengthx: 4",
                    b" Content-Length: 4",
                    b"Transfer-Encodingx: chunked",
                ]
            )
            + eol(rng)
        )
    kind = rng.random()
    if kind < 0.35:
        value = rng.choice(LENGTHS) if rng.random() < 0.3 else str(rng.randint(0, 40)).encode()
        name = rng.choice(
            [b"Content-Length", b"content-length", b"CONTENT-LENGTH ", b"Content-length"]
        )
        lines.append(name + b":" + rng.choice([b" ", b"", b"\t", b"  "]) + value + eol(rng))
        framing = "length"
        length = int(value) if value.isdigit() and len(value) < 6 else rng.randint(0, 10)
    elif kind < 0.65:
        te = rng.choice([b"chunked", b"gzip, chunked", b"CHUNKED", b"chunk", b"identity"])
        lines.append(b"Transfer-Encoding: " + te + eol(rng))
        framing = "chunked"
        if rng.random() < 0.3:
            lines.append(b"Content-Length: " + str(rng.randint(0, 9)).encode() + eol(rng))
    if rng.random() < 0.06:
        lines.append(
            b"X-Pad: "
            + b"p" * rng.choice([65490, 65520, 65527, 65528, 65529, 66000, 70000])
            + eol(rng)
        )
    return b"".join(lines), framing, length


def chunked_body(rng: random.Random) -> bytes:
    out = []
    for _ in range(rng.randint(0, 3)):
        if NEGATIVE and rng.random() < NEGATIVE:
            size = rng.choice(NEGATIVE_SIZES)
            out.append(size + eol(rng) + body_bytes(rng, rng.randint(0, 8)) + eol(rng))
        elif rng.random() < 0.4:
            size = rng.choice(HEX_SIZES)
            out.append(size + eol(rng) + body_bytes(rng, rng.randint(0, 8)) + eol(rng))
        else:
            n = rng.randint(1, 12)
            out.append(format(n, "x").encode() + eol(rng) + body_bytes(rng, n) + b"\r\n")
    if rng.random() < 0.15:
        out.append(
            b"1;"
            + b"e" * rng.choice([65530, 65533, 65534, 65535, 65536, 70000])
            + eol(rng)
            + b"x\r\n"
        )
    out.append(b"0" + eol(rng))
    for _ in range(rng.randint(0, 1)):
        out.append(b"X-Trailer: 1" + (b"t" * rng.choice([0, 0, 0, 65534, 65535, 70000])) + eol(rng))
    if rng.random() < 0.9:
        out.append(eol(rng))
    return b"".join(out)


def message(rng: random.Random, request: bool) -> bytes:
    if rng.random() < 0.05:
        return body_bytes(rng, rng.randint(1, 30))
    good = rng.random() < 0.7
    if request and good:
        start = (
            rng.choice([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE"])
            + b" /p "
            + rng.choice(VERSIONS[:2])
        )
    elif not request and good:
        start = (
            rng.choice([b"HTTP/1.1 ", b"HTTP/1.0 "])
            + rng.choice([b"200", b"201", b"404", b"500"])
            + b" OK"
        )
    elif request:
        sp = b" " if rng.random() < 0.95 else b"  "
        start = rng.choice(METHODS) + sp + rng.choice(TARGETS) + b" " + rng.choice(VERSIONS)
        if rng.random() < 0.1:
            start = rng.choice(METHODS) + b" /"
    else:
        start = rng.choice(
            [b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/1.1 ", b"HTTP/1.2 ", b"HTTP/2 ", b"HTTP/1.1"]
        )
        start += rng.choice(STATUSES) + rng.choice([b" OK", b"", b" Weird Reason"])
    hdrs, framing, length = headers(rng)
    msg = start + eol(rng) + hdrs + eol(rng)
    if framing == "length":
        msg += body_bytes(rng, length)
    elif framing == "chunked":
        msg += chunked_body(rng)
    elif not request and rng.random() < 0.3:
        msg += body_bytes(rng, rng.randint(0, 20))
    return msg


def split(rng: random.Random, data: bytes) -> list[bytes]:
    if not data:
        return []
    mode = rng.random()
    if mode < 0.3:
        return [data]
    if mode < 0.4 and len(data) < 3000:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = (
        sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
        if len(data) > 1
        else []
    )
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def script(rng: random.Random) -> list[tuple]:
    calls: list[tuple] = []
    ts = rng.choice([0, 1_700_000_000_000_000_000, -5_000_000, 2**62])
    kind = rng.random()
    rounds = rng.randint(1, 5)
    for r in range(rounds):
        for client in (False, True) if kind < 0.05 and r == 0 else (True, False):
            if client:
                stream = b"".join(message(rng, True) for _ in range(rng.randint(1, 3)))
                if kind > 0.95:
                    stream = body_bytes(rng, rng.randint(1, 20))
            else:
                stream = b"".join(message(rng, False) for _ in range(rng.randint(1, 3)))
            for piece in split(rng, stream):
                ts += rng.choice(
                    [0, 1, 999, 1000, 500_000, 1_000_000, 1_500_000, 123_456_789, 2**40]
                )
                if rng.random() < 0.02:
                    ts -= rng.randint(0, 10**9)
                x = rng.random()
                if x < 0.05:
                    calls.append(("G", client))
                if x > 0.93:
                    calls.append(("D", client, ts, len(piece) + rng.choice([0, 0, 1, 100]), None))
                elif x > 0.90:
                    b = bytearray(piece)
                    b[rng.randrange(len(b))] = rng.randrange(256)
                    calls.append(("D", client, ts, len(b), bytes(b)))
                else:
                    calls.append(("D", client, ts, len(piece), piece))
                if rng.random() < 0.2:
                    calls.append(("W", rng.random() < 0.5))
    return calls


class Hang(Exception):
    pass


def on_alarm(signum, frame):
    raise Hang


def bits(x: float) -> str:
    return str(struct.unpack("<q", struct.pack("<d", x))[0])


def shown(r: int) -> str:
    return "HUGE" if r > 1 << 61 else str(r)


def describe(t: AppTracker, wants: str) -> str:
    r = t.result()
    out = f'Some("{r.protocol}")' if r.protocol else "None"
    out += (
        f" {r.requests} {r.responses} [{','.join(bits(x) for x in r.idle_gaps_ms)}] wants={wants} "
    )
    http = {None: "None", True: "True", False: "False"}[t.http]
    methods = "".join("C" if m == b"CONNECT" else "H" if m == b"HEAD" else "O" for m in t.methods)

    def parser(p):
        if t.http is False:
            return "-"
        if p is None:
            return "none"
        return f"{p.phase.name}/{shown(p.remaining)}/{len(p.buf)}"

    end = "None" if t.response_end_ns is None else f"Some({t.response_end_ns})"
    tg = "-" if t.http is True else ",".join(bits(x) for x in t.turn_gaps_ms)
    out += (
        f"http={http} turns={t.turns} answered={t.answered_turns} hreq={t.http_requests} "
        f"hresp={t.http_responses} http11={str(t.http11).lower()} methods={methods} end={end} "
        f"tgaps={tg} hgaps={','.join(bits(x) for x in t.http_gaps_ms)} "
        f"req={parser(t._request_parser)} resp={parser(t._response_parser)}"
    )
    return out


def run_python(calls: list[tuple]) -> str:
    t = AppTracker()
    wants = ""
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        for c in calls:
            if c[0] == "D":
                t.data(c[1], c[2], c[3], c[4])
            elif c[0] == "G":
                t.gap(c[1])
            else:
                wants += "T" if t.wants(c[1]) else "F"
    except Hang:
        return "HANG"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return describe(t, wants)


def encode(calls: list[tuple]) -> str:
    lines = []
    for c in calls:
        if c[0] == "D":
            lines.append(
                f"D {int(c[1])} {c[2]} {c[3]} {'-' if c[4] is None else (c[4].hex() or '')}"
            )
        else:
            lines.append(f"{c[0]} {int(c[1])}")
    lines.append("E")
    return "\n".join(lines) + "\n"


def main() -> None:
    binary = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    signal.signal(signal.SIGALRM, on_alarm)
    rng = random.Random(seed)
    import tcptrace.analyzers.reuse as reuse_module

    covered: set[int] = set()
    tracer = None
    if os.environ.get("COVER"):
        target = reuse_module.__file__

        def tracer(frame, event, arg):
            if frame.f_code.co_filename != target:
                return None

            def local(frame, event, arg):
                covered.add(frame.f_lineno)
                return local

            return local

    negatives = [0]  # chunk-size lines with a negative value
    original_line = reuse_module.HttpDirection._line

    def counting_line(self, owner, ts_ns, line):
        if self.phase is reuse_module.Phase.CHUNK_SIZE:
            with contextlib.suppress(ValueError):
                negatives[0] += int(line.split(b";")[0], 16) < 0
        return original_line(self, owner, ts_ns, line)

    reuse_module.HttpDirection._line = counting_line
    bad = hangs = with_negative = 0
    for first in range(0, count, 200):
        scripts = [script(rng) for _ in range(min(200, count - first))]
        text = "".join(encode(s) for s in scripts)
        rust = (
            subprocess.run([binary], input=text.encode(), capture_output=True, check=True)
            .stdout.decode()
            .splitlines()
        )
        assert len(rust) == len(scripts), (len(rust), len(scripts))
        for j, (calls, got) in enumerate(zip(scripts, rust, strict=True)):
            i = first + j
            if tracer:
                sys.settrace(tracer)  # a timeout inside the tracer turns tracing off
            before = negatives[0]
            want = run_python(calls)
            sys.settrace(None)
            if negatives[0] > before:
                with_negative += 1
            if want == "HANG":
                hangs += 1
            if want != got:
                bad += 1
                if bad <= 5:
                    print(f"script {i}:\n  python {want[:600]}\n  rust   {got[:600]}")
                    path = os.path.join(tempfile.gettempdir(), f"http_reuse_diff_{seed}_{i}.txt")
                    with open(path, "w") as f:
                        f.write(encode(calls))
                    print(f"  script saved to {path} (replay: {binary} < {path})")
    if covered:
        import dis

        lines = set()
        for code in [
            reuse_module.HttpDirection.feed,
            reuse_module.HttpDirection._skip,
            reuse_module.HttpDirection._consumed,
            reuse_module.HttpDirection._head,
            original_line,
            reuse_module.HttpDirection.gap,
            reuse_module.HttpDirection.looks_like_start,
            reuse_module.head_end,
            reuse_module.framing_headers,
            reuse_module.body_framing,
            reuse_module.AppTracker.data,
            reuse_module.AppTracker.gap,
            reuse_module.AppTracker.wants,
            reuse_module.AppTracker._request,
            reuse_module.AppTracker._response,
            reuse_module.AppTracker.result,
        ]:
            lines |= {line for _, line in dis.findlinestarts(code.__code__) if line}
        print("never run:", sorted(lines - covered))
    print(
        f"seed {seed}: {count} scripts, {bad} differences, {hangs} Python hangs, "
        f"{with_negative} scripts with negative chunk sizes ({negatives[0]} lines)"
    )


if __name__ == "__main__":
    main()

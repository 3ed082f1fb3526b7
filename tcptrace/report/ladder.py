"""A connection as a ladder diagram for the terminal: client left, server right, time down.

Each segment is one arrow labelled with its flags, relative seq/ack, payload length and
marks (the health verdicts in words: tcptrace.report.marks, explained under the drawing);
an endpoint's state is written beside its rail on the segment that changed it.
Runs of more than `FOLD_AFTER` unremarkable segments (data or bare ACKs: no SYN, FIN, RST,
mark or state change) keep their first and last `KEEP` arrows and fold the rest into one
line. `ascii=True` draws with plain ASCII; colours are ANSI escapes, off unless asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tcptrace.report.marks import legend_lines, marks_of
from tcptrace.report.probes import probe_line
from tcptrace.report.trace import (
    FIN,
    KEEPALIVE,
    OUT_OF_ORDER,
    RESET,
    RETRANSMISSION,
    SYN,
    Record,
    Trace,
    TracedSegment,
    flag_text,
    plain,
)
from tcptrace.report.trace import RST as RST_FLAG

FOLD_AFTER = 6
KEEP = 2
TIME_WIDTH = 10
STATE_WIDTH = 11  # len("ESTABLISHED")
MIN_ARROW = 46

RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN, BOLD, DIM = 31, 32, 33, 34, 35, 36, 1, 2


@dataclass(frozen=True)
class Glyphs:
    rail: str
    line: str
    right: str
    left: str
    fold: str


UNICODE = Glyphs("│", "─", "▶", "◀", "┆")
ASCII = Glyphs("|", "-", ">", "<", ":")


def human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n_f = n / 1000
        if n_f < 1000 or unit == "TB":
            return f"{n_f:.1f} {unit}"
        n = int(n_f)
    raise AssertionError("unreachable")


def label(seg: TracedSegment) -> str:
    parts = [flag_text(seg["flags"]), f"seq={seg['seq']}"]
    if seg["ack"] is not None:
        parts.append(f"ack={seg['ack']}")
    if seg["length"]:
        parts.append(f"len={seg['length']}")
    marks = marks_of(seg)
    if seg["window"] == 0 and RESET not in seg["marks"] and "zero-window" not in marks:
        parts.append("win=0")
    return " ".join(parts) + "".join(f" [{m}]" for m in marks)


def _colour_of(seg: TracedSegment) -> int | None:
    if RESET in seg["marks"]:
        return RED
    marks = marks_of(seg)
    if any(m.startswith(RETRANSMISSION) or m == OUT_OF_ORDER for m in marks):
        return YELLOW
    if KEEPALIVE in marks or "window-probe" in marks or "zero-window" in marks:
        return MAGENTA
    if seg["flags"] & SYN:
        return GREEN
    if seg["flags"] & FIN:
        return BLUE
    return None


@dataclass(frozen=True)
class _Fold:
    segments: list[TracedSegment]


def _rows(segments: list[TracedSegment]) -> Iterator[TracedSegment | _Fold]:
    """Segments with long plain runs folded; a state change ends a run."""
    run: list[TracedSegment] = []

    def flush() -> Iterator[TracedSegment | _Fold]:
        if len(run) > FOLD_AFTER:
            yield from run[:KEEP]
            yield _Fold(run[KEEP:-KEEP])
            yield from run[-KEEP:]
        else:
            yield from run
        run.clear()

    for seg in segments:
        if plain(seg):
            run.append(seg)
        else:
            yield from flush()
            yield seg
    yield from flush()


class Ladder:
    def __init__(self, ascii: bool = False, colour: bool = False) -> None:
        self.g = ASCII if ascii else UNICODE
        self.colour = colour
        self.state_width = STATE_WIDTH

    def paint(self, text: str, *codes: int | None) -> str:
        wanted = [str(c) for c in codes if c is not None]
        if not self.colour or not wanted or not text.strip():
            return text
        return f"\x1b[{';'.join(wanted)}m{text}\x1b[0m"

    def render(self, record: Record, trace: Trace) -> str:
        g = self.g
        segments = trace["segments"]
        self.state_width = max([STATE_WIDTH, *(len(_chain(s, 0)) for s in segments)])
        width = max([MIN_ARROW, *(len(label(s)) + 8 for s in segments)])
        client = f"{_host(record['client']['ip'])}:{record['client']['port']}"
        server = f"{_host(record['server']['ip'])}:{record['server']['port']}"
        lines = [
            f"connection {record['id']}: {client} -> {server}, {record['outcome']}, "
            f"{trace['total']} segment{'' if trace['total'] == 1 else 's'}, "
            f"{record['duration_ms']:g} ms",
            *([probe_line(record["probe"])] if record.get("probe") else []),
            "seq/ack: relative to each side's ISN; time: ms since the first segment; "
            "states: when they change",
            "",
        ]
        pad = " " * (TIME_WIDTH + 2)
        left_head = f"client {client}"
        right_head = f"server {server}"
        head_gap = self.state_width + 1 + width + 3 - len(left_head)
        if head_gap >= 2:
            lines.append(pad + self.paint(left_head, BOLD) + " " * head_gap +
                         self.paint(right_head, BOLD))
        else:
            lines.append(pad + self.paint(left_head, BOLD))
            lines.append(pad + " " * (self.state_width + 1 + width + 3) +
                         self.paint(right_head, BOLD))
        empty = pad + " " * (self.state_width + 1) + g.rail + " " * width + g.rail
        lines.append(empty)
        for row in _rows(segments):
            if isinstance(row, _Fold):
                lines.append(self._fold(row.segments, width))
            else:
                lines.append(self._arrow(row, width, trace["first_ns"]))
        if trace["truncated"]:
            lines.append(pad + f"... {trace['total'] - len(segments)} more segments not kept")
        lines.append(empty)
        final = record["final_state"]
        lines.append(pad + self.paint(f"{final['client']:<{self.state_width}}", BOLD) + " " +
                     " " * (width + 2) + " " + self.paint(final["server"], BOLD))
        lines += _legend(record, segments)
        return "\n".join(line.rstrip() for line in lines) + "\n"

    def _arrow(self, seg: TracedSegment, width: int, first_ns: int) -> str:
        g = self.g
        text = f" {label(seg)} "
        colour = _colour_of(seg)
        dashes = width - len(text) - 1
        before = dashes // 2
        after = dashes - before
        reset = RESET in seg["marks"]  # a RST ends in a cross: the connection is struck
        if seg["role"] == "client":
            arrow = g.line * before + text + g.line * after + ("X" if reset else g.right)
        else:
            arrow = ("X" if reset else g.left) + g.line * after + text + g.line * before
        ms = (seg["ts_ns"] - first_ns) / 1e6
        cstate, sstate = _chain(seg, 0), _chain(seg, 1)
        strong = BOLD if seg["flags"] & (SYN | FIN | RST_FLAG) else None
        return (f"{ms:>{TIME_WIDTH}.3f}  " +
                self.paint(f"{cstate:<{self.state_width}}", BOLD, CYAN) + " " + g.rail +
                self.paint(arrow, colour, strong) + g.rail + " " + self.paint(sstate, BOLD, CYAN))

    def _fold(self, segments: list[TracedSegment], width: int) -> str:
        g = self.g
        ms = (segments[-1]["ts_ns"] - segments[0]["ts_ns"]) / 1e6
        total = sum(seg["length"] for seg in segments)
        text = f"... {len(segments)} segments, {human_bytes(total)}, {ms:.3f} ms ..."
        line = f"{text:^{width}}"
        if len(line) > width:
            return " " * (TIME_WIDTH + 2 + self.state_width + 1) + g.fold + self.paint(line, DIM)
        return (" " * (TIME_WIDTH + 2 + self.state_width + 1) + g.fold + self.paint(line, DIM) +
                g.fold)


def _legend(record: Record, segments: list[TracedSegment]) -> list[str]:
    """Under the drawing: what each mark drawn means, and the frames captured twice (they
    are left out of the trace as of every count)."""
    lines = legend_lines({m for seg in segments for m in marks_of(seg)})
    copies = record["duplicates"]["client"] + record["duplicates"]["server"]
    if copies:
        lines.append(f"{copies} frame{'' if copies == 1 else 's'} captured twice, left out "
                     f"(duplicates: client {record['duplicates']['client']}, "
                     f"server {record['duplicates']['server']})")
    return ["", *lines] if lines else []


def _chain(seg: TracedSegment, side: int) -> str:
    """The states a side entered with this segment ("" when none), e.g. CLOSE_WAIT>LAST_ACK."""
    return ">".join(seg["entered"][side])


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def render(record: Record, trace: Trace, ascii: bool = False,
           colour: bool = False) -> str:
    """The ladder diagram of one connection as text (lines end with newlines)."""
    return Ladder(ascii, colour).render(record, trace)

"""Zeek's view of a connection: `conn_state`, `history` and the conn.log counters.

A `SegmentObserver` that replays, per segment, what Zeek's TCP session adapter
(src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc, TCP_Endpoint.cc) does:
its own originator (first packet's sender, flipped by the likely-server-port rule
or a SYN/SYN-ACK reversal, shown as `^`), its six endpoint states, the history
letters with their repetition rules, and the byte sizes from sequence numbers.
`conn_state` is then the function of the two endpoint states in
scripts/base/protocols/conn/main.zeek. docs/zeek.md maps all this onto tcptrace's
own (finer) per-endpoint states.

The per-segment path reads a few fields and compares integers; it allocates nothing
unless a segment is out of order, reveals a gap, or changes the history string.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tcptrace.decode import ACK, FIN, RST, SYN
from tcptrace.model import Role

if TYPE_CHECKING:
    from tcptrace.checksum import ChecksumLedger
    from tcptrace.connection import Connection

NS = 1_000_000_000
MOD = 1 << 32
HALF = 1 << 31

# Endpoint states (TCP_Endpoint.h, EndpointState)
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
STATE_NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED",
               "RESET")

# Connection::hist_seen bits (Conn.h); the responder's are shifted left by 16
HIST_SYN, HIST_FIN, HIST_RST, HIST_FIN_RST, HIST_DATA, HIST_ACK, HIST_MULTI = (
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40)

# likely_server_ports after `zeek` loads its base scripts: every TCP port a base protocol
# analyzer registers for (`redef likely_server_ports += { ports }` in each main.zeek).
DEFAULT_SERVER_PORTS: dict[str, frozenset[int]] = {
    "dce-rpc": frozenset({135, 137, 138, 139, 445, 593, 49152}),
    "dnp3": frozenset({20000}),
    "dns": frozenset({53, 5353, 5355}),
    "ftp": frozenset({21, 2811}),
    "http": frozenset({80, 81, 631, 3128, 8000, 8080, 8888}),
    "imap": frozenset({143}),
    "irc": frozenset({6666, 6667, 6668, 6669}),
    "krb": frozenset({88}),
    "ldap": frozenset({389, 3268}),
    "modbus": frozenset({502}),
    "mysql": frozenset({1434, 3306}),
    "pop3": frozenset({110}),
    "postgresql": frozenset({5432}),
    "rdp": frozenset({3389}),
    "redis": frozenset({6379}),
    "smb": frozenset({139, 445}),
    "smtp": frozenset({25, 587}),
    "socks": frozenset({1080}),
    "ssh": frozenset({22}),
    "ssl": frozenset({443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223}),
    "xmpp": frozenset({5222, 5269}),
}
LIKELY_SERVER_PORTS: frozenset[int] = frozenset().union(*DEFAULT_SERVER_PORTS.values())

# Timers (init-bare.zeek defaults) and what they do when they fire
ATTEMPT_DELAY_NS = RESET_DELAY_NS = CLOSE_DELAY_NS = 5 * NS
INACTIVITY_NS = 300 * NS
ATTEMPT, REMOVE = 0, 1

RSTOS0_HISTORY = re.compile(r"^\^?S[^HAFGIQ]*R.*")


class ZeekFactory:
    """Makes ZeekObservers sharing one server-port set and checksum ledger."""

    def __init__(self, server_ports: frozenset[int], ledger: ChecksumLedger | None) -> None:
        self.server_ports, self.ledger = server_ports, ledger

    def __call__(self) -> ZeekObserver:
        return ZeekObserver(self.server_ports, self.ledger)

    def with_ledger(self, ledger: ChecksumLedger) -> ZeekFactory:
        return ZeekFactory(self.server_ports, ledger)


class _End:
    """One Zeek TCP_Endpoint: state, sequence bookkeeping, counters."""

    __slots__ = (
        "ack",
        "blocks",
        "contig",
        "counts",
        "did_close",
        "fin_cnt",
        "fin_seq",
        "ip_bytes",
        "is_orig",
        "last",
        "last_fin",
        "last_rst",
        "last_syn",
        "missed",
        "pkts",
        "prev_state",
        "role",
        "rst_cnt",
        "start",
        "state",
        "thresholds",
    )

    def __init__(self, role: Role, is_orig: bool) -> None:
        self.role = role
        self.is_orig = is_orig
        self.state = self.prev_state = INACTIVE
        self.start = self.last = self.ack = 0
        """Unwrapped sequence numbers: start (ISN or a faked one), one past the highest
        sequence number sent, highest ack received from the peer."""
        self.fin_cnt = self.rst_cnt = 0
        self.fin_seq = 0
        self.did_close = False
        self.last_syn = self.last_fin = self.last_rst = 0
        self.counts = [0, 0, 0, 0]  # C, G, T, W events
        self.thresholds = [1, 1, 1, 1]
        self.pkts = self.ip_bytes = 0
        self.contig = -1
        """Sequence number up to which this side's data was seen (or given up as a gap)."""
        self.blocks: list[tuple[int, int]] = []
        self.missed = 0

    def set_state(self, state: int) -> None:
        self.prev_state, self.state = self.state, state

    def init_seq(self, start: int, last: int) -> None:
        self.start = self.ack = start
        self.last = last
        self.contig = start + 1
        self.blocks = []

    def size(self, peer: _End) -> int:
        """TCP_Endpoint::Size(): payload bytes from sequence numbers (SYN and FIN removed)."""
        if self.prev_state == SYN_SENT and self.state == RESET and peer.state == INACTIVE \
                and self.ack - self.start not in (0, 1):
            return 0
        size = max(self.last, self.ack) - self.start
        if size > 0:
            size -= 1
        if self.fin_cnt > 0 and size != 0:
            size -= 1
        return max(size, 0)


C_, G_, T_, W_ = range(4)
SCALED = "CGTW"


class ZeekObserver:
    """Computes Zeek's conn.log view of one connection (see the module docstring)."""

    name = "zeek"
    __slots__ = (
        "deadline",
        "earlier",
        "ends",
        "first_ns",
        "hist_seen",
        "history",
        "last_ns",
        "ledger",
        "ledger_keys",
        "orig",
        "partial",
        "seen_first",
        "server_ports",
        "started",
        "timers",
    )

    def __init__(self, server_ports: frozenset[int] = LIKELY_SERVER_PORTS,
                 ledger: ChecksumLedger | None = None) -> None:
        self.ends = (_End(Role.client, True), _End(Role.server, False))
        self.orig: _End = self.ends[0]
        self.history = ""
        self.hist_seen = 0
        self.partial = False
        self.first_ns = self.last_ns = 0
        self.server_ports = server_ports
        self.ledger = ledger
        self.ledger_keys: tuple[Any, Any] | None = None
        self.started = False
        self.seen_first = 0  # bit 1: orig's first packet seen, bit 2: resp's
        self.earlier: list[dict[str, Any]] = []
        self.timers: list[tuple[int, int]] = []
        """Zeek's connection timers: (deadline ns, kind); `deadline` is the earliest."""
        self.deadline = 0
        """Zeek connections this one's 4-tuple had before Zeek saw it reused (IsReuse)."""

    def _reset(self) -> None:
        """Zeek starts a new connection on this 4-tuple: keep the finished one's result."""
        self.earlier.append(self._result())
        self.ends = (_End(Role.client, True), _End(Role.server, False))
        self.orig = self.ends[0]
        self.history = ""
        self.hist_seen = 0
        self.partial = False
        self.started = False
        self.seen_first = 0
        self.timers = []
        self.deadline = 0

    def _timer(self, at_ns: int, kind: int) -> None:
        self.timers.append((at_ns, kind))
        self.deadline = min(t for t, _ in self.timers)

    def _expire(self, now_ns: int) -> None:
        """Timers due before this packet: a removed connection ends here (Zeek logs it, and
        the packet starts a new one). init-bare.zeek defaults; docs/zeek.md, "Timers"."""
        due = sorted(t for t in self.timers if t[0] < now_ns)
        self.timers = [t for t in self.timers if t[0] >= now_ns]
        self.deadline = min((t for t, _ in self.timers), default=0)
        orig = self.orig
        resp = self.ends[1] if orig is self.ends[0] else self.ends[0]
        for _, kind in due:
            if kind == ATTEMPT and not (orig.state in (SYN_SENT, SYN_ACK_SENT)
                                        and resp.state == INACTIVE):
                continue
            self._reset()
            return
        if now_ns - self.last_ns > INACTIVITY_NS and self.started:
            self._reset()

    def _is_reuse(self, seq: int, flags: int) -> bool:
        """TCPSessionAdapter::IsReuse: an initial SYN (or a SYN-ACK to a silent originator)
        that does not belong to this connection starts a new one."""
        orig = self.orig
        resp = self.ends[1] if orig is self.ends[0] else self.ends[0]
        first = orig
        if flags & ACK:
            if orig.state != INACTIVE:
                return False
            first = resp
        if orig.state in (CLOSED, RESET) and resp.state in (CLOSED, RESET, INACTIVE):
            return True
        if seq == first.start % MOD:
            return False
        return not (not flags & ACK and first.state == SYN_ACK_SENT and resp.state == INACTIVE
                    and seq == resp.start % MOD)

    @classmethod
    def factory(cls, server_ports: frozenset[int] = LIKELY_SERVER_PORTS,
                ledger: ChecksumLedger | None = None) -> ZeekFactory:
        return ZeekFactory(server_ports, ledger)

    @classmethod
    def with_ledger(cls, ledger: ChecksumLedger) -> ZeekFactory:
        """The factory the engine uses under --verify-checksums."""
        return ZeekFactory(LIKELY_SERVER_PORTS, ledger)

    # ---- history helpers (Connection::CheckHistory / AddHistory / ScaledHistoryEntry)
    def _check(self, end: _End, mask: int, code: str) -> bool:
        """Adds `code` the first time; True when it was already seen."""
        if not end.is_orig:
            mask <<= 16
            code = code.lower()
        if self.hist_seen & mask:
            return True
        self.hist_seen |= mask
        self.history += code
        return False

    def _add(self, end: _End, code: str) -> None:
        self.history += code if end.is_orig else code.lower()

    def _scaled(self, end: _End, which: int) -> None:
        end.counts[which] += 1
        if end.counts[which] == end.thresholds[which]:
            self._add(end, SCALED[which])
            end.thresholds[which] *= 10

    def _flip(self) -> None:
        """Connection::FlipRoles: the responder becomes the originator."""
        a, b = self.ends
        a.is_orig, b.is_orig = not a.is_orig, not b.is_orig
        self.orig = a if a.is_orig else b
        self.history += "^"

    def _first(self, conn: Connection, role: Role, flags: int) -> None:
        """The connection's first packet: Zeek's originator, flipped per WantConnection."""
        self.started = True
        me = self.ends[role.value]
        other = self.ends[role.peer.value]
        me.is_orig, other.is_orig = True, False
        self.orig = me
        if flags & SYN and flags & ACK:
            # a connection whose first packet is a SYN-ACK: the corpus shows Zeek flips it
            # whatever the ports (docs/zeek.md, "Originator")
            self._flip()
        elif not flags & SYN:
            src, dst = (conn.client, conn.server) if role is Role.client else (
                conn.server, conn.client)
            if src.port in self.server_ports:
                if dst.port in self.server_ports:
                    flip = not flags & SYN and src.port < dst.port
                else:
                    flip = True
                if flip:
                    self._flip()

    def _partial_status(self, end: _End, flags: int) -> None:
        """TCPSessionAdapter::SetPartialStatus."""
        if end.is_orig:
            if not self.seen_first & 1:
                self.partial = not flags & SYN or bool(flags & ACK)
                self.seen_first |= 1
        elif not self.seen_first & 2:
            if not self.partial:
                self.partial = not flags & SYN
            self.seen_first |= 2

    # ---- the observer protocol
    def bad_checksum(self, conn: Connection, role: Role, ts_ns: int, flags: int) -> None:
        """A segment Zeek would drop for its checksum: only a `C`/`c` letter remains."""
        if not self.started:
            self._first(conn, role, flags)
            self.first_ns = self.last_ns = ts_ns
        self._scaled(self.ends[role.value], C_)

    def segment(self, conn: Connection, role: Role, ts_ns: int, flags: int, seq: int, ack: int,
                window: int, plen: int, ip_len: int) -> None:
        if self.ledger is not None:
            self.ledger.replay(self, conn, ts_ns)
        if self.started and (ts_ns - self.last_ns > INACTIVITY_NS or
                             (self.deadline and ts_ns > self.deadline)):
            self._expire(ts_ns)
        if flags & SYN and self.started and not flags & RST and self._is_reuse(seq, flags):
            self._reset()
        if not self.started:
            self._first(conn, role, flags)
            self.first_ns = ts_ns
        me = self.ends[role.value]
        peer = self.ends[role.peer.value]
        me.pkts += 1
        me.ip_bytes += ip_len
        self._partial_status(me, flags)
        syn, fin, rst = flags & SYN, flags & FIN, flags & RST
        seg_len = plen + (1 if syn else 0) + (1 if fin else 0)

        # unwrap the 32-bit sequence number next to what this side sent last
        state = me.state
        if state == INACTIVE and not me.pkts - 1 and not me.last:
            base = seq
        else:
            base = me.last + ((seq - me.last + HALF) % MOD) - HALF
        # init_endpoint
        if state == INACTIVE:
            if syn:
                me.init_seq(base, base + seg_len)
            else:  # a partial connection: fake a SYN just before the first segment
                me.init_seq(base - 1, base)
        elif syn and (
            (state in (SYN_SENT, SYN_ACK_SENT) and base != me.start)
            or state in (ESTABLISHED, PARTIAL)
            or (state == RESET and me.prev_state == INACTIVE)
        ):
            me.init_seq(base, base + seg_len)

        if not (self.ends[0].did_close and self.ends[1].did_close):
            self.last_ns = ts_ns
        if fin:
            me.fin_cnt += 1
            me.fin_seq = base + seg_len
        if rst:
            me.rst_cnt += 1

        rel_seq = base - me.start
        peer_ack = -1
        if flags & ACK and peer.state != INACTIVE:
            peer_ack = peer.last + ((ack - peer.last + HALF) % MOD) - HALF
            if not rst and peer_ack > peer.ack and not (ack == 0 and peer_ack - peer.ack > 2**24):
                peer.ack = peer_ack

        # update_history
        bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if bits > 1:
            if fin and rst:
                self._check(me, HIST_FIN_RST, "I")
            else:
                self._check(me, HIST_MULTI, "Q")
        elif bits == 1:
            if syn:
                code = "H" if flags & ACK else "S"
                if self._check(me, HIST_SYN, code) and rel_seq != me.last_syn:
                    self._add(me, code)
                me.last_syn = rel_seq
            elif fin:
                if self._check(me, HIST_FIN, "F") and rel_seq + plen != me.last_fin:
                    self._add(me, "F")
                me.last_fin = rel_seq + plen
            else:
                if self._check(me, HIST_RST, "R") and rel_seq != me.last_rst:
                    self._add(me, "R")
                me.last_rst = rel_seq
        elif plen:
            self._check(me, HIST_DATA, "D")
        elif flags & ACK:
            self._check(me, HIST_ACK, "A")

        # update_window: a zero window outside SYN/FIN/RST and before any reset
        if window == 0 and not syn and not fin and not rst and not me.rst_cnt \
                and not peer.rst_cnt:
            self._scaled(me, W_)

        # update_last_seq: sequence progress, or a retransmission
        end = base + seg_len
        delta = end - me.last
        if (syn or rst) and (delta > 2**30 or delta < -(2**30)):
            pass
        elif delta > 0:
            me.last = end
        elif plen > 0:
            self._scaled(me, T_)

        if plen:
            self._data(me, base + (1 if syn else 0), plen)
        self._state_machine(me, peer, base, plen, flags)

        if peer_ack >= 0 and not rst:
            self._ack_received(peer, me, peer_ack, not fin)

    def _data(self, me: _End, start: int, length: int) -> None:
        """Payload seen: extend the contiguous prefix (or hold an out-of-order block)."""
        stop = start + length
        if start <= me.contig:
            if stop > me.contig:
                me.contig = stop
                if me.blocks:
                    self._merge(me)
        elif stop > me.contig:
            me.blocks.append((start, stop))

    @staticmethod
    def _merge(me: _End) -> None:
        me.blocks.sort()
        keep = []
        for lo, hi in me.blocks:
            if lo <= me.contig:
                me.contig = max(me.contig, hi)
            else:
                keep.append((lo, hi))
        me.blocks = keep

    def _ack_received(self, sender: _End, acker: _End, ack: int, flag_gap: bool) -> None:
        """TCP_Reassembler::AckReceived: bytes acknowledged but never seen are a gap."""
        upto = ack
        if sender.fin_cnt and upto >= sender.fin_seq:
            upto = sender.fin_seq - 1
        if upto <= sender.contig:
            return
        if self.partial and upto - sender.start <= 2:
            sender.contig = upto
            return
        missing = 0
        holes = 0
        pos = sender.contig
        if sender.blocks:
            sender.blocks.sort()
            for lo, hi in sender.blocks:
                if lo >= upto:
                    break
                if lo > pos:
                    missing += lo - pos
                    holes += 1
                pos = max(pos, hi)
        if pos < upto:
            missing += upto - pos
            holes += 1
        sender.contig = max(pos, upto)
        if sender.blocks:
            self._merge(sender)
        sender.missed += missing
        if flag_gap and missing and acker.state not in (CLOSED, RESET):
            for _ in range(holes):
                self._scaled(sender, G_)

    def _state_machine(self, me: _End, peer: _End, base: int, plen: int, flags: int) -> None:
        """TCPSessionAdapter::UpdateStateMachine."""
        syn, fin, rst, has_ack = flags & SYN, flags & FIN, flags & RST, flags & ACK
        state = me.state
        close = False
        if state == INACTIVE:
            if syn:
                if me.is_orig:
                    me.set_state(SYN_ACK_SENT if has_ack else SYN_SENT)
                else:
                    if not has_ack and peer.state == SYN_ACK_SENT and base == me.start:
                        # SYN/SYN-ACK reversal: flip, and the connection is established
                        self.partial = False
                        self._flip()
                        peer.set_state(ESTABLISHED)
                    if peer.state == SYN_SENT:
                        peer.set_state(ESTABLISHED)
                    me.set_state(ESTABLISHED)
            if fin:
                me.set_state(CLOSED)
                close = True
            if rst:
                me.set_state(RESET)
                close = True
            if me.state == INACTIVE and not (
                not me.is_orig and plen == 0 and peer.state == SYN_SENT
            ):
                me.set_state(PARTIAL)
        elif state in (SYN_SENT, SYN_ACK_SENT):
            if fin:
                me.set_state(CLOSED)
                close = True
            if rst:
                me.set_state(RESET)
                close = True
        elif state in (PARTIAL, ESTABLISHED):
            if syn and state == PARTIAL and peer.state == INACTIVE and not has_ack:
                me.set_state(SYN_SENT)
            if fin and not rst:
                me.set_state(CLOSED)
                close = True
            if rst:
                me.set_state(RESET)
                close = True
        elif state == CLOSED and rst and peer.state != CLOSED:
            me.set_state(RESET)
            if not me.did_close:
                close = True
        if close:
            me.did_close = True
        if me.state != state:
            self._timers_for(me, peer, state)

    def _timers_for(self, me: _End, peer: _End, before: int) -> None:
        now = self.last_ns
        if me.state in (SYN_SENT, SYN_ACK_SENT) and before == INACTIVE and me.is_orig:
            self._timer(now + ATTEMPT_DELAY_NS, ATTEMPT)
        elif me.state == RESET:
            self._timer(now + RESET_DELAY_NS, REMOVE)
        elif me.state == CLOSED and peer.state in (CLOSED, RESET):
            self._timer(now + CLOSE_DELAY_NS, REMOVE)

    # ---- results
    def conn_state(self) -> str:
        """conn_state() of scripts/base/protocols/conn/main.zeek."""
        orig = self.orig
        resp = self.ends[1] if orig is self.ends[0] else self.ends[0]
        os_, rs = orig.state, resp.state
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                os_ == RESET and orig.size(resp) == 0 and resp.size(orig) == 0
            ):
                return "REJ"
            if os_ in (INACTIVE, PARTIAL):
                return "RSTRH"
            return "RSTR"
        if os_ == RESET:
            if rs in (INACTIVE, PARTIAL):
                return "RSTOS0" if RSTOS0_HISTORY.match(self.history) else "OTH"
            return "RSTO"
        if os_ == CLOSED and rs == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if rs in (INACTIVE, PARTIAL) else "S2"
        if rs == CLOSED:
            return "SHR" if os_ in (INACTIVE, PARTIAL) else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    def result(self, conn: Connection) -> dict[str, Any]:
        if self.ledger is not None:
            self.ledger.replay(self, conn, None)
        out = self._result()
        out["earlier"] = self.earlier
        return out

    def _result(self) -> dict[str, Any]:
        orig = self.orig
        resp = self.ends[1] if orig is self.ends[0] else self.ends[0]
        duration = (self.last_ns - self.first_ns) / NS
        return {
            "orig": orig.role.name,
            "ts": self.first_ns / NS,
            "conn_state": self.conn_state(),
            "history": self.history,
            "duration": round(duration, 6) if duration > 0 else None,
            "orig_bytes": orig.size(resp),
            "resp_bytes": resp.size(orig),
            "missed_bytes": orig.missed + resp.missed,
            "orig_pkts": orig.pkts,
            "orig_ip_bytes": orig.ip_bytes,
            "resp_pkts": resp.pkts,
            "resp_ip_bytes": resp.ip_bytes,
            "orig_state": STATE_NAMES[orig.state],
            "resp_state": STATE_NAMES[resp.state],
        }

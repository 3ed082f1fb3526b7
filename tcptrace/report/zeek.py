"""`--format zeek`: a Zeek-style tab-separated conn.log (readable by zeek-cut).

Header lines (#separator, #set_separator, #empty_field, #unset_field, #path, #open,
#fields, #types), one row per Zeek connection (a tcptrace record can hold several, see
`zeek.earlier`), then #close. Unset values are `-`. The uid is deterministic: "C" and
the base62 form of a hash of the 5-tuple and the start time.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, TextIO

from tcptrace.model import ConnectionRecord
from tcptrace.report.formats import Writer
from tcptrace.report.summary import Summary

FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state", "missed_bytes", "history",
          "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes")
TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count",
         "count", "string", "count", "string", "count", "count", "count", "count")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def uid(orig_h: str, orig_p: int, resp_h: str, resp_p: int, ts: float) -> str:
    digest = hashlib.blake2b(f"{orig_h}|{orig_p}|{resp_h}|{resp_p}|tcp|{ts:.6f}".encode(),
                             digest_size=12).digest()
    value = int.from_bytes(digest, "big")
    chars: list[str] = []
    while value and len(chars) < 17:
        value, rest = divmod(value, 62)
        chars.append(BASE62[rest])
    return "C" + "".join(chars)


def _stamp() -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())


class ZeekWriter(Writer):
    """Streams rows as connections end, like Zeek writes conn.log on removal."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self.started = False

    def _header(self) -> None:
        self.out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n"
                       "#unset_field\t-\n#path\tconn\n")
        self.out.write(f"#open\t{_stamp()}\n")
        self.out.write("#fields\t" + "\t".join(FIELDS) + "\n")
        self.out.write("#types\t" + "\t".join(TYPES) + "\n")
        self.started = True

    def write(self, record: ConnectionRecord) -> None:
        if not self.started:
            self._header()
        zeek: dict[str, Any] = record.extra.get("zeek") or {}
        if not zeek:
            return
        for conn in [*zeek["earlier"], zeek]:
            orig, resp = ((record.client, record.server) if conn["orig"] == "client"
                          else (record.server, record.client))
            row = (
                f"{conn['ts']:.6f}", uid(orig.ip, orig.port, resp.ip, resp.port, conn["ts"]),
                orig.ip, orig.port, resp.ip, resp.port, "tcp", None,
                f"{conn['duration']:.6f}" if conn["duration"] is not None else None,
                conn["orig_bytes"], conn["resp_bytes"], conn["conn_state"],
                conn["missed_bytes"], conn["history"] or None, conn["orig_pkts"],
                conn["orig_ip_bytes"], conn["resp_pkts"], conn["resp_ip_bytes"],
            )
            self.out.write("\t".join("-" if v is None else str(v) for v in row) + "\n")

    def finish(self, summary: Summary, source: dict[str, Any]) -> None:
        if not self.started:
            self._header()
        self.out.write(f"#close\t{_stamp()}\n")

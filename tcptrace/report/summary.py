"""The capture-wide summary, accumulated record by record (no second pass)."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: a value that was actually observed."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


@dataclass
class Summary:
    connections: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    # Exact percentiles need every value: kept as packed doubles (8 bytes each, not a
    # 32-byte float object plus a list slot), so 10M packets of short connections add MBs.
    rtt_ms: array[float] = field(default_factory=lambda: array("d"))
    setup_ms: array[float] = field(default_factory=lambda: array("d"))
    syn_retransmits: int = 0
    ambiguous_handshakes: int = 0
    time_wait_sides: Counter[str] = field(default_factory=Counter)
    time_wait_endpoints: Counter[str] = field(default_factory=Counter)
    rst_kinds: Counter[str] = field(default_factory=Counter)
    rst_senders: Counter[str] = field(default_factory=Counter)
    half_closes: int = 0
    keepalive_connections: int = 0
    protocols: Counter[str] = field(default_factory=Counter)
    requests: array[int] = field(default_factory=lambda: array("q"))
    port_reuse: int = 0

    def add_record(self, r: Mapping[str, Any]) -> None:
        """Count one record (a dict, as docs/output.md describes it)."""
        self.connections += 1
        self.outcomes[r["outcome"]] += 1
        hs = r["handshake"]
        if hs["rtt_ms"] is not None:
            self.rtt_ms.append(hs["rtt_ms"])
        if hs["setup_ms"] is not None:
            self.setup_ms.append(hs["setup_ms"])
        self.syn_retransmits += hs["syn_retransmits"]
        self.ambiguous_handshakes += hs["ambiguity"] is not None and not hs["simultaneous_open"]
        tw = r["close"]["time_wait"]
        if tw is not None:
            self.time_wait_sides[tw] += 1
            if tw in ("client", "both"):
                self.time_wait_endpoints[f"{_host(r['client']['ip'])}:*"] += 1
            if tw in ("server", "both"):
                self.time_wait_endpoints[f"{_host(r['server']['ip'])}:{r['server']['port']}"] += 1
        rst = r["rst"]
        if rst is not None:
            self.rst_kinds[rst["kind"]] += 1
            self.rst_senders[rst["sender"]] += 1
        self.half_closes += r["half_close"] is not None
        probes = r["keepalive"]["probes"]
        self.keepalive_connections += bool(probes["client"] or probes["server"])
        reuse = r["reuse"]
        self.protocols[reuse["protocol"] or "other"] += 1
        if reuse["requests"]:
            self.requests.append(reuse["requests"])
        self.port_reuse += r["previous_id"] is not None

    def as_dict(self) -> dict[str, Any]:
        reqs = array("d", self.requests)
        return {
            "connections": self.connections,
            "outcomes": dict(self.outcomes.most_common()),
            "handshake": {
                "rtt_ms": spread(self.rtt_ms),
                "setup_ms": spread(self.setup_ms),
                "syn_retransmits": self.syn_retransmits,
                "ambiguous": self.ambiguous_handshakes,
            },
            "time_wait": {
                "by_side": dict(self.time_wait_sides.most_common()),
                "by_endpoint": dict(self.time_wait_endpoints.most_common()),
            },
            "rst": {
                "by_kind": dict(self.rst_kinds.most_common()),
                "by_sender": dict(self.rst_senders.most_common()),
            },
            "half_closes": self.half_closes,
            "keepalive_connections": self.keepalive_connections,
            "port_reuse": self.port_reuse,
            "reuse": {
                "protocols": dict(self.protocols.most_common()),
                "requests_per_connection": {
                    **spread(reqs),
                    "mean": round(sum(reqs) / len(reqs), 3) if reqs else None,
                    "reused": sum(1 for n in self.requests if n > 1),
                },
            },
        }


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip

"""A probe connection in words (docs/health.md, "Scans and probes"): what was sent, what
answered, and what that says of the port, as nmap(1) reads it ("Port Scanning Techniques").
The HTML report's detail view says the same (report.js `probeText`)."""

from __future__ import annotations

from typing import Any


def port_meaning(kind: str, answer: str) -> str:
    """What the answer to a probe of this kind says of the port."""
    if answer == "syn_ack":
        return "open port"
    if answer == "none":
        # an open port drops a segment without SYN, RST or ACK (RFC 9293 section 3.10.7.2)
        return "filtered port" if kind == "syn" else "open or filtered port"
    # answer "rst": RFC 9293 section 3.10.7.1, the closed port's answer; but a listening port
    # answers an ACK with the same RST, and Linux a FIN/ACK
    return {"ack": "unfiltered port",
            "maimon": "closed port, or open on Linux",
            "other": "closed port, or unfiltered if the probe had ACK"}.get(kind, "closed port")


def probe_line(probe: dict[str, Any]) -> str:
    """E.g. `probe: xmas, answered by rst (closed port)`; the sender is named when it is the
    server (the port rule gave the prober the lower port)."""
    kind, answer = probe["kind"], probe["answer"]
    said = "unanswered" if answer == "none" else f"answered by {answer}"
    by = ", sent by the server" if probe["sender"] == "server" else ""
    return f"probe: {kind}, {said} ({port_meaning(kind, answer)}){by}"

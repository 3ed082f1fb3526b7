"""Analysis options shared by the commands that read captures (`analyze`, `check`, `report`,
`ladder`), declared once, so that a capture judged by `check` or drawn by `report` is
analyzed exactly as `analyze` would analyze it with the same flags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from tcptrace.clitypes import Count, FiniteFloat
from tcptrace.defaults import DEFAULT_LINGER_S, DEFAULT_MAX_FLOWS
from tcptrace.digits import bounded_int

F = TypeVar("F", bound=Callable[..., Any])

TUNNEL_PORTS = {"vxlan": 4789, "geneve": 6081, "teredo": 3544, "gtp": 2152, "gre": 4754,
                "ayiya": 5072}
"""The UDP tunnels tcptrace decapsulates, with the IANA port each is always decoded on
(src/decode/encap.rs, `TunnelPorts::default`)."""


class TunnelPort(click.ParamType[tuple[str, int]]):
    """`KIND=PORT`: decapsulate KIND (a key of TUNNEL_PORTS) on UDP port PORT too."""

    name = "KIND=PORT"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        kind, sep, port = str(value).partition("=")
        kind = kind.strip().lower()
        if not sep or kind not in TUNNEL_PORTS:
            self.fail(f"{value!r}: expected KIND=PORT with KIND one of "
                      f"{', '.join(TUNNEL_PORTS)}", param, ctx)
        if not bounded_int(port.strip(), 65535):
            self.fail(f"{value!r}: PORT must be a UDP port, 1 to 65535", param, ctx)
        return kind, int(port.strip())


def tunnel_port_option(command: F) -> F:
    """--tunnel-port KIND=PORT, repeatable."""
    defaults = ", ".join(f"{kind} {port}" for kind, port in TUNNEL_PORTS.items())
    return click.option(
        "--tunnel-port", "tunnel_ports", type=TunnelPort(), multiple=True,
        help=f"Also decapsulate the UDP tunnel KIND on PORT (repeatable; e.g. vxlan=8472). "
             f"Always decoded: {defaults}; GRE, ERSPAN and IP in IP need no port.",
    )(command)


def analysis_options(command: F) -> F:
    """--linger, --max-flows, --verify-checksums and --tunnel-port, in this order in --help
    (the decorator applied last is listed first)."""
    command = tunnel_port_option(command)
    for option in reversed([
        click.option("--linger", type=FiniteFloat(), default=DEFAULT_LINGER_S,
                     show_default=True,
                     help="Seconds (capture time) an ended connection still collects late "
                          "segments (later ones are counted as after_close)."),
        click.option("--max-flows", type=Count(), default=DEFAULT_MAX_FLOWS,
                     show_default=True,
                     help="Cap on connections held at once; the longest idle are evicted "
                          "first (with a warning)."),
        click.option("--verify-checksums", is_flag=True,
                     help="Leave out segments with a bad TCP/IPv4 checksum (as Zeek does "
                          "without -C)."),
    ]):
        command = option(command)
    return command


def progress_option(command: F) -> F:
    """--no-progress: no bar, the warnings kept (-q hides both)."""
    return click.option("--no-progress", is_flag=True,
                        help="No progress bar (it is drawn only when stderr is a terminal, "
                             "for reads longer than a second).")(command)

"""`tcptrace check`: a CI gate. Exit 0 when every rule holds, 1 when one fails, 2 on
unusable input (raised as TcptraceError / click usage errors, turned into one line by
tcptrace.cli.main)."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

import click

from tcptrace import native
from tcptrace.check.evaluate import Evaluation, Result, evaluate
from tcptrace.check.output import FORMATS, write_github, write_json, write_junit, write_text
from tcptrace.check.rules import SIDES, Rule, flag_rule, load_rules
from tcptrace.clitypes import FiniteFloat
from tcptrace.defaults import DEFAULT_MSL_S
from tcptrace.options import analysis_options, progress_option
from tcptrace.outputs import check_writable, refuse_inputs, replaced_on_success
from tcptrace.progress import watch_for

EXIT_FAILED = 1


SETUP = lambda ms: {"check": "handshake", "metric": "setup_ms", "max_ms": ms}  # noqa: E731
RTT_P99 = lambda ms: {  # noqa: E731
    "check": "handshake", "metric": "rtt_ms", "percentile": 99, "max_ms": ms}
FLAG_RULES: dict[str, Callable[[Any], dict[str, Any]]] = {
    # flag: the [[rule]] table it stands for
    "--max-setup-ms": SETUP,
    "--max-rtt-p99-ms": RTT_P99,
    # the names before 0.2, which did not say what they measure: still accepted, hidden
    "--max-handshake-ms": SETUP,
    "--max-handshake-p99-ms": RTT_P99,
    "--max-syn-retransmits": lambda n: {"check": "syn_retransmits", "max": n},
    "--no-rst": lambda _: {"check": "rst"},
    "--time-wait-on": lambda side: {"check": "time_wait", "on": side},
    "--max-time-wait": lambda n: {"check": "time_wait_concurrency", "max": n},
    "--no-half-close": lambda _: {"check": "half_close"},
    "--min-requests": lambda n: {"check": "reuse", "min_requests": n},
    "--no-incomplete": lambda _: {"check": "completed"},
    "--min-connections": lambda n: {"check": "connections", "min": n},
    "--max-retransmit-rate": lambda pct: {"check": "retransmit_rate", "max_pct": pct},
    "--no-zero-window-stall": lambda _: {"check": "zero_window_stall"},
}
EMPTY_RULE = {"check": "connections", "min": 1,
              "name": "at least one connection checked (--allow-empty passes on none)"}
"""Added when nothing was checked: an empty capture, or a --filter matching nothing (tcpdump
on the wrong interface), must not be a green build."""


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Note a rule flag given on the command line: click processes the parameters in the
    order they were typed, so the rules keep that order."""
    if value is not None and value is not False and param.opts:
        ctx.meta.setdefault("tcptrace.rule_flags", []).append((param.opts[0], value))
    return value


def _flag_rules(ctx: click.Context) -> list[Rule]:
    """The rules the one-off flags stand for, in command-line order, validated like
    [[rule]] tables."""
    return [flag_rule(flag, FLAG_RULES[flag](value))
            for flag, value in ctx.meta.get("tcptrace.rule_flags", [])]


@click.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("-r", "--rules", "rules_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Rules file (TOML, see docs/check.md); combines with the rule flags.")
@click.option("--max-setup-ms", type=FiniteFloat(), metavar="MS", callback=_remember,
              help="Every connection's set-up time (handshake.setup_ms: SYN to the client's "
                   "ACK) is at most MS.")
@click.option("--max-rtt-p99-ms", type=FiniteFloat(), metavar="MS", callback=_remember,
              help="The handshake round trip (handshake.rtt_ms) at p99 is at most MS.")
@click.option("--max-handshake-ms", type=FiniteFloat(), callback=_remember, hidden=True)
@click.option("--max-handshake-p99-ms", type=FiniteFloat(), callback=_remember, hidden=True)
@click.option("--max-syn-retransmits", type=click.IntRange(min=0), metavar="N",
              callback=_remember, help="No connection retransmits its SYN more than N times.")
@click.option("--no-rst", is_flag=True, callback=_remember, help="Any RST fails.")
@click.option("--time-wait-on", type=click.Choice(SIDES), callback=_remember,
              help="Only this side may hold TIME_WAIT (the other side or both fails).")
@click.option("--max-time-wait", type=click.IntRange(min=0), metavar="N", callback=_remember,
              help="At most N TIME_WAITs held at once per holder ip:port.")
@click.option("--no-half-close", is_flag=True, callback=_remember,
              help="Any half-close fails.")
@click.option("--min-requests", type=click.IntRange(min=0), metavar="N", callback=_remember,
              help="Every HTTP connection carries at least N requests (keep-alive reuse).")
@click.option("--no-incomplete", is_flag=True, callback=_remember,
              help="Connections UNANSWERED, HANDSHAKE_FAILED or REFUSED fail, and probes "
              "(HANDSHAKE_ABORTED, PROBE_RESET, PROBE_UNANSWERED).")
@click.option("--min-connections", type=click.IntRange(min=0), metavar="N",
              callback=_remember, help="At least N connections.")
@click.option("--max-retransmit-rate", type=FiniteFloat(max=100), metavar="PCT",
              callback=_remember,
              help="At most PCT per cent of the payload bytes, over all connections, are "
                   "retransmissions (probes and capture duplicates excluded).")
@click.option("--no-zero-window-stall", is_flag=True, callback=_remember,
              help="Connections that ended STALLED on a zero window fail.")
@click.option("--allow-empty", is_flag=True,
              help="Pass when no connection was checked (by default that fails).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="text",
              show_default=True,
              help="Report format on stdout (junit: the --junit document).")
@click.option("--junit", metavar="FILE", type=click.Path(dir_okay=False, writable=True),
              help="Also write a JUnit XML report to FILE: one testcase per rule.")
@click.option("--list", "limit", type=click.IntRange(min=0), default=20, show_default=True,
              metavar="N",
              help="Offenders listed per rule in text and github output (0: all).")
@click.option("--filter", "filter_", metavar="EXPR",
              help='Check only the frames that match (pcap-filter(7), compiled by libpcap: '
                   '"tcp port 80 and host 10.0.0.1").')
@click.option("--msl", type=FiniteFloat(), default=DEFAULT_MSL_S, show_default=True,
              help="Maximum segment lifetime in seconds; TIME_WAIT lasts 2 * MSL.")
@analysis_options
@click.option("-q", "--quiet", is_flag=True,
              help="Nothing on stderr but errors (no warnings, no progress bar).")
@progress_option
@click.pass_context
def check(ctx: click.Context, /, captures: tuple[str, ...], rules_path: str | None, fmt: str,
          junit: str | None, limit: int, filter_: str | None, msl: float, quiet: bool,
          no_progress: bool, allow_empty: bool, linger: float, max_flows: int,
          verify_checksums: bool, tunnel_ports: tuple[tuple[str, int], ...],
          **flags: Any) -> None:
    """Fail (exit 1) when the connections in CAPTURES break a rule.

    Rules come from --rules FILE and from the rule flags (in the order given). Exit
    status: 0 every rule holds, 1 a rule failed or no connection was checked (unless
    --allow-empty), 2 unusable input.
    """
    rules = (load_rules(rules_path) if rules_path else []) + _flag_rules(ctx)
    if not rules:
        raise click.UsageError("no rules: give --rules FILE or a rule flag such as --no-rst",
                               ctx)
    if junit == "-":  # stdout carries the -f report: two documents would interleave there
        raise click.BadParameter("standard output carries the -f report; use -f junit to "
                                 "write the JUnit XML there", ctx, param_hint="'--junit'")
    if junit:
        refuse_inputs(junit, captures, "--junit")
        check_writable(junit)
    run = native.record_run(list(captures), filter_text=filter_, msl_s=msl, linger_s=linger,
                            max_flows=max_flows, verify_checksums=verify_checksums,
                            tunnel_ports=list(tunnel_ports))
    evaluation = Evaluation(rules)
    try:
        native.read_records(run, evaluation.feed,
                            watch=watch_for(list(captures), enabled=not (quiet or no_progress)))
    finally:
        if not quiet:
            for warning in run.warnings():
                click.echo(f"tcptrace: warning: {warning}", err=True)
    connections = evaluation.connections
    results = evaluation.results()
    if not connections and not allow_empty:  # nothing read: judged on no records
        results += evaluate([flag_rule("--allow-empty not given", EMPTY_RULE)], [])
    try:
        if fmt == "json":
            write_json(sys.stdout, results, run.source_report())
        elif fmt == "github":
            write_github(sys.stdout, results, connections, limit)
        elif fmt == "junit":
            _write_junit_to_stdout(results, connections)
        else:
            write_text(sys.stdout, results, connections, limit)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the verdict below is the exit status all the same
        from tcptrace.cli import silence_stdout

        silence_stdout()
    if junit:
        with replaced_on_success(junit) as temp, \
                open(temp, "w", encoding="utf-8", newline="") as out:
            write_junit(out, results, connections)
    if not all(r.passed for r in results):
        # SystemExit, not ctx.exit: click returns ctx.exit codes from main() in
        # non-standalone mode, and tcptrace.cli.main drops them.
        sys.exit(EXIT_FAILED)


def _write_junit_to_stdout(results: list[Result], connections: int) -> None:
    """`-f junit`: the document declares UTF-8, so it is written as UTF-8 whatever the
    locale makes of sys.stdout."""
    sys.stdout.flush()
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        write_junit(out, results, connections)
        out.flush()
    finally:
        out.detach()  # sys.stdout keeps its buffer

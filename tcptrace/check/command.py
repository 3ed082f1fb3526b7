"""`tcptrace check`: a CI gate. Exit 0 when every rule holds, 1 when one fails, 2 on
unusable input (raised as TcptraceError / click usage errors, turned into one line by
tcptrace.cli.main)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from tcptrace import native
from tcptrace.check.evaluate import evaluate, slim
from tcptrace.check.output import FORMATS, write_github, write_json, write_junit, write_text
from tcptrace.check.rules import SIDES, Rule, flag_rule, load_rules
from tcptrace.clitypes import FiniteFloat
from tcptrace.defaults import DEFAULT_MSL_S
from tcptrace.outputs import check_writable, refuse_inputs, replaced_on_success

EXIT_FAILED = 1


FLAG_RULES: list[tuple[str, str, Callable[[Any], dict[str, Any]]]] = [
    # (flag, its click parameter, the [[rule]] table it stands for), in --help order
    ("--max-handshake-ms", "max_handshake_ms",
     lambda ms: {"check": "handshake", "metric": "setup_ms", "max_ms": ms}),
    ("--max-handshake-p99-ms", "max_handshake_p99_ms",
     lambda ms: {"check": "handshake", "metric": "rtt_ms", "percentile": 99, "max_ms": ms}),
    ("--max-syn-retransmits", "max_syn_retransmits",
     lambda n: {"check": "syn_retransmits", "max": n}),
    ("--no-rst", "no_rst", lambda _: {"check": "rst"}),
    ("--time-wait-on", "time_wait_on", lambda side: {"check": "time_wait", "on": side}),
    ("--max-time-wait", "max_time_wait",
     lambda n: {"check": "time_wait_concurrency", "max": n}),
    ("--no-half-close", "no_half_close", lambda _: {"check": "half_close"}),
    ("--min-requests", "min_requests", lambda n: {"check": "reuse", "min_requests": n}),
    ("--no-incomplete", "no_incomplete", lambda _: {"check": "completed"}),
    ("--min-connections", "min_connections", lambda n: {"check": "connections", "min": n}),
]


def _flag_rules(flags: dict[str, Any]) -> list[Rule]:
    """The rules the one-off flags stand for, validated like [[rule]] tables."""
    return [flag_rule(flag, table(flags[key])) for flag, key, table in FLAG_RULES
            if flags[key] is not None and flags[key] is not False]


@click.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("-r", "--rules", "rules_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Rules file (TOML, see docs/check.md); combines with the rule flags.")
@click.option("--max-handshake-ms", type=FiniteFloat(), metavar="MS",
              help="Every connection's set-up time (handshake.setup_ms) is at most MS.")
@click.option("--max-handshake-p99-ms", type=FiniteFloat(), metavar="MS",
              help="The p99 handshake round trip (handshake.rtt_ms) is at most MS.")
@click.option("--max-syn-retransmits", type=click.IntRange(min=0), metavar="N",
              help="No connection retransmits its SYN more than N times.")
@click.option("--no-rst", is_flag=True, help="Any RST fails.")
@click.option("--time-wait-on", type=click.Choice(SIDES),
              help="Only this side may hold TIME_WAIT (the other side or both fails).")
@click.option("--max-time-wait", type=click.IntRange(min=0), metavar="N",
              help="At most N TIME_WAITs held at once per holder ip:port.")
@click.option("--no-half-close", is_flag=True, help="Any half-close fails.")
@click.option("--min-requests", type=click.IntRange(min=0), metavar="N",
              help="Every HTTP connection carries at least N requests (keep-alive reuse).")
@click.option("--no-incomplete", is_flag=True,
              help="Connections UNANSWERED, HANDSHAKE_FAILED or REFUSED fail.")
@click.option("--min-connections", type=click.IntRange(min=0), metavar="N",
              help="At least N connections (guards against an empty capture).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="text",
              show_default=True, help="Report format on stdout.")
@click.option("--junit", metavar="FILE", type=click.Path(dir_okay=False, writable=True),
              help="Also write a JUnit XML report: one testcase per rule.")
@click.option("--list", "limit", type=click.IntRange(min=0), default=20, show_default=True,
              metavar="N",
              help="Offenders listed per rule in text and github output (0: all).")
@click.option("--filter", "filter_", metavar="EXPR",
              help='Check only matching segments (BPF syntax: "port 80 and host 10.0.0.1").')
@click.option("--msl", type=FiniteFloat(), default=DEFAULT_MSL_S, show_default=True,
              help="Maximum segment lifetime in seconds; TIME_WAIT lasts 2 * MSL.")
@click.option("-q", "--quiet", is_flag=True, help="No warnings on stderr.")
@click.pass_context
def check(ctx: click.Context, /, captures: tuple[str, ...], rules_path: str | None, fmt: str,
          junit: str | None, limit: int, filter_: str | None, msl: float, quiet: bool,
          **flags: Any) -> None:
    """Fail (exit 1) when the connections in CAPTURES break a rule.

    Rules come from --rules FILE and from the rule flags. Exit status: 0 every rule
    holds, 1 a rule failed, 2 unusable input.
    """
    rules = (load_rules(rules_path) if rules_path else []) + _flag_rules(flags)
    if not rules:
        raise click.UsageError("no rules: give --rules FILE or a rule flag such as --no-rst",
                               ctx)
    if junit:
        refuse_inputs(junit, captures, "--junit")
        check_writable(junit)
    run = native.record_run(list(captures), filter_text=filter_, msl_s=msl)
    records: list[dict[str, Any]] = []
    try:
        native.read_records(run, lambda record: records.append(slim(record)))
    finally:
        if not quiet:
            for warning in run.warnings():
                click.echo(f"tcptrace: warning: {warning}", err=True)
    results = evaluate(rules, records)
    try:
        if fmt == "json":
            write_json(sys.stdout, results, run.source_report())
        elif fmt == "github":
            write_github(sys.stdout, results, len(records), limit)
        else:
            write_text(sys.stdout, results, len(records), limit)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the verdict below is the exit status all the same
        from tcptrace.cli import silence_stdout

        silence_stdout()
    if junit:
        with replaced_on_success(junit) as temp:
            write_junit(temp, results, len(records))
    if not all(r.passed for r in results):
        # SystemExit, not ctx.exit: click returns ctx.exit codes from main() in
        # non-standalone mode, and tcptrace.cli.main drops them.
        sys.exit(EXIT_FAILED)

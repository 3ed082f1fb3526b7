"""Rules: the rules file (TOML) and the command-line flags, validated into `Rule`s.

Both sources go through `build_rule`, so a flag and the equivalent `[[rule]]` table are
the same rule with the same checks. The vocabulary of checks is one table, `CHECKS`
(parameters, their validators and defaults); docs/check.md and
tcptrace/schema/rules.schema.json describe the same table. A mistake is reported as one
line naming the file and the line of the offending key, because tomllib keeps no
positions: the line is found again in the file text.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tcptrace.errors import TcptraceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Validator = Callable[[Any], Any]
SIDES = ("client", "server")


class RulesError(TcptraceError):
    """A rules file or rule flag that cannot be used; the message names file and line."""


def _number(value: Any) -> bool:
    """An int or a finite float: TOML's inf and nan (1e400 reads as inf) would make a bound
    that nothing crosses, a rule that passes whatever the capture holds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def _ms(value: Any) -> float:
    if not _number(value) or value < 0:
        raise ValueError("a finite number of milliseconds >= 0")
    return float(value)


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("an integer >= 0")
    return value


def _positive(value: Any) -> float:
    if not _number(value) or value <= 0:
        raise ValueError("a number > 0")
    return float(value)


def _percentile(value: Any) -> float:
    if not _number(value) or not 0 < value <= 100:
        raise ValueError("a percentile in (0, 100]")
    return float(value)


def _percent(value: Any) -> float:
    if not _number(value) or not 0 <= value <= 100:
        raise ValueError("a percentage in [0, 100]")
    return float(value)


def _choice(*names: str) -> Validator:
    def check(value: Any) -> str:
        if value not in names:
            raise ValueError("one of " + ", ".join(f'"{n}"' for n in names))
        return str(value)
    return check


def _names(*names: str) -> Validator:
    def check(value: Any) -> tuple[str, ...]:
        if (not isinstance(value, list) or not value
                or any(not isinstance(v, str) or v not in names for v in value)):
            raise ValueError("a non-empty list of " + ", ".join(f'"{n}"' for n in names))
        return tuple(value)
    return check


# the record's enums, in the order of tcptrace/schema/output.schema.json (a test holds them
# to it): written out, so that check needs no engine module
RST_KINDS = ("REFUSED", "HANDSHAKE", "ABORT", "AFTER_CLOSE", "TIME_WAIT", "UNKNOWN_STATE")
OUTCOMES = ("CLOSED", "RESET", "REFUSED", "UNANSWERED", "HANDSHAKE_FAILED", "HALF_CLOSED",
            "CLOSING", "OPEN", "STALLED", "PROBE_RESET", "PROBE_UNANSWERED", "HANDSHAKE_ABORTED")
# a probe (docs/health.md, "Scans and probes") never completed a connection either
NEVER_COMPLETED = ("UNANSWERED", "HANDSHAKE_FAILED", "REFUSED", "HANDSHAKE_ABORTED", "PROBE_RESET",
                   "PROBE_UNANSWERED")


@dataclass(frozen=True, slots=True)
class Check:
    """One kind of rule: its parameters, which are required, and their defaults."""

    params: Mapping[str, Validator]
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    """At least one of these must be given."""
    exclusive: tuple[str, ...] = ()
    """At most one of these may be given."""
    defaults: Mapping[str, Any] = field(default_factory=dict)


CHECKS: dict[str, Check] = {
    "handshake": Check(
        {"metric": _choice("rtt_ms", "setup_ms"), "percentile": _percentile, "max_ms": _ms},
        required=("metric", "max_ms"), defaults={"percentile": None}),
    "syn_retransmits": Check({"max": _count}, defaults={"max": 0}),
    "rst": Check({"kinds": _names(*RST_KINDS), "except_kinds": _names(*RST_KINDS),
                  "sender": _choice(*SIDES)},
                 exclusive=("kinds", "except_kinds"),
                 defaults={"kinds": None, "except_kinds": (), "sender": None}),
    "time_wait": Check({"on": _choice(*SIDES)}, required=("on",)),
    "time_wait_concurrency": Check({"max": _count, "per": _choice("endpoint", "host")},
                                   required=("max",), defaults={"per": "endpoint"}),
    "half_close": Check({"side": _choice(*SIDES)}, defaults={"side": None}),
    "reuse": Check({"min_requests": _count, "min_mean": _positive,
                    "protocol": _choice("http", "any")},
                   one_of=("min_requests", "min_mean"),
                   defaults={"min_requests": None, "min_mean": None, "protocol": "http"}),
    "completed": Check({"outcomes": _names(*OUTCOMES)},
                       defaults={"outcomes": NEVER_COMPLETED}),
    "connections": Check({"min": _count, "max": _count}, one_of=("min", "max"),
                         defaults={"min": None, "max": None}),
    "retransmit_rate": Check({"max_pct": _percent, "per": _choice("run", "connection"),
                              "sender": _choice(*SIDES)},
                             required=("max_pct",), defaults={"per": "run", "sender": None}),
    "zero_window_stall": Check({"max_ms": _ms}, defaults={"max_ms": None}),
}
COMMON_KEYS = ("check", "name", "where")
WHERE_KEYS = ("side", "host", "port", "cidr")


@dataclass(frozen=True, slots=True)
class Where:
    """Which connections a rule looks at. All given conditions must hold on one endpoint:
    the `side` one when given, else either."""

    side: str | None = None
    hosts: tuple[IPAddress, ...] = ()
    ports: tuple[int, ...] = ()
    nets: tuple[IPNetwork, ...] = ()

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether the rule looks at `record` (a record as docs/output.md has it)."""
        ends = [record["client"], record["server"]] if self.side is None else \
            [record[self.side]]
        return any(self._endpoint(e["ip"], e["port"]) for e in ends)

    def _endpoint(self, ip: str, port: int) -> bool:
        if self.ports and port not in self.ports:
            return False
        if not self.hosts and not self.nets:  # parsing every address costs more than a check
            return True
        addr = ipaddress.ip_address(ip)
        return ((not self.hosts or addr in self.hosts)
                and (not self.nets or any(addr in net for net in self.nets)))

    def describe(self) -> str:
        parts = [f"side {self.side}"] if self.side else []
        parts += [f"host {' or '.join(map(str, self.hosts))}"] if self.hosts else []
        parts += [f"port {' or '.join(map(str, self.ports))}"] if self.ports else []
        parts += [f"cidr {' or '.join(map(str, self.nets))}"] if self.nets else []
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Rule:
    check: str
    params: Mapping[str, Any]
    where: Where
    name: str
    origin: str
    """Where the rule was written: "rules.toml:12" or the flag, e.g. "--no-rst"."""
    path: str | None = None
    line: int | None = None


class _Locator:
    """Lines of `[[rule]]` tables and of their keys in the file text (tomllib keeps none)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]#]*?)\s*\]\]?\s*(?:#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.spans: list[tuple[int, int]] = []
        start: int | None = None
        for number, line in enumerate(self.lines, 1):
            match = self._HEADER.match(line)
            if not match:
                continue
            name = re.sub(r"[\s\"']", "", match.group(2))
            if match.group(1) == "[[" and name == "rule":
                if start is not None:
                    self.spans.append((start, number))
                start = number
            elif not name.startswith("rule.") and start is not None:
                self.spans.append((start, number))
                start = None
        if start is not None:
            self.spans.append((start, len(self.lines) + 1))

    def rule(self, index: int) -> int | None:
        return self.spans[index][0] if index < len(self.spans) else None

    def key(self, index: int, key: str, after: str | None = None) -> int | None:
        """Line of `key` in rule `index` (after the line of key `after`, e.g. "where")."""
        if index >= len(self.spans):
            return None
        start, end = self.spans[index]
        if after is not None:
            start = self.key(index, after) or start
        pattern = re.compile(rf"(?:^|[\s{{,.])(?:{re.escape(key)}|\"{re.escape(key)}\"|"
                             rf"'{re.escape(key)}')\s*=")
        for number in range(start, end):
            if pattern.search(self.lines[number - 1]):
                return number
        return self.rule(index)


Locate = Callable[[str, str | None], tuple[str, int | None]]
"""(key, key it follows) -> (origin for messages, line); key "" is the rule itself."""


def _flag_origin(flag: str) -> Locate:
    return lambda key, after: (flag, None)


def build_rule(table: Mapping[str, Any], locate: Locate, label: str) -> Rule:
    """Validate one rule table (from the file or built from a flag) into a `Rule`."""

    def fail(message: str, key: str | None = None, after: str | None = None) -> RulesError:
        origin, _ = locate("check" if key is None else key, after)
        return RulesError(f"{origin}: {label}: {message}")

    check = table.get("check")
    if check is None:
        raise fail("missing key 'check' (one of: " + ", ".join(CHECKS) + ")", "")
    if not isinstance(check, str) or check not in CHECKS:
        raise fail(f"unknown check {_shown(check)} (known: {', '.join(CHECKS)})", "check")
    spec = CHECKS[check]
    label = f"{label} ({check})"
    known = (*COMMON_KEYS, *spec.params)
    for key in table:
        if key not in known:
            raise fail(f"unknown key {key!r} (known: {', '.join(known)})", key)
    params = dict(spec.defaults)
    for key, validate in spec.params.items():
        if key in table:
            try:
                params[key] = validate(table[key])
            except ValueError as exc:
                raise fail(f"{key!r} must be {exc}, not {_shown(table[key])}", key) from None
    missing = [k for k in spec.required if k not in table]
    if missing:
        raise fail(f"missing key {missing[0]!r}")
    if spec.one_of and not any(k in table for k in spec.one_of):
        raise fail("needs " + " or ".join(repr(k) for k in spec.one_of))
    given = [k for k in spec.exclusive if k in table]
    if len(given) > 1:
        raise fail(f"{given[0]!r} and {given[1]!r} cannot be used together", given[1])
    name = table.get("name")
    if name is not None and not isinstance(name, str):
        raise fail(f"'name' must be a string, not {_shown(name)}", "name")
    where = _where(table.get("where", {}), fail)
    origin, line = locate("check", None)
    return Rule(check, params, where, name or describe(check, params, where), origin,
                line=line)


def fmt_ms(value: float) -> str:
    """A duration as the record carries it (µs precision), without trailing zeros."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def describe(check: str, p: Mapping[str, Any], where: Where) -> str:
    """The default name of a rule: what it demands, in a few words."""
    if check == "handshake":
        which = f"p{p['percentile']:g}" if p["percentile"] is not None else "every connection"
        text = f"handshake {p['metric']} {which} <= {fmt_ms(p['max_ms'])} ms"
    elif check == "syn_retransmits":
        text = f"SYN retransmissions per connection <= {p['max']}"
    elif check == "rst":
        text = f"no RST of kind {', '.join(p['kinds'])}" if p["kinds"] else "no RST"
        text += f" except {', '.join(p['except_kinds'])}" if p["except_kinds"] else ""
        text += f" sent by the {p['sender']}" if p["sender"] else ""
    elif check == "time_wait":
        text = f"TIME_WAIT held only by the {p['on']}"
    elif check == "time_wait_concurrency":
        per = "ip:port" if p["per"] == "endpoint" else "host"
        text = f"concurrent TIME_WAIT per holder {per} <= {p['max']}"
    elif check == "half_close":
        text = f"no half-close by the {p['side']}" if p["side"] else "no half-close"
    elif check == "reuse":
        what = "HTTP requests" if p["protocol"] == "http" else "requests"
        bounds = [f"each >= {p['min_requests']}"] if p["min_requests"] is not None else []
        bounds += [f"mean >= {fmt_ms(p['min_mean'])}"] if p["min_mean"] is not None else []
        text = f"{what} per connection: {', '.join(bounds)}"
    elif check == "completed":
        text = f"no connection ending {' or '.join(p['outcomes'])}"
    elif check == "retransmit_rate":
        sent = f" sent by the {p['sender']}" if p["sender"] else ""
        over = "over all connections" if p["per"] == "run" else "per connection"
        text = f"retransmitted bytes <= {fmt_ms(p['max_pct'])} % of payload{sent} {over}"
    elif check == "zero_window_stall":
        text = "no connection stalled on a zero window"
        text += f" nor shut over {fmt_ms(p['max_ms'])} ms" if p["max_ms"] is not None else ""
    else:
        bounds = [f">= {p['min']}"] if p["min"] is not None else []
        bounds += [f"<= {p['max']}"] if p["max"] is not None else []
        text = f"connections {' and '.join(bounds)}"
    return f"{text} (where {where.describe()})" if where.describe() else text


def _shown(value: Any) -> str:
    """A value as TOML would write it (near enough: JSON), for messages."""
    return json.dumps(value, default=str)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(value)
    return value


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _where(table: Any, fail: Callable[..., RulesError]) -> Where:
    if not isinstance(table, dict):
        raise fail(f"'where' must be a table, not {_shown(table)}", "where")
    for key in table:
        if key not in WHERE_KEYS:
            raise fail(f"unknown key {key!r} in 'where' (known: {', '.join(WHERE_KEYS)})",
                       key, "where")
    side = table.get("side")
    if side is not None and side not in SIDES:
        raise fail(f"'side' must be \"client\" or \"server\", not {_shown(side)}", "side", "where")
    try:
        hosts = tuple(ipaddress.ip_address(_text(h)) for h in _listed(table.get("host", [])))
    except ValueError:
        raise fail(f"'host' must be an IP address or a list of them, not {_shown(table['host'])}",
                   "host", "where") from None
    ports = _listed(table.get("port", []))
    if any(not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= 65535 for p in ports):
        raise fail(f"'port' must be a port number or a list of them, not {_shown(table['port'])}",
                   "port", "where")
    try:
        nets = tuple(ipaddress.ip_network(_text(n), strict=False)
                     for n in _listed(table.get("cidr", [])))
    except ValueError:
        raise fail(f"'cidr' must be a network such as \"10.0.0.0/8\" or a list of them, "
                   f"not {_shown(table['cidr'])}", "cidr", "where") from None
    return Where(side, hosts, tuple(ports), nets)


def parse_rules(text: str, path: str) -> list[Rule]:
    """The rules of a rules file's text; `path` is only used in messages."""
    import tomllib  # (only with a rules file: a check by flags starts without it)

    try:
        data = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or int()'s refusal of a 5000-digit number
        if not isinstance(exc, tomllib.TOMLDecodeError):  # (its advice is for programmers)
            raise RulesError(f"{path}: invalid TOML: {str(exc).split(';')[0]}") from None
        message = str(exc)
        match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        end = re.search(r"\s*\(at end of document\)$", message)
        if match:
            where = f"{path}:{match.group(1)}:{match.group(2)}"
        else:  # the error is at the end of the text: its last line
            where = f"{path}:{max(1, len(text.splitlines()))}"
        cut = match or end
        message = message[:cut.start()] if cut else message
        raise RulesError(f"{where}: invalid TOML: {message}") from None
    locator = _Locator(text)
    for key in data:
        if key != "rule":
            line = next((n for n, t in enumerate(locator.lines, 1)
                         if re.match(rf"\s*\[*\s*[\"']?{re.escape(key)}\b", t)), None)
            raise RulesError(f"{path}:{line or 1}: unknown top-level key {key!r}: "
                             "write each rule as a [[rule]] table")
    tables = data.get("rule", [])
    if not isinstance(tables, list) or any(not isinstance(t, dict) for t in tables):
        line = locator.key(0, "rule") or next(
            (n for n, t in enumerate(locator.lines, 1) if re.match(r"\s*\[\s*rule\s*\]", t)), 1)
        raise RulesError(f"{path}:{line}: 'rule' must be an array of tables: write [[rule]]")
    rules = []
    for index, table in enumerate(tables):
        def locate(key: str, after: str | None, index: int = index) -> tuple[str, int | None]:
            line = locator.key(index, key, after) if key else locator.rule(index)
            return f"{path}:{line or 1}", line
        rule = build_rule(table, locate, f"rule {index + 1}")
        rules.append(Rule(rule.check, rule.params, rule.where, rule.name, rule.origin,
                          path=path, line=rule.line))
    return rules


MAX_RULES_BYTES = 1 << 20
"""A rules file is a few dozen lines: reading stops past this (`--rules /dev/zero`)."""


def load_rules(path: str) -> list[Rule]:
    """The rules of a rules file; unreadable, oversized or invalid files raise one-line
    errors."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_RULES_BYTES + 1)
    except OSError as exc:
        raise RulesError(f"{path}: cannot read rules: {exc.strerror or exc}") from None
    if len(raw) > MAX_RULES_BYTES:
        raise RulesError(f"{path}: not a rules file: larger than "
                         f"{MAX_RULES_BYTES >> 20} MiB") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RulesError(f"{path}: rules file is not UTF-8 text") from None
    try:
        return parse_rules(text, path)
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively
        raise RulesError(f"{path}: invalid TOML: values nested too deeply") from None


def flag_rule(flag: str, table: Mapping[str, Any]) -> Rule:
    """The rule a command-line flag stands for, validated like a `[[rule]]` table."""
    return build_rule(table, _flag_origin(flag), "rule")

"""Rules files: parsing, defaults, names, `where`, one-line errors with the line, and the
JSON Schema agreeing with the parser."""

from __future__ import annotations

import json
import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from jsonschema import Draft202012Validator

from tcptrace.check.rules import (
    CHECKS,
    OUTCOMES,
    RST_KINDS,
    RulesError,
    flag_rule,
    load_rules,
    parse_rules,
)

SCHEMA = Draft202012Validator(
    json.loads((files("tcptrace") / "schema" / "rules.schema.json").read_text()),
    format_checker=Draft202012Validator.FORMAT_CHECKER)


def error(text: str) -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "rules.toml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_rules_file_parsed_with_defaults_names_and_lines() -> None:
    rules = parse_rules(
        '# gate\n'
        '[[rule]]\n'
        'check = "handshake"\n'
        'metric = "rtt_ms"\n'
        'percentile = 99\n'
        'max_ms = 200\n'
        '\n'
        '[[rule]]\n'
        'name = "server never closes first"\n'
        'check = "time_wait"\n'
        'on = "client"\n'
        'where = { side = "server", port = 8080 }\n'
        '\n'
        '[[rule]]\n'
        'check = "rst"\n'
        'except_kinds = ["TIME_WAIT"]\n'
        '[rule.where]\n'
        'cidr = ["10.0.0.0/8", "fd00::/8"]\n', "rules.toml")
    assert [(r.check, r.name, r.origin, r.line) for r in rules] == [
        ("handshake", "handshake rtt_ms p99 <= 200 ms", "rules.toml:3", 3),
        ("time_wait", "server never closes first", "rules.toml:10", 10),
        ("rst", "no RST except TIME_WAIT (where cidr 10.0.0.0/8 or fd00::/8)",
         "rules.toml:15", 15),
    ]
    assert dict(rules[0].params) == {"metric": "rtt_ms", "percentile": 99.0, "max_ms": 200.0}
    assert dict(rules[2].params) == {"kinds": None, "except_kinds": ("TIME_WAIT",),
                                     "sender": None}
    assert rules[1].where.side == "server" and rules[1].where.ports == (8080,)
    assert all(r.path == "rules.toml" for r in rules)


@pytest.mark.parametrize(("table", "name"), [
    ({"check": "handshake", "metric": "setup_ms", "max_ms": 1029.814},
     "handshake setup_ms every connection <= 1029.814 ms"),
    ({"check": "syn_retransmits"}, "SYN retransmissions per connection <= 0"),
    ({"check": "rst", "kinds": ["ABORT", "REFUSED"], "sender": "server"},
     "no RST of kind ABORT, REFUSED sent by the server"),
    ({"check": "time_wait", "on": "server"}, "TIME_WAIT held only by the server"),
    ({"check": "time_wait_concurrency", "max": 3, "per": "host"},
     "concurrent TIME_WAIT per holder host <= 3"),
    ({"check": "half_close", "side": "client"}, "no half-close by the client"),
    ({"check": "reuse", "min_requests": 2, "min_mean": 2.5, "protocol": "any"},
     "requests per connection: each >= 2, mean >= 2.5"),
    ({"check": "completed"}, "no connection ending UNANSWERED or HANDSHAKE_FAILED or REFUSED or "
                             "HANDSHAKE_ABORTED or PROBE_RESET or PROBE_UNANSWERED"),
    ({"check": "connections", "min": 1, "max": 9}, "connections >= 1 and <= 9"),
    ({"check": "retransmit_rate", "max_pct": 2.5},
     "retransmitted bytes <= 2.5 % of payload over all connections"),
    ({"check": "retransmit_rate", "max_pct": 0, "per": "connection", "sender": "server"},
     "retransmitted bytes <= 0 % of payload sent by the server per connection"),
    ({"check": "zero_window_stall"}, "no connection stalled on a zero window"),
    ({"check": "zero_window_stall", "max_ms": 500},
     "no connection stalled on a zero window nor shut over 500 ms"),
    ({"check": "rst", "where": {"host": "fd77::2", "port": [80, 443], "side": "server"}},
     "no RST (where side server, host fd77::2, port 80 or 443)"),
])
def test_every_check_has_a_default_name_and_agrees_with_the_schema(
        table: dict[str, Any], name: str) -> None:
    assert flag_rule("--x", table).name == name
    assert SCHEMA.is_valid({"rule": [table]})


def test_the_schema_names_every_check() -> None:
    refs = [r["$ref"] for r in SCHEMA.schema["$defs"]["rule"]["oneOf"]]
    assert refs == [f"#/$defs/{c}" for c in CHECKS]
    for check, spec in CHECKS.items():
        props = set(SCHEMA.schema["$defs"][check]["properties"])
        assert props == {"check", "name", "where", *spec.params}


@pytest.mark.parametrize(("text", "message"), [
    ('[[rule]]\ncheck = "rst"\n\n[[rule]]\ncheck = = 3\n',
     "rules.toml:5:9: invalid TOML: Invalid value"),
    ('[[rule]]\ncheck = "rst"\nkinds = ["ABORT"\n',
     "rules.toml:3: invalid TOML: Unclosed array"),
    ('[[rule]]\ncheck = "latency"\n',
     "rules.toml:2: rule 1: unknown check \"latency\" (known: handshake, syn_retransmits, rst, "
     "time_wait, time_wait_concurrency, half_close, reuse, completed, connections, "
     "retransmit_rate, zero_window_stall)"),
    ('[[rule]]\ncheck = "rst"\n\n[[rule]]\ncheck = "handshake"\nmetric = "rtt_ms"\n'
     'p99_ms = 200\n',
     "rules.toml:7: rule 2 (handshake): unknown key 'p99_ms' "
     "(known: check, name, where, metric, percentile, max_ms)"),
    ('[[rule]]\ncheck = "syn_retransmits"\n\n[[rule]]\ncheck = "syn_retransmits"\n'
     'max = "one"\n',
     "rules.toml:6: rule 2 (syn_retransmits): 'max' must be an integer >= 0, not \"one\""),
    ('[[rule]]\ncheck = "handshake"\nmetric = "rtt_ms"\nmax_ms = true\n',
     "rules.toml:4: rule 1 (handshake): 'max_ms' must be a finite number of milliseconds "
     ">= 0, not true"),
    # TOML's inf and nan (and 1e400, read as inf) made a bound nothing crosses: a rule
    # that passed whatever the capture held
    ('[[rule]]\ncheck = "handshake"\nmetric = "rtt_ms"\nmax_ms = 1e400\n',
     "rules.toml:4: rule 1 (handshake): 'max_ms' must be a finite number of milliseconds "
     ">= 0, not Infinity"),
    ('[[rule]]\ncheck = "handshake"\nmetric = "rtt_ms"\nmax_ms = nan\n',
     "rules.toml:4: rule 1 (handshake): 'max_ms' must be a finite number of milliseconds "
     ">= 0, not NaN"),
    ('[[rule]]\ncheck = "retransmit_rate"\nmax_pct = nan\n',
     "rules.toml:3: rule 1 (retransmit_rate): 'max_pct' must be a percentage in [0, 100], "
     "not NaN"),
    ('[[rule]]\ncheck = "handshake"\nmetric = "rtt"\nmax_ms = 1\n',
     "rules.toml:3: rule 1 (handshake): 'metric' must be one of \"rtt_ms\", \"setup_ms\", "
     "not \"rtt\""),
    ('[[rule]]\ncheck = "handshake"\nmax_ms = 1\n',
     "rules.toml:2: rule 1 (handshake): missing key 'metric'"),
    ('\n[[rule]]\nmetric = "rtt_ms"\n',
     "rules.toml:2: rule 1: missing key 'check' (one of: handshake, "
     "syn_retransmits, rst, time_wait, time_wait_concurrency, half_close, reuse, completed, "
     "connections, retransmit_rate, zero_window_stall)"),
    ('[[rule]]\ncheck = "retransmit_rate"\nmax_pct = 120\n',
     "rules.toml:3: rule 1 (retransmit_rate): 'max_pct' must be a percentage in [0, 100], "
     "not 120"),
    ('[[rule]]\ncheck = "retransmit_rate"\nper = "run"\n',
     "rules.toml:2: rule 1 (retransmit_rate): missing key 'max_pct'"),
    ('[[rule]]\ncheck = "rst"\nkinds = ["ABORT"]\nexcept_kinds = ["REFUSED"]\n',
     "rules.toml:4: rule 1 (rst): 'kinds' and 'except_kinds' cannot be used together"),
    ('[[rule]]\ncheck = "rst"\nkinds = ["abort"]\n', "rules.toml:3: rule 1 (rst): 'kinds' must "
     "be a non-empty list of \"REFUSED\", \"HANDSHAKE\", \"ABORT\", \"AFTER_CLOSE\", "
     "\"TIME_WAIT\", \"UNKNOWN_STATE\", not [\"abort\"]"),
    ('[[rule]]\ncheck = "reuse"\nprotocol = "any"\n',
     "rules.toml:2: rule 1 (reuse): needs 'min_requests' or 'min_mean'"),
    ('[[rule]]\ncheck = "rst"\nwhere = { side = "server", prot = 8080 }\n',
     "rules.toml:3: rule 1 (rst): unknown key 'prot' in 'where' (known: side, host, port, "
     "cidr)"),
    ('[[rule]]\ncheck = "rst"\n[rule.where]\nside = "server"\nhost = "10.0.0.300"\n',
     "rules.toml:5: rule 1 (rst): 'host' must be an IP address or a list of them, "
     "not \"10.0.0.300\""),
    ('[[rule]]\ncheck = "rst"\nwhere = { port = 70000 }\n',
     "rules.toml:3: rule 1 (rst): 'port' must be a port number or a list of them, not 70000"),
    ('[[rule]]\ncheck = "rst"\nwhere = { cidr = 10 }\n',
     "rules.toml:3: rule 1 (rst): 'cidr' must be a network such as \"10.0.0.0/8\" or a list "
     "of them, not 10"),
    ('[[rule]]\ncheck = "rst"\nwhere = "server"\n',
     "rules.toml:3: rule 1 (rst): 'where' must be a table, not \"server\""),
    ('[rule]\ncheck = "rst"\n', "rules.toml:1: 'rule' must be an array of tables: write [[rule]]"),
    ('max_ms = 3\n[[rules]]\ncheck = "rst"\n',
     "rules.toml:1: unknown top-level key 'max_ms': write each rule as a [[rule]] table"),
])
def test_malformed_rules_are_one_line_with_the_line(text: str, message: str) -> None:
    assert error(text) == message
    # whatever tomllib can read, the schema rejects as well, but for inf and nan: JSON has
    # neither, so its schema cannot speak of them (a JSON number is finite)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    if "nan" in text or "e400" in text:
        return
    assert not SCHEMA.is_valid(data)


def test_a_number_too_long_for_int_is_one_line() -> None:
    """tomllib lets int() refuse a 5000-digit number with a plain ValueError (not a
    TOMLDecodeError): one line still, without Python's advice to programmers."""
    assert error(f'[[rule]]\ncheck = "connections"\nmin = {"9" * 5000}\n') == (
        "rules.toml: invalid TOML: Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits")


def test_unreadable_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"nope\.toml: cannot read rules: No such file"):
        load_rules(str(tmp_path / "nope.toml"))
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[[rule]]")
    with pytest.raises(RulesError, match=r"bin\.toml: rules file is not UTF-8 text"):
        load_rules(str(binary))


def test_every_toml_example_in_the_docs_is_valid() -> None:
    doc = (ROOT / "docs" / "check.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    assert len(blocks) == 12
    for block in blocks:
        assert parse_rules(block, "docs/check.md")
        assert SCHEMA.is_valid(tomllib.loads(block)), block


def _record(client: tuple[str, int], server: tuple[str, int]) -> dict[str, Any]:
    """Just the endpoints, which is all `where` reads (a record as docs/output.md has it)."""
    return {"client": {"ip": client[0], "port": client[1]},
            "server": {"ip": server[0], "port": server[1]}}


@pytest.mark.parametrize(("where", "matches"), [
    ({}, [True, True]),
    ({"host": "10.0.0.2"}, [True, False]),
    ({"host": "10.0.0.2", "side": "client"}, [False, False]),
    ({"port": 80}, [True, False]),
    ({"port": 80, "side": "client"}, [False, False]),
    ({"host": "10.0.0.1", "port": 80}, [False, False]),  # one endpoint must match both
    ({"cidr": "10.0.0.0/30", "side": "server"}, [True, False]),
    ({"cidr": ["fd00::/8"], "side": "server"}, [False, True]),
    ({"host": "FD00::0002"}, [False, True]),  # addresses compared, not spellings
])
def test_where_selects_endpoints(where: dict[str, Any], matches: list[bool]) -> None:
    rule = flag_rule("--x", {"check": "rst", "where": where})
    records = [_record(("10.0.0.1", 40000), ("10.0.0.2", 80)),
               _record(("fd00::1", 40000), ("fd00::2", 8080))]
    assert [rule.where.matches(r) for r in records] == matches


def test_outcome_and_rst_kind_names_are_the_record_schema_enums() -> None:
    record = json.loads((files("tcptrace") / "schema" / "output.schema.json").read_text())
    props = record["$defs"]["connection"]["properties"]
    assert list(OUTCOMES) == props["outcome"]["enum"]
    kinds = [k for option in props["rst"]["anyOf"] if "properties" in option
             for k in option["properties"]["kind"]["enum"]]
    assert list(RST_KINDS) == kinds

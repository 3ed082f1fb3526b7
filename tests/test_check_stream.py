"""`check` evaluates its rules as records stream in (tcptrace/check/accumulators.py), in
the order connections end, keeping offenders in a spool that goes to disk past a
threshold. These tests hold it to the batch evaluator it replaced (tests/check_oracle.py):
records out of id order, offenders across many spilled runs, percentiles, take-overs seen
before the connection they end, and the command's bytes with every offender spilled."""

from __future__ import annotations

import io
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import check_oracle
import pytest
from conftest import PCAPS, ROOT, SHARED, analyze

from tcptrace.check import spool
from tcptrace.check.evaluate import Offender, Result, evaluate
from tcptrace.check.output import _write_offenders, iso
from tcptrace.check.rules import CHECKS, parse_rules
from tcptrace.check.spool import SortedSpool

sys.path.insert(0, str(ROOT / "tests" / "golden"))
import make_views

GOLDEN = ROOT / "tests" / "golden" / "views"

RULES = parse_rules("""
[[rule]]
check = "handshake"
metric = "setup_ms"
max_ms = 1
[[rule]]
check = "handshake"
metric = "rtt_ms"
percentile = 99
max_ms = 0.5
[[rule]]
check = "handshake"
metric = "rtt_ms"
percentile = 50
max_ms = 1000
[[rule]]
check = "syn_retransmits"
[[rule]]
check = "rst"
[[rule]]
check = "rst"
except_kinds = ["REFUSED"]
sender = "server"
[[rule]]
check = "time_wait"
on = "server"
[[rule]]
check = "time_wait"
on = "client"
where = { side = "server", port = [80, 8080] }
[[rule]]
check = "time_wait_concurrency"
max = 0
[[rule]]
check = "time_wait_concurrency"
max = 1
per = "host"
[[rule]]
check = "half_close"
[[rule]]
check = "reuse"
min_requests = 2
[[rule]]
check = "reuse"
protocol = "any"
min_mean = 5
[[rule]]
check = "reuse"
protocol = "any"
min_requests = 1
min_mean = 1.5
[[rule]]
check = "completed"
[[rule]]
check = "connections"
max = 1
[[rule]]
check = "rst"
where = { cidr = "10.0.0.0/8", side = "client" }
[[rule]]
check = "retransmit_rate"
max_pct = 0
[[rule]]
check = "retransmit_rate"
max_pct = 0.5
per = "connection"
sender = "server"
[[rule]]
check = "zero_window_stall"
[[rule]]
check = "zero_window_stall"
max_ms = 0
""", "stream.toml")


def streamed(results: list[Result]) -> list[tuple[bool, int, str, list[tuple[Any, ...]]]]:
    """Results as the outputs show them; the offenders counted must be those listed."""
    shown = []
    for r in results:
        offenders = [tuple(o) for o in r.offenders]
        assert len(r.offenders) == len(offenders), r.rule.name
        assert [tuple(o) for o in r.offenders] == offenders, "read twice: the same"
        shown.append((r.passed, r.checked, r.detail, offenders))
    return shown


def orders(records: list[dict[str, Any]], seed: int) -> Iterator[list[dict[str, Any]]]:
    """The records by id, reversed and shuffled: the engine hands them over as connections
    end, whatever their ids."""
    yield records
    yield records[::-1]
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    yield shuffled


def test_spool_reads_back_by_id_across_runs_ties_in_the_order_added() -> None:
    ids = [5, 1, 4, 1, 9, 2, 6, 5, 3, 5, 0]
    items = SortedSpool(threshold=3)
    for order, conn_id in enumerate(ids):
        items.add((conn_id, f"#{order}", order / 3))
    want = sorted(((conn_id, f"#{order}", order / 3) for order, conn_id in enumerate(ids)),
                  key=lambda item: item[0])
    assert len(items) == 11
    assert list(items) == want
    assert list(items) == want  # a run is read again from its file
    assert want[:4] == [(0, "#10", 10 / 3), (1, "#1", 1 / 3), (1, "#3", 1.0), (2, "#5", 5 / 3)]
    assert not SortedSpool()


def test_every_check_is_covered() -> None:
    assert {r.check for r in RULES} == set(CHECKS)


@pytest.mark.parametrize("threshold", [2, 20_000])
def test_streaming_matches_the_batch_evaluator_on_every_bundled_capture(
        monkeypatch: pytest.MonkeyPatch, threshold: int) -> None:
    monkeypatch.setattr(spool, "SPILL_AT", threshold)
    for n, capture in enumerate(sorted(PCAPS.rglob("*.pcap*"))):
        records, _ = analyze(capture)
        want = check_oracle.named(check_oracle.evaluate(RULES, records))
        for ordered in orders(records, n):
            assert streamed(evaluate(RULES, ordered)) == want, capture


def _record(rng: random.Random, conn_id: int) -> dict[str, Any]:
    """A record with the fields the rules read, drawn so that the rules fire often: few
    hosts and ports (TIME_WAITs pile up on one holder), equal first times, take-overs."""
    first_ts = 1_700_000_000 + rng.choice([0, 0.5, rng.uniform(0, 60)])
    tw = rng.choice([None, None, "client", "server", "both"])
    start = first_ts + rng.choice([0.0, 1.0, rng.uniform(0, 5)])
    hs = {"setup_ms": rng.choice([None, 0.25, round(rng.uniform(0, 3), 3)]),
          "rtt_ms": rng.choice([None, round(rng.uniform(0, 2), 3), 1.0]),
          "syn_retransmits": rng.choice([0, 0, 1, 3])}
    rst = rng.choice([None, {"kind": rng.choice(["REFUSED", "ABORT", "TIME_WAIT"]),
                             "sender": rng.choice(["client", "server"])}])
    half = rng.choice([None, None, {"side": rng.choice(["client", "server"]),
                                    "bytes_after_fin": rng.randrange(5000)}])

    def tally() -> dict[str, int]:
        n = rng.choice([0, 0, 1, 3])
        return {"segments": n, "bytes": n * rng.choice([0, 100, 1448])}

    def shut() -> dict[str, Any]:
        periods = rng.choice([0, 0, 1, 2])
        longest = round(rng.uniform(0, 900), 3) if periods else 0.0
        return {"periods": periods, "stall_ms": longest * periods, "longest_ms": longest,
                "probes": periods}
    return {
        "id": conn_id, "previous_id": rng.choice([None, None, None, rng.randrange(1, 400)]),
        "client": {"ip": rng.choice(["10.0.0.1", "10.0.0.2", "fd00::1"]),
                   "port": rng.choice([40000, 40001, 40002])},
        "server": {"ip": rng.choice(["10.0.0.9", "192.168.1.1"]), "port": rng.choice([80, 443])},
        "first_ts": first_ts,
        "outcome": rng.choice(["CLOSED", "RESET", "UNANSWERED", "REFUSED", "OPEN", "STALLED"]),
        "handshake": hs, "rst": rst, "half_close": half,
        "close": {"time_wait": tw, "time_wait_ts": None if tw is None else start,
                  "time_wait_until": None if tw is None else start + rng.choice([2.0, 60.0])},
        "reuse": {"protocol": rng.choice([None, "http"]), "requests": rng.choice([0, 1, 2, 7])},
        "bytes": {"client": rng.choice([0, 500, 20_000]), "server": rng.choice([0, 100_000])},
        "retransmissions": {side: {cause: tally() for cause in ("rto", "fast", "tlp")}
                            for side in ("client", "server")},
        "zero_window": {"client": shut(), "server": shut()},
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streaming_matches_the_batch_evaluator_on_random_records(
        monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """400 random records fed in random order, offenders spilled every 7: the same verdicts,
    details and offenders, in id order, as the batch evaluator over the sorted list."""
    monkeypatch.setattr(spool, "SPILL_AT", 7)
    rng = random.Random(seed)
    records = [_record(rng, conn_id) for conn_id in range(1, 401)]
    results = check_oracle.named(check_oracle.evaluate(RULES, records))
    assert sum(len(r[3]) for r in results) > 1000  # the rules fire, across many runs
    assert any(not r[0] for r in results[8:10])  # TIME_WAIT concurrency fails too
    for ordered in orders(records, seed):
        assert streamed(evaluate(RULES, ordered)) == results


def test_a_percentile_over_records_out_of_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """rtt_ms 1..100 (a record's id in ms) fed shuffled: p99 is the 99th value, and the
    connections over the bound are listed by id."""
    monkeypatch.setattr(spool, "SPILL_AT", 3)
    rng = random.Random(7)
    records = [_record(rng, conn_id) for conn_id in range(1, 101)]
    for r in records:
        r["handshake"]["rtt_ms"] = float(r["id"])
    rng.shuffle(records)
    rules = parse_rules('[[rule]]\ncheck = "handshake"\nmetric = "rtt_ms"\npercentile = 99\n'
                        'max_ms = 96.5\n[[rule]]\ncheck = "handshake"\nmetric = "rtt_ms"\n'
                        'percentile = 50\nmax_ms = 50\n', "p.toml")
    p99, p50 = evaluate(rules, records)
    assert (p99.passed, p99.checked, p99.detail) == (False, 100, "p99 99 ms (n=100) > 96.5 ms")
    assert [(o.id, o.reason) for o in p99.offenders] == [
        (97, "rtt_ms 97"), (98, "rtt_ms 98"), (99, "rtt_ms 99"), (100, "rtt_ms 100")]
    assert (p50.passed, p50.detail, list(p50.offenders)) == (True, "p50 50 ms (n=100)", [])


def test_a_take_over_seen_before_the_time_wait_it_ends() -> None:
    """Connection 2 reuses 1's 4-tuple at t=5, while 1's TIME_WAIT (t=1..61) overlaps 3's
    on the same client endpoint. The engine may hand 2 over before 1: 1's TIME_WAIT still
    ends at 5, so at most one is held at once, whatever the order."""
    def record(conn_id: int, first_ts: float, tw: tuple[float, float] | None,
               previous_id: int | None = None) -> dict[str, Any]:
        rng = random.Random(conn_id)
        r = _record(rng, conn_id)
        r.update(previous_id=previous_id, first_ts=first_ts,
                 client={"ip": "10.0.0.1", "port": 40000},
                 server={"ip": "10.0.0.9", "port": 80 + conn_id})
        r["close"] = {"time_wait": None if tw is None else "client",
                      "time_wait_ts": tw and tw[0], "time_wait_until": tw and tw[1]}
        return r

    records = [record(2, 5.0, None, previous_id=1), record(1, 0.0, (1.0, 61.0)),
               record(3, 4.0, (5.0, 65.0))]
    rule = parse_rules('[[rule]]\ncheck = "time_wait_concurrency"\nmax = 1\n', "t.toml")
    for ordered in (records, records[::-1]):
        (result,) = evaluate(rule, ordered)
        assert (result.passed, result.detail) == (True, "at most 1 at once (on 10.0.0.1:40000)")
    without_take_over = [r for r in records if r["id"] != 2]
    (result,) = evaluate(rule, without_take_over)
    assert (result.passed, result.detail) == (False, "10.0.0.1:40000 held 2 at once (max 1)")
    assert [(o.id, o.reason) for o in result.offenders] == [
        (1, "one of 2 TIME_WAITs held at once by 10.0.0.1:40000 at 5.000000"),
        (3, "one of 2 TIME_WAITs held at once by 10.0.0.1:40000 at 5.000000")]


def _check_views(capture: str, junit: Path) -> dict[str, Any]:
    """The three `check` outputs make_views records (tests/golden/make_views.py `views`)."""
    junit.unlink(missing_ok=True)
    check_json = make_views.run("check", capture, *make_views.CHECK_FLAGS, "-f", "json",
                                "--junit", str(junit))
    check_json["junit"] = junit.read_text() if junit.exists() else None
    return {"check_json": check_json,
            "check_text": make_views.run("check", capture, *make_views.CHECK_FLAGS,
                                         "--list", "3"),
            "check_github": make_views.run("check", capture, *make_views.CHECK_FLAGS,
                                           "-f", "github", "--list", "2")}


def test_check_output_is_byte_identical_with_every_offender_spilled(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A spill at every offender (runs of one, merged back) changes no byte of the goldens,
    for every bundled capture and, when ../shared is here, every corpus capture."""
    monkeypatch.setattr(spool, "SPILL_AT", 1)
    monkeypatch.chdir(ROOT)
    junit = tmp_path / "junit.xml"
    bundled = json.loads((GOLDEN / "bundled.json").read_text())
    for capture, want in bundled.items():
        got = _check_views(capture, junit)
        for name, output in got.items():
            assert output == want[name], (capture, name)
    if not (SHARED / "corpus").is_dir():
        return
    corpus = json.loads((GOLDEN / "corpus.json").read_text())
    spilled = 0
    for capture, want in corpus.items():
        got = _check_views(capture, junit)
        for name, output in got.items():
            assert [output["status"], make_views.digest(output)] == want[name], (capture, name)
        if got["check_json"]["status"] == 2:  # unusable input: no document
            continue
        document = json.loads(got["check_json"]["stdout"])
        spilled += sum(len(rule["offenders"]) > 1 for rule in document["rules"])
    assert spilled > 50  # rules whose offenders came back merged from many runs


@pytest.mark.parametrize("offender", [
    Offender(1, "10.0.0.1:1024", "[fd00::1]:80", 1_700_000_000.0, "outcome UNANSWERED"),
    Offender(2**40, 'a"b\\c\u00e9\n', "", 1_700_000_000.123456, "r\u2028\t"),
    Offender(3, "x", "y", 1e-7, ""),
])
def test_an_offender_is_written_as_json_dump_writes_it(offender: Offender) -> None:
    """`check -f json` writes each offender field by field (json.dump with indent=2 goes
    through the slow pure-Python encoder): the bytes must be json.dump's."""
    doc = {"rules": [{"offenders": [{
        "id": offender.id, "client": offender.client, "server": offender.server,
        "first_ts": offender.first_ts, "first_time": iso(offender.first_ts),
        "reason": offender.reason}]}]}
    out = io.StringIO()
    out.write('{\n  "rules": [\n    {\n      "offenders": ')
    _write_offenders(out, [offender], 3)
    out.write("\n    }\n  ]\n}")
    assert out.getvalue() == json.dumps(doc, indent=2)

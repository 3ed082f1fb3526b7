"""Check results rendered for people (text), scripts (json), GitHub Actions annotations
(github) and CI test reports (JUnit XML). Records in, text out: no I/O but the writes.

Offenders are named by id, client -> server and first packet time, both as ISO 8601 UTC
and as epoch seconds (Wireshark's `frame.time_epoch`), so they can be found in the capture.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from tcptrace.check.evaluate import Offender, Result, endpoint
from tcptrace.check.rules import Rule

FORMATS = ("text", "json", "github")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def offender_line(o: Offender) -> str:
    r = o.record
    client, server = r["client"], r["server"]
    return (f"#{r['id']} {endpoint(client['ip'], client['port'])} -> "
            f"{endpoint(server['ip'], server['port'])} at {iso(r['first_ts'])} "
            f"({r['first_ts']:.6f}): {o.reason}")


def _listed(offenders: list[Offender], limit: int) -> list[str]:
    """Offender lines, cut after `limit` (0: all) with a count of the rest."""
    lines = [offender_line(o) for o in (offenders[:limit] if limit else offenders)]
    if limit and len(offenders) > limit:
        lines.append(f"... and {len(offenders) - limit} more (--format json lists all)")
    return lines


def verdict(results: Sequence[Result], connections: int) -> str:
    failed = sum(not r.passed for r in results)
    scope = f"{connections} connection{'s' if connections != 1 else ''} analyzed"
    if failed:
        return f"FAILED: {failed} of {len(results)} rules failed; {scope}"
    return f"PASSED: {len(results)} rule{'s' if len(results) != 1 else ''} held; {scope}"


def write_text(out: TextIO, results: Sequence[Result], connections: int, limit: int) -> None:
    for result in results:
        status = "PASS" if result.passed else "FAIL"
        out.write(f"{status}  {result.rule.name}: {result.detail}\n")
        for line in _listed(result.offenders, limit):
            out.write(f"      {line}\n")
    out.write(f"\n{verdict(results, connections)}\n")


def _escape(text: str, prop: bool = False) -> str:
    """Workflow-command escaping, as in @actions/core (escapeData / escapeProperty)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def write_github(out: TextIO, results: Sequence[Result], connections: int, limit: int) -> None:
    """One `::error` annotation per failed rule, on the rule's line when it has one."""
    for result in results:
        rule = result.rule
        if result.passed:
            out.write(f"PASS  {rule.name}: {result.detail}\n")
            continue
        props = [f"file={_escape(rule.path, True)}"] if rule.path else []
        props += [f"line={rule.line}"] if rule.path and rule.line else []
        props.append(f"title={_escape(f'tcptrace check failed: {rule.name}', True)}")
        message = "\n".join([result.detail, *_listed(result.offenders, limit)])
        out.write(f"::error {','.join(props)}::{_escape(message)}\n")
    out.write(f"{verdict(results, connections)}\n")


def _rule_dict(rule: Rule) -> dict[str, Any]:
    return {"name": rule.name, "check": rule.check, "origin": rule.origin,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in rule.params.items()},
            "where": rule.where.describe() or None}


def to_json(results: Sequence[Result], source: dict[str, Any]) -> dict[str, Any]:
    return {
        "passed": all(r.passed for r in results),
        "rules": [{
            **_rule_dict(r.rule), "passed": r.passed, "checked": r.checked, "detail": r.detail,
            "offenders": [_offender(o) for o in r.offenders],
        } for r in results],
        "source": source,
    }


def _offender(o: Offender) -> dict[str, Any]:
    r = o.record
    client, server = r["client"], r["server"]
    return {"id": r["id"], "client": endpoint(client["ip"], client["port"]),
            "server": endpoint(server["ip"], server["port"]),
            "first_ts": r["first_ts"], "first_time": iso(r["first_ts"]), "reason": o.reason}


def write_json(out: TextIO, results: Sequence[Result], source: dict[str, Any]) -> None:
    json.dump(to_json(results, source), out, indent=2)
    out.write("\n")


def junit(results: Sequence[Result], connections: int) -> ET.ElementTree:
    """JUnit XML: one testsuite, one testcase per rule; a failure lists every offender."""
    failures = str(sum(not r.passed for r in results))
    counts = {"tests": str(len(results)), "failures": failures, "errors": "0"}
    root = ET.Element("testsuites", {"name": "tcptrace check", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "tcptrace check", **counts,
                                              "skipped": "0"})
    for result in results:
        rule = result.rule
        attrs = {"classname": f"tcptrace.check.{rule.check}", "name": rule.name}
        if rule.path:
            attrs["file"] = rule.path
            attrs.update({"line": str(rule.line)} if rule.line else {})
        case = ET.SubElement(suite, "testcase", attrs)
        if result.passed:
            ET.SubElement(case, "system-out").text = result.detail
        else:
            failure = ET.SubElement(case, "failure", {"message": result.detail,
                                                      "type": rule.check})
            failure.text = "\n".join(offender_line(o) for o in result.offenders) or result.detail
    ET.SubElement(suite, "system-out").text = verdict(results, connections)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: str, results: Sequence[Result], connections: int) -> None:
    junit(results, connections).write(path, encoding="utf-8", xml_declaration=True)

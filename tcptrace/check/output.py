"""Check results rendered for people (text), scripts (json), GitHub Actions annotations
(github) and CI test reports (JUnit XML). Records in, text out: no I/O but the writes.

Offenders are named by id, client -> server and first packet time, both as ISO 8601 UTC
and as epoch seconds (Wireshark's `frame.time_epoch`), so they can be found in the capture.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, TextIO

from tcptrace.check.evaluate import Offender, Offenders, Result
from tcptrace.check.rules import Rule

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

FORMATS = ("text", "json", "github", "junit")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def offender_line(o: Offender) -> str:
    return f"#{o.id} {o.client} -> {o.server} at {iso(o.first_ts)} ({o.first_ts:.6f}): {o.reason}"


def _listed(offenders: Offenders, limit: int) -> Iterator[str]:
    """Offender lines, cut after `limit` (0: all) with a count of the rest."""
    for o in islice(offenders, limit or None):
        yield offender_line(o)
    if limit and len(offenders) > limit:
        yield f"... and {len(offenders) - limit} more (--format json lists all)"


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


def _number(value: float) -> str:
    """A number as json.dumps writes it (repr; NaN and the infinities spelled as JSON's)."""
    return repr(value) if math.isfinite(value) else json.dumps(value)


_TEXT = encode_basestring_ascii
"""A str as json.dumps writes it (ensure_ascii): the encoder's own function."""


def _offender(o: Offender, level: int) -> str:
    """An offender as json.dump(indent=2) writes it as a dict `level` levels deep (its first
    line unindented), written out field by field: a million offenders through the pure-Python
    encoder that indent=2 takes cost ~15 s, this a third of it."""
    pad = "\n" + "  " * (level + 1)
    return (f'{{{pad}"id": {o.id},{pad}"client": {_TEXT(o.client)},{pad}"server": '
            f'{_TEXT(o.server)},{pad}"first_ts": {_number(o.first_ts)},{pad}"first_time": '
            f'{_TEXT(iso(o.first_ts))},{pad}"reason": {_TEXT(o.reason)}\n{"  " * level}}}')


def _nested(value: Any, level: int) -> str:
    """`value` as json.dump(indent=2) writes it `level` levels deep (its first line unindented:
    a JSON string never holds a raw newline, so every newline is the layout's)."""
    return json.dumps(value, indent=2).replace("\n", "\n" + "  " * level)


def _write_offenders(out: TextIO, offenders: Iterable[Offender], level: int) -> None:
    """A list of offenders as json.dump(indent=2) writes it `level` levels deep."""
    first = True
    for o in offenders:
        out.write(f"{'[' if first else ','}\n{'  ' * (level + 1)}{_offender(o, level + 1)}")
        first = False
    out.write("[]" if first else f"\n{'  ' * level}]")


def write_json(out: TextIO, results: Sequence[Result], source: dict[str, Any]) -> None:
    """The results as one JSON document, byte for byte what json.dump(indent=2) writes,
    written as it goes: a rule's offenders (all of them) are read from their spool one at a
    time, never held as one list of dicts."""
    out.write(f'{{\n  "passed": {json.dumps(all(r.passed for r in results))},\n  "rules": ')
    for index, r in enumerate(results):
        head = _nested({**_rule_dict(r.rule), "passed": r.passed, "checked": r.checked,
                        "detail": r.detail}, 2)
        # the head ends "\n    }": the offenders, the last key, go before it
        out.write(f"{',' if index else '['}\n    {head[:-6]},\n      \"offenders\": ")
        _write_offenders(out, r.offenders, 3)
        out.write("\n    }")
    out.write("\n  ]" if results else "[]")
    out.write(f',\n  "source": {_nested(source, 1)}\n}}\n')


def _xml_text(text: str) -> str:
    """`text` escaped as ElementTree escapes element text (&, <, >: xml.sax.saxutils.escape,
    whose import pulls in urllib.request and http.client, ~12 ms of a check's start)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _junit_layout(results: Sequence[Result], connections: int,
                  listed: Callable[[int], str]) -> ET.ElementTree:
    """JUnit XML: one testsuite, one testcase per rule; a failure lists every offender.
    `listed(index)` stands in for the offender lines of failed rule `index`: write_junit
    writes them in its place."""
    import xml.etree.ElementTree as ET  # (only for --junit: a check starts without it)

    failures = str(sum(not r.passed for r in results))
    counts = {"tests": str(len(results)), "failures": failures, "errors": "0"}
    root = ET.Element("testsuites", {"name": "tcptrace check", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "tcptrace check", **counts,
                                              "skipped": "0"})
    for index, result in enumerate(results):
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
            failure.text = listed(index) if result.offenders else result.detail
    ET.SubElement(suite, "system-out").text = verdict(results, connections)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(out: TextIO, results: Sequence[Result], connections: int) -> None:
    """The JUnit document (to a file, or stdout with `-f junit`), each failure's offender
    lines written one at a time: the rest of the document is laid out by ElementTree around
    a mark that stands for them, the same bytes."""
    import uuid

    mark = f"tcptrace-offenders-{uuid.uuid4().hex}-"
    layout = io.BytesIO()
    _junit_layout(results, connections, lambda index: f"{mark}{index}.").write(
        layout, encoding="utf-8", xml_declaration=True)
    pieces = re.split(re.escape(mark) + r"(\d+)\.", layout.getvalue().decode("utf-8"))
    out.write(pieces[0])
    for index, after in zip(pieces[1::2], pieces[2::2], strict=True):
        for n, o in enumerate(results[int(index)].offenders):
            out.write(("\n" if n else "") + _xml_text(offender_line(o)))
        out.write(after)

"""Rules judged against connection records, streamed: each rule is an accumulator
(tcptrace.check.accumulators) fed the records its `where` selects as connections end, so
memory follows what the rules keep (counters, percentile values, offenders spooled to
disk past a threshold), not the number of connections.

A result names the offending connections, each with the reason, in id order, so a
failure can be traced to packets in Wireshark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tcptrace.check.accumulators import ACCUMULATORS, Accumulator
from tcptrace.check.offenders import Offender, Offenders, endpoint
from tcptrace.check.rules import Rule

__all__ = ["Evaluation", "Offender", "Offenders", "Result", "endpoint", "evaluate"]


@dataclass(frozen=True, slots=True)
class Result:
    rule: Rule
    passed: bool
    checked: int
    """Connections the rule looked at (those its `where` selects)."""
    detail: str
    offenders: Offenders


class Evaluation:
    """Every rule's accumulator, fed one record at a time (`feed`), in any order."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules = [(rule, ACCUMULATORS[rule.check](rule.params)) for rule in rules]
        self._checked = [0] * len(self._rules)
        self.connections = 0
        """Records fed, whatever the rules select."""

    def feed(self, record: Mapping[str, Any]) -> None:
        """Judge one record (the dict of docs/output.md); it is not kept."""
        self.connections += 1
        for index, (rule, accumulator) in enumerate(self._rules):
            if rule.where.matches(record):
                self._checked[index] += 1
                accumulator.feed(record)

    def results(self) -> list[Result]:
        """The result of every rule, in the order given, once every record is fed."""
        return [Result(rule, *_verdict(accumulator, checked))
                for (rule, accumulator), checked in zip(self._rules, self._checked, strict=True)]


def _verdict(accumulator: Accumulator, checked: int) -> tuple[bool, int, str, Offenders]:
    passed, detail, offenders = accumulator.verdict()
    return passed, checked, detail, offenders


def evaluate(rules: Iterable[Rule], records: Iterable[Mapping[str, Any]]) -> list[Result]:
    """The result of every rule, in the order given; `records` as docs/output.md has them,
    in any order."""
    evaluation = Evaluation(rules)
    for record in records:
        evaluation.feed(record)
    return evaluation.results()

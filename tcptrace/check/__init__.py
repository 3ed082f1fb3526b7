"""`tcptrace check`: rules about connection behaviour, evaluated against an analysis.

rules -> evaluate -> output: `rules` parses and validates the rules file and the
command-line flags into one list of `Rule`s; `evaluate` judges them against the
records (the dicts of docs/output.md, from the native engine through
`tcptrace.native.read_records`) as they stream in, one accumulator per rule
(`accumulators`, `time_wait`), offenders spooled to disk past a threshold (`spool`);
`output` renders the results (text, json, github annotations, JUnit XML). `command` is
the thin click command over them.
"""

from tcptrace.check.evaluate import Offender, Result, evaluate
from tcptrace.check.rules import CHECKS, Rule, RulesError, load_rules, parse_rules

__all__ = ["CHECKS", "Offender", "Result", "Rule", "RulesError", "evaluate", "load_rules",
           "parse_rules"]

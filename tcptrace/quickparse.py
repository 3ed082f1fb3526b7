"""Short options parsed without click's spelling suggestions for long ones.

click's parser tries every option as a long one first, `-f` included; the miss raises
NoSuchOption, which looks up the close spellings among all long options with difflib
(`get_close_matches`), and the parser catches it at once to parse `-f` as a short option.
For `analyze -q -f jsonl -o FILE` that is difflib's import and three fuzzy searches,
about 2.5 ms of the run's start (docs/performance.md, part 6). A single-dash miss is
never shown (only a `--name` miss is re-raised: `_OptionParser._process_opts`), so it is
raised here without suggestions; a `--name` miss keeps click's own lookup.
"""

from __future__ import annotations

from typing import Any

import click
from click.exceptions import NoSuchOption


class QuickOptionsCommand(click.Command):
    """A click command whose parser skips the suggestions for short options."""

    def make_parser(self, ctx: click.Context) -> Any:
        parser = super().make_parser(ctx)
        match_long = parser._match_long_opt

        def match_long_or_fail_fast(opt: str, explicit_value: str | None, state: Any) -> None:
            if opt not in parser._long_opt and opt[:2] not in parser._opt_prefixes:
                raise NoSuchOption(opt, ctx=ctx)
            match_long(opt, explicit_value, state)

        setattr(parser, "_match_long_opt", match_long_or_fail_fast)  # noqa: B010
        return parser

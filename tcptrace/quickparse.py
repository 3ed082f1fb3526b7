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
        # click's private parser parts: a click without them parses as it always does
        match_long = getattr(parser, "_match_long_opt", None)
        long_opts = getattr(parser, "_long_opt", None)
        prefixes = getattr(parser, "_opt_prefixes", None)
        if match_long is None or long_opts is None or prefixes is None:
            return parser

        def match_long_or_fail_fast(opt: str, explicit_value: str | None, state: Any) -> None:
            if opt not in long_opts and opt[:2] not in prefixes:
                raise NoSuchOption(opt, ctx=ctx)
            match_long(opt, explicit_value, state)

        setattr(parser, "_match_long_opt", match_long_or_fail_fast)  # noqa: B010
        return parser

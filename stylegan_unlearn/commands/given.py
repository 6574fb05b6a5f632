"""Which options the user gave, as opposed to those left at their default (click's parameter sources).

Standard library and click only: the blocks that `stylegan-unlearn patch` adds to a reference train.py
use it at start-up, before torch is needed.
"""
from typing import Any, Mapping, Optional, Set

import click
from click.core import ParameterSource

__all__ = ["options_given"]


def options_given(values: Mapping[str, Any], ctx: Optional[click.Context] = None) -> Set[str]:
    """The names in `values` that the user set, as opposed to those left at their default.

    Inside a running click command this reads click's parameter sources, so an option the user
    typed counts even when it equals the default; names the command does not have, or calls from
    plain code, count as given when their value is not None.
    """
    ctx = ctx if ctx is not None else click.get_current_context(silent=True)
    params = {p.name for p in ctx.command.params} if ctx is not None else set()
    given = set()
    for name, value in values.items():
        if name in params:
            if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT):
                given.add(name)
        elif value is not None:
            given.add(name)
    return given

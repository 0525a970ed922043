"""The typer app every `kernelwright` command hangs on: its help shows no type next to a flag.

Typer's rich help prints each option's type (`<int>`, `<path>`) and does so for flags too, which reads as
if `--json <bool>` wanted a value. An empty metavar is typer's way to print nothing in that column; the
app's classes give it to every flag, the `--help` that typer adds included, so no declaration has to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption


def _untyped_flags(params: Iterable[Any]) -> None:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""


class _UntypedFlags:
    """Command mixin: the declared flags and the help option carry an empty metavar."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _untyped_flags(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        _untyped_flags([option])
        return option


class FlagCommand(_UntypedFlags, TyperCommand):
    pass


class FlagGroup(_UntypedFlags, TyperGroup):
    pass


class KernelwrightTyper(typer.Typer):
    """typer.Typer whose group and commands are the classes above (a `cls=` given still wins)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", FlagGroup)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", FlagCommand)
        return super().command(*args, **kwargs)

"""How every `kernelwright` command reports a failure: the exit codes and the one error line.

The line reads "Error: <what went wrong>", as typer's own usage errors do ("Error" heads their box), and
goes to stderr so that `--json` output on stdout stays parseable. The message is plain text, never rich
markup: an error quoting `list[int]` or `[sm_90]` prints as written.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

# Distinct so scripts can tell a rejected kernel from a missing GPU (README, "Exit codes").
EXIT_PASSED, EXIT_REJECTED, EXIT_BAD_INPUT, EXIT_NEEDS_GPU, EXIT_ERROR, EXIT_NO_LLM = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it (`bench`: finished problems are saved, --resume continues)

ERROR_PREFIX = "Error:"


def error_line(message: object) -> Text:
    return Text.assemble((ERROR_PREFIX, "bold red"), " ", str(message))


def fail(message: object, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print the error line on stderr and leave with `code`, without a traceback."""
    Console(stderr=True).print(error_line(message), soft_wrap=True)  # the terminal wraps: paths stay whole
    raise typer.Exit(code)

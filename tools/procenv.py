"""Explicit environments for child processes (compilers, sandbox workers, ncu).

The harness never edits its own os.environ; it builds the environment each child
gets. Secrets are stripped so candidate code cannot read API keys or tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

_SECRET_RE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)
# Variables a child may need even though their names look secret-ish.
_ALLOWED = {"XAUTHORITY"}


def is_secret_name(name: str) -> bool:
    return name not in _ALLOWED and bool(_SECRET_RE.search(name))


def scrubbed_env(base: Mapping[str, str] | None = None, /, **overrides: str) -> dict[str, str]:
    """A copy of `base` (default: this process's environment) without secrets, plus overrides (any names:
    `base` is positional-only, so a variable called "base" is an override too)."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not is_secret_name(k)}
    # `python -m kernelwright...` children must import the installed package, not a folder that happens to be
    # named kernelwright in the caller's working directory (a source checkout's front-door folder is one).
    env.setdefault("PYTHONSAFEPATH", "1")
    env.update(overrides)
    return env


# A jail a child that runs candidate code starts in: (command, env) -> a context giving the command to start
# (env may be updated). tools.sandbox.isolation.tool_jail makes one; runners below the sandbox (ncu) take one.
ToolJail = Callable[[list[str], dict[str, str]], AbstractContextManager[list[str]]]

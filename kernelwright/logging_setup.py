"""configure_logging: called once by the CLI; api_logging: around each public API call. Never by library code.

JSON lines go to a run's log file (machine-readable, for traces and reports);
readable lines go to the console (stderr), coloured on a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import structlog


class _TeeRenderer:
    """Final processor: write the event as JSON to the file, return the console rendering.

    The file keeps everything from `file_level` up; the console only from its own level.
    """

    def __init__(self, json_file: TextIO | None, console: structlog.dev.ConsoleRenderer, console_level: int):
        self.json_file = json_file
        self.console = console
        self.console_level = console_level

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        if self.json_file is not None:
            self.json_file.write(json.dumps(event, default=str) + "\n")
            self.json_file.flush()
        if logging.getLevelName(str(event.get("level", "info")).upper()) < self.console_level:
            raise structlog.DropEvent
        return self.console(logger, method, dict(event))


def configure_logging(*, level: str = "info", json_path: Path | None = None, stream: TextIO | None = None,
                      file_level: str = "info") -> None:
    stream = stream or sys.stderr
    json_file = None
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_file = open(json_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process logs
    console = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    console_level = logging.getLevelName(level.upper())
    floor = min(console_level, logging.getLevelName(file_level.upper())) if json_file is not None else console_level
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            _TeeRenderer(json_file, console, console_level),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(floor),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


@contextmanager
def api_logging(asked: str | None, default: str | None = None, *, stream: TextIO | None = None) -> Iterator[None]:
    """kernelwright's console logging (stderr) for one public API call: a library is quiet unless asked.

    `asked` (the call's `log_level`) always applies. Otherwise a program that configured structlog keeps
    its configuration (it decides what it sees; the CLI configured it from --log-level), else `default`
    (KERNELWRIGHT_LOG_LEVEL) applies, else warnings and errors only. Whatever this sets is undone when the
    call returns, so the program's own structlog configuration is left as it was.
    """
    if asked is None and structlog.is_configured():
        yield
        return
    saved = structlog.get_config() if structlog.is_configured() else None
    configure_logging(level=asked or default or "warning", stream=stream)
    try:
        yield
    finally:
        if saved is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**saved)

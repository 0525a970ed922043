"""What a run records about itself: the event log always, LangSmith traces when its key is set.

LangSmith is used only when an API key is present (LANGSMITH_API_KEY or
LANGCHAIN_API_KEY) and tracing is not switched off (LANGSMITH_TRACING /
LANGCHAIN_TRACING_V2 = false). Without a key nothing is attempted: langchain's
own environment-driven tracer is held off for the run, so a stray
LANGSMITH_TRACING=true alone does not make the run post anywhere.
LANGSMITH_ENDPOINT and LANGSMITH_PROJECT (or the LANGCHAIN_ spellings) are honoured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelwright.graphs.events import EventRecorder

DEFAULT_PROJECT = "kernelwright"


@dataclass(frozen=True)
class LangSmithSettings:
    api_key: str
    project: str
    endpoint: str | None


def langsmith_settings(env: Mapping[str, str] | None = None) -> LangSmithSettings | None:
    env = os.environ if env is None else env

    def first(*names: str) -> str | None:
        return next((env[n] for n in names if env.get(n)), None)

    key = first("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")
    switch = first("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING")
    if not key or (switch is not None and switch.strip().lower() in ("false", "0", "no", "off")):
        return None
    return LangSmithSettings(api_key=key, project=first("LANGSMITH_PROJECT", "LANGCHAIN_PROJECT") or DEFAULT_PROJECT,
                             endpoint=first("LANGSMITH_ENDPOINT", "LANGCHAIN_ENDPOINT"))


def langsmith_tracer(settings: LangSmithSettings, run_id: str) -> Any:
    """A LangChain tracer posting to LangSmith, its runs tagged with the kernelwright run id."""
    from langchain_core.tracers.langchain import LangChainTracer
    from langsmith import Client

    client = Client(api_url=settings.endpoint, api_key=settings.api_key)
    return LangChainTracer(project_name=settings.project, client=client, tags=[f"kernelwright-run:{run_id}"],
                           metadata={"kernelwright_run_id": run_id})


def observe_run(run_dir: Path, run_id: str, env: Mapping[str, str] | None = None) -> EventRecorder:
    """The run's recorder: its event log, plus LangSmith tracing when configured (see the module doc)."""
    from langsmith.run_helpers import tracing_context

    settings = langsmith_settings(env)
    if settings is None:
        return EventRecorder(run_dir, run_id, scope=tracing_context(enabled=False))
    tracer = langsmith_tracer(settings, run_id)
    return EventRecorder(run_dir, run_id, tracers=[tracer], tags=[f"kernelwright-run:{run_id}"],
                         on_close=[tracer.wait_for_futures])

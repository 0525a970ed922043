"""The run the orchestrator-kill case starts in its own process and kills (SIGKILL) at a random moment.

    python -m kernelwright.eval.faults.orchestrator_child RUNS_DIR LOG
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from kernelwright.agents.context import RunSettings
from kernelwright.eval.faults.scripted_run import answer, run, settings

RUN_ID = "killed"


def run_settings() -> RunSettings:
    return settings(2, 3)


def endless_answers(tag: str) -> GenericFakeChatModel:
    """A new candidate for every request (its tag keeps resumed answers distinct from the first process's)."""
    messages: Iterator[AIMessage] = (AIMessage(answer(1.0 + i / 100, f"{tag}-{i}")) for i in itertools.count(1))
    return GenericFakeChatModel(messages=messages)


if __name__ == "__main__":
    runs_dir, log = Path(sys.argv[1]), Path(sys.argv[2])
    run(runs_dir, log, run_settings(), run_id=RUN_ID, llm=endless_answers("first"), delay_s=0.3)

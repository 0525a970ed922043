"""Manual mode: a chat model whose answers come from a person (or another program) through the run folder.

Each call writes its prompt to RUN_DIR/manual/NNN-<node>.prompt.md (tools.run_folder.ManualFolder) and waits
until `kernelwright answer RUN FILE` puts the answer next to it; the graph uses it as any other chat model, so
no API key is needed and nothing else changes. A resumed run asking a prompt it already wrote (same messages)
reuses that prompt, and its answer when one was given. `cancel()` ends a wait (the run stopping, Ctrl-C).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.run_folder import ManualFolder, ManualPrompt, RunFolder

MANUAL_MODEL = "manual"  # the model name a manual run's calls report (events, spend table, export)


class ManualCancelled(KernelwrightError):
    """The run stopped while a prompt waited for its answer; the prompt stays, a resume waits for it again."""

    kind = "run"


def answer_command(run_id: str, prompt: ManualPrompt, runs_dir: str | Path | None = None) -> str:
    """The command that answers `prompt` (FILE: a file holding the answer's text)."""
    where = f" --runs-dir {runs_dir}" if runs_dir is not None else ""
    return f"kernelwright answer {run_id} FILE --prompt {prompt.number:03d}{where}"


def prompt_text(prompt: ManualPrompt, command: str) -> str:
    """The prompt as a person reads it: who asks, what to answer and how to give it, then the conversation."""
    temp = f", temperature {prompt.temperature:g}" if prompt.temperature is not None else ""
    head = (f"# kernelwright prompt {prompt.number:03d} (node: {prompt.node}{temp})\n\n"
            "Answer as the assistant would: reply to the conversation below; its last message says what the "
            "answer must contain (for a kernel: one ```python block defining class ModelNew).\n"
            f"Save the answer's text in a file and give it with:\n\n    {command}\n")
    body = "".join(f"\n## {m['role']}\n\n{m['content']}\n" for m in prompt.messages)
    return head + body


class ManualChatModel(BaseChatModel):
    """Answers from RUN_DIR/manual/ (see the module doc). `on_prompt(prompt, path, command)` is told of each
    prompt that waits for an answer (the run's event log, the CLI's progress)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    run_dir: Path
    run_id: str = ""
    runs_dir: Path | None = None  # for the answer command shown, when not the default
    temperature: float | None = None  # recorded with each prompt (a person is free to ignore it)
    poll_s: float = 0.2
    on_prompt: Callable[[ManualPrompt, Path, str], None] | None = None
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _used: set[int] = PrivateAttr(default_factory=set)  # prompts this process already took an answer from
    _cancelled: threading.Event = PrivateAttr(default_factory=threading.Event)

    @property
    def _llm_type(self) -> str:
        return "kernelwright-manual"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": MANUAL_MODEL}

    @property
    def folder(self) -> ManualFolder:
        return RunFolder(self.run_dir).manual

    def cancel(self) -> None:
        self._cancelled.set()

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        node = str(((run_manager.metadata if run_manager else None) or {}).get("langgraph_node") or "llm")
        temperature = kwargs.get("temperature", self.temperature)
        prompt = self._prompt_for(node, [{"role": m.type, "content": _text(m.content)} for m in messages],
                                  temperature)
        answer = self._wait_for(prompt)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(answer))])

    def _prompt_for(self, node: str, messages: list[dict[str, str]], temperature: float | None) -> ManualPrompt:
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        with self._lock:
            known = self.folder.prompts()
            again = next((p for p in known if p.sha256 == digest and p.number not in self._used), None)
            if again is not None:
                self._used.add(again.number)
                return again
            prompt = ManualPrompt(max((p.number for p in known), default=0) + 1, _safe(node), tuple(messages),
                                  None if temperature is None else float(temperature), digest)
            self._used.add(prompt.number)
            self.folder.write_prompt(prompt, prompt_text(prompt, self._command(prompt)))
            return prompt

    def _command(self, prompt: ManualPrompt) -> str:
        return answer_command(self.run_id or self.run_dir.name, prompt, self.runs_dir)

    def _wait_for(self, prompt: ManualPrompt) -> str:
        told = False
        while True:
            answer = self.folder.read_answer(prompt)
            if answer is not None and answer.strip():
                return answer
            if not told and self.on_prompt is not None:
                self.on_prompt(prompt, self.folder.prompt_md(prompt), self._command(prompt))
                told = True
            if self._cancelled.wait(self.poll_s):
                raise ManualCancelled(f"the run stopped while prompt {prompt.number:03d} waited for its answer",
                                      where=str(self.folder.prompt_md(prompt)))


def _safe(node: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in node) or "llm"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)

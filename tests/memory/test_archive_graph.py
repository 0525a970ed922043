"""The archive inside runs: a run stores its verified kernels; the next run's translator sees them as examples."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ModelSettings
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.memory.archive import KernelArchive
from kernelwright.memory.embedding import HashedEmbedding
from kernelwright.run import optimize
from kernelwright.tools.problem.functional import functional_form
from support.graph_fakes import PROBLEM, FakeEvaluator, answer


class TracingFakeEvaluator(FakeEvaluator):
    """The fake GPU, plus the problem's real functional form (traced on CPU) for the archive's signature."""

    def functional_form(self) -> dict[str, Any]:
        spec = importlib.util.spec_from_file_location("relu_problem", PROBLEM)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return functional_form(module.Model(), module.get_inputs(), module_source=PROBLEM.read_text()).to_dict()


def test_second_run_gets_the_first_runs_kernel_as_an_example(tmp_path: Path) -> None:
    settings = RunSettings(generations=1, candidates_per_generation=1, screen=False, profile=False, critic=False)
    with KernelArchive.open_local(tmp_path / "archive", embedding=HashedEmbedding()) as archive:
        with ReplayServer([ReplayRule(answer(1.7, tag="first-run-kernel"), when="Operations")]) as server:
            first = optimize(PROBLEM, runs_dir=tmp_path / "runs", settings=settings, evaluator=TracingFakeEvaluator(),
                             model=ModelSettings(model="replay", base_url=server.base_url), offline=False,
                             archive=archive)
        assert archive.count() == 1 and first.best["archived"] is True
        with ReplayServer([ReplayRule(answer(1.9, tag="second"), when="Operations")]) as server:
            optimize(PROBLEM, runs_dir=tmp_path / "runs", settings=settings, evaluator=TracingFakeEvaluator(),
                     model=ModelSettings(model="replay", base_url=server.base_url), offline=False, archive=archive)
            prompt = server.requests[0]["messages"][-1]["content"]
        assert "Verified kernels from earlier runs" in prompt and "first-run-kernel" in prompt and "1.70x" in prompt
        assert archive.count() == 2


def test_an_unopenable_archive_means_a_run_without_examples(tmp_path: Path) -> None:
    broken = tmp_path / "archive"
    broken.write_text("not a directory")
    with ReplayServer([ReplayRule(answer(1.2), when="Operations")]) as server:
        result = optimize(PROBLEM, runs_dir=tmp_path / "runs", evaluator=FakeEvaluator(), offline=False,
                          settings=RunSettings(generations=1, candidates_per_generation=1, screen=False, profile=False),
                          model=ModelSettings(model="replay", base_url=server.base_url), archive=broken)
    assert result.speedup_vs_eager == 1.2


def test_loading_the_embedding_model_leaves_torch_device_contexts_working() -> None:
    import torch

    from kernelwright.memory.embedding import MiniLMEmbedding

    MiniLMEmbedding()(["softmax over rows"])
    with torch.device("meta"):  # seen broken: torch.linspace built CPU tensors after the model loaded
        assert torch.linspace(-1.0, 1.0, 4).is_meta and torch.arange(3).is_meta


def test_an_archived_kernel_from_a_graph_run_carries_its_profile_summary(tmp_path: Path) -> None:
    """The profiler writes the winner's profile beside its report (not into it); the archive reads it there."""
    settings = RunSettings(generations=1, candidates_per_generation=1, screen=False, profile=True, critic=False)
    with KernelArchive.open_local(tmp_path / "archive", embedding=HashedEmbedding()) as archive:
        with ReplayServer([ReplayRule(answer(1.7, tag="profiled"), when="Operations")]) as server:
            result = optimize(PROBLEM, runs_dir=tmp_path / "runs", settings=settings, evaluator=TracingFakeEvaluator(),
                              model=ModelSettings(model="replay", base_url=server.base_url), offline=False,
                              archive=archive)
        (record,) = list(archive.records())
    assert result.best["profile_summary"] == "relu_affine_kernel: 82% of DRAM bandwidth, memory-bound"
    assert record.id == result.best["id"] and record.profile_summary == result.best["profile_summary"]

"""Unfilled problem inputs: tracing reads shapes, so the GB-sized inputs of level 1 are never drawn for it."""

from __future__ import annotations

from pathlib import Path

import torch

from kernelwright.agents.offline.trace import load_problem
from kernelwright.agents.offline_proposer import OfflineSession
from kernelwright.eval.bench.memory_sampler import TreeSampler
from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.problem.inputs import InputSpec, make_inputs, unfilled_problem_inputs
from kernelwright.tools.sandbox.pool import WorkerOptions
from kernelwright.tools.sandbox.resources import tree_memory

GIB = 1 << 30
PROBLEM = '''import torch
from torch import nn


class Model(nn.Module):
    """Row softmax of a scaled sum: one parameter the size of the last dim."""

    def __init__(self, width: int):
        super().__init__()
        self.gain = nn.Parameter(torch.randn(width))

    def forward(self, a, b):
        return (a * self.gain + b).softmax(-1)


def get_init_inputs():
    return [SHAPE[-1]]


def get_inputs():
    return [torch.rand(SHAPE), torch.rand(SHAPE).t().contiguous().t()]


SHAPE = (1 << 20, 1 << 8)  # 1 GiB each
'''


def _problem(tmp_path: Path, shape: str = "(1 << 20, 1 << 8)") -> Path:
    path = tmp_path / "big.py"
    path.write_text(PROBLEM.replace("(1 << 20, 1 << 8)", shape))
    return path


def test_unfilled_inputs_cost_no_memory_and_touch_nothing_else(tmp_path: Path) -> None:
    problem = _problem(tmp_path)
    _, module = load_problem(problem)
    before = tree_memory().rss_bytes
    with unfilled_problem_inputs(problem):
        inputs = module.get_inputs()
        torch.manual_seed(0)
        weights = module.Model(8).gain.detach().clone()  # not called from get_inputs: a real draw
    assert tree_memory().rss_bytes - before < 200 << 20
    assert [(tuple(t.shape), t.stride(), t.dtype, t.device.type) for t in inputs] == [
        ((1 << 20, 1 << 8), (1 << 8, 1), torch.float32, "cpu"),
        ((1 << 20, 1 << 8), (1, 1 << 20), torch.float32, "cpu")]  # the same strides as the real draw
    torch.manual_seed(0)
    assert torch.equal(weights, torch.randn(8))


def test_outside_the_context_inputs_are_drawn_for_real(tmp_path: Path) -> None:
    problem = _problem(tmp_path, "(4, 8)")
    _, module = load_problem(problem)
    with unfilled_problem_inputs(problem):
        pass
    real = make_inputs(module.get_inputs, InputSpec(0), torch.device("cpu"))
    again = make_inputs(module.get_inputs, InputSpec(0), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(real, again, strict=True))
    assert all(0.0 <= float(t.min()) and float(t.max()) < 1.0 for t in real)


def test_the_offline_trace_holds_no_drawn_inputs(tmp_path: Path) -> None:
    """The run's offline trace keeps its inputs (a TracedProblem holds them): drawn, they would be 2 GiB resident."""
    problem = _problem(tmp_path)
    session = OfflineSession()
    before = tree_memory().rss_bytes
    session.start(str(problem))
    traced = session.traced_problem(str(problem))
    assert [tuple(t.shape) for t in traced[0].inputs] == [(1 << 20, 1 << 8)] * 2
    assert tree_memory().rss_bytes - before < 600 << 20


def test_the_workers_functional_form_draws_no_inputs(tmp_path: Path) -> None:
    problem = _problem(tmp_path)
    options = WorkerOptions(env={"CUDA_VISIBLE_DEVICES": ""})
    with Evaluator(problem, EvalSettings(load_timeout_s=120), options) as ev:
        ev.check_problem()  # the worker starts and loads the problem before the sampled part
        with TreeSampler(gpu=False) as sampler:
            start = tree_memory().rss_bytes
            form = ev.functional_form()
        peak = sampler.peaks().rss_bytes
    assert form["method"] == "export" and form["op_counts"]["aten.softmax.int"] == 1
    assert peak - start < GIB  # drawn, the two inputs alone are 2 GiB

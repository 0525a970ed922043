"""An nn.Module plus example inputs becomes a problem file the workers can load."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from kernelwright.api import problem_from_module
from kernelwright.tools.errors import ProblemError
from kernelwright.tools.inputs import InputSpec, make_inputs
from kernelwright.tools.problem import check_source

FIX = Path(__file__).parent / "fixtures"


def _user_module():
    spec = importlib.util.spec_from_file_location("user_module_for_test", FIX / "user_module.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["user_module_for_test"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_module_becomes_a_loadable_problem(tmp_path: Path) -> None:
    user = _user_module()
    module = user.ScaledGelu(32, scale=0.5)
    examples = [torch.randn(4, 32), torch.tensor([0, 3, 7, 2])]
    path = problem_from_module(module, examples, init_args=[32], init_kwargs={"scale": 0.5}, directory=tmp_path)
    src = check_source(path, "problem")
    spec = importlib.util.spec_from_file_location("generated_problem", path)
    problem = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(problem)
    inputs = make_inputs(problem.get_inputs, InputSpec(3), torch.device("cpu"))
    assert [tuple(t.shape) for t in inputs] == [(4, 32), (4,)] and inputs[1].dtype == torch.int64
    assert int(inputs[1].min()) >= 0 and int(inputs[1].max()) <= 7
    again = make_inputs(problem.get_inputs, InputSpec(3), torch.device("cpu"))
    assert torch.equal(inputs[0], again[0])  # seeded
    model = problem.Model(*problem.get_init_inputs())
    assert model(*inputs).shape == (4, 32) and src.forward_params is None  # inherited forward


def test_class_without_source_file_is_refused(tmp_path: Path) -> None:
    def make():
        class Local(torch.nn.Module):
            def forward(self, x):
                return x
        return Local

    with pytest.raises(ProblemError, match="inside a function"):
        problem_from_module(make(), [torch.randn(2)], directory=tmp_path)


def test_unsupported_example_input_is_named(tmp_path: Path) -> None:
    user = _user_module()
    with pytest.raises(ProblemError, match="example input 1"):
        problem_from_module(user.ScaledGelu, [torch.randn(2, 32), object()], init_args=[32], directory=tmp_path)

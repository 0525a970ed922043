"""An nn.Module plus example inputs becomes a problem file the workers can load."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from kernelwright.api import problem_from_module
from kernelwright.tools.errors import ProblemError
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.problem.inputs import InputSpec, make_inputs
from support.paths import FIXTURES as FIX


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


def test_inputs_are_made_on_the_target_device_with_a_cpu_fallback_for_host_only_input_functions() -> None:
    import numpy as np

    made_on: list[str] = []

    def on_device() -> list[torch.Tensor]:
        t = torch.randn(4, 3)
        made_on.append(t.device.type)
        return [t]

    def host_only() -> list[torch.Tensor]:
        return [torch.from_numpy(np.asarray(torch.randn(5).numpy()))]  # .numpy() fails off the CPU

    meta = torch.device("meta")
    assert make_inputs(on_device, InputSpec(3), meta)[0].device.type == "meta"
    assert made_on == ["meta"]  # created there directly, not drawn on the CPU and copied
    moved = make_inputs(host_only, InputSpec(3), meta)[0]
    assert moved.device.type == "meta" and moved.shape == (5,)
    first = make_inputs(host_only, InputSpec(3), torch.device("cpu"))[0]
    again = make_inputs(host_only, InputSpec(3), torch.device("cpu"))[0]
    assert torch.equal(first, again)  # the fallback path is seeded like the direct one

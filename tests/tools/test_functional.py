"""Stage 1: the functional form of a problem (lifted parameters, op list, generated source)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.problem.functional import functional_form
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.paths import PROBLEMS


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"fp_{name}", PROBLEMS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_source_computes_what_the_module_computes() -> None:
    problem = _load("linear_softmax")
    model = problem.Model(*problem.get_init_inputs())
    x = torch.randn(32, 64)
    form = functional_form(model, [x], module_source="unused")
    assert form.method == "export" and form.fallback_reason is None
    assert form.op_counts() == {"aten.linear.default": 1, "aten.add.Tensor": 1, "aten.softmax.int": 1,
                                "aten.mul.Tensor": 1}
    kinds = [(a.kind, a.target) for a in form.args]
    assert kinds == [("parameter", "proj.weight"), ("parameter", "proj.bias"), ("buffer", "shift"), ("input", "input[0]")]
    assert form.ops[0].outputs[0].shape == (32, 48) and form.outputs[0].render() == "f32[32, 48]"
    namespace: dict = {"torch": torch}
    exec(form.source, namespace)  # noqa: S102 - our own generated code, in a test
    (out,) = namespace["forward"](model.proj.weight, model.proj.bias, model.shift, x)
    torch.testing.assert_close(out, model(x))


def test_untraceable_model_falls_back_to_its_source_with_reasons() -> None:
    problem = _load("data_dependent")
    form = functional_form(problem.Model(), problem.get_inputs(), module_source="THE SOURCE")
    assert form.method == "source" and form.source == "THE SOURCE" and form.ops == ()
    assert "torch.export" in form.fallback_reason and "fx.symbolic_trace" in form.fallback_reason


@pytest.mark.parametrize("name,method", [("linear_softmax", "export"), ("data_dependent", "source")])
def test_evaluator_traces_in_the_reference_worker_without_a_gpu(name: str, method: str) -> None:
    options = WorkerOptions(env={"CUDA_VISIBLE_DEVICES": ""})
    with Evaluator(PROBLEMS / f"{name}.py", EvalSettings(load_timeout_s=60), options) as ev:
        form = ev.functional_form()
    assert form["method"] == method and form["traced"] == (method != "source")
    if method == "export":
        assert form["op_counts"]["aten.softmax.int"] == 1 and "def forward(" in form["source"]

"""kernelwright's benchmark suite (eval/suite/): every problem is well-formed, coherent and traceable.

All on CPU and fast: models are built and run on the `meta` device, so the H100-sized shapes cost no
memory, and the functional form is traced from those meta tensors.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from kernelwright.eval.suite_manifest import MANIFEST, SUITE_DIR, SuiteProblem, load_suite
from kernelwright.tools.errors import ProblemError
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.problem.functional import functional_form

SUITE = load_suite()
IDS = [p.name for p in SUITE]
INPUT_BUDGET_BYTES = 1 << 30  # each problem's inputs fit in ~1 GB of GPU memory
# Problems whose functional form legitimately falls back to the module source (none today).
EXPECTED_FALLBACK: frozenset[str] = frozenset()


def _import(problem: SuiteProblem) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"suite_{problem.name}", problem.path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _on_meta(module: ModuleType, make_inputs: Any = None) -> tuple[torch.nn.Module, list[Any]]:
    """Model and inputs as the harness builds them, but on the meta device (shapes and dtypes only)."""
    torch.manual_seed(42)
    with torch.device("meta"):
        model = module.Model(*module.get_init_inputs()).eval()
        inputs = list((make_inputs or module.get_inputs)())
    return model, inputs


def _outputs(value: Any) -> list[torch.Tensor]:
    outs = list(value) if isinstance(value, (tuple, list)) else [value]
    assert outs and all(isinstance(o, torch.Tensor) for o in outs), f"forward returned {type(value).__name__}"
    return outs


def _nbytes(inputs: list[Any]) -> int:
    return sum(t.numel() * t.element_size() for t in inputs if isinstance(t, torch.Tensor))


# ---------------------------------------------------------------- manifest

def test_manifest_lists_exactly_the_problem_files() -> None:
    on_disk = {p.name for p in SUITE_DIR.glob("*.py")}
    listed = [p.path.name for p in SUITE]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert set(listed) == on_disk
    assert len(listed) >= 40
    # NN_name.py, numbered 01.. in manifest order with no gaps, so the order is stable to refer to.
    assert [int(re.match(r"(\d\d)_[a-z0-9_]+\.py$", n).group(1)) for n in listed] == list(range(1, len(listed) + 1))


def test_manifest_covers_every_category_and_enough_bf16() -> None:
    categories = Counter(p.category for p in SUITE)
    assert set(categories) == {"single_op", "fused_chain", "norm_reduction", "attention", "model"}
    assert categories["fused_chain"] >= 12 and min(categories.values()) >= 5, categories
    assert sum(p.dtype == "bfloat16" for p in SUITE) >= 10
    assert all(p.description and len(p.description) < 160 for p in SUITE)


def test_manifest_filters_and_rejects_bad_entries(tmp_path: Path) -> None:
    assert {p.category for p in load_suite(category="attention")} == {"attention"}
    assert all(p.dtype == "bfloat16" for p in load_suite(dtype="bfloat16"))
    entry = json.loads(MANIFEST.read_text())["problems"][0]
    (tmp_path / entry["file"]).write_text((SUITE_DIR / entry["file"]).read_text())
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"problems": [{**entry, "category": "misc"}]}))
    with pytest.raises(ProblemError, match="unknown category"):
        load_suite(bad)
    bad.write_text(json.dumps({"problems": [{**entry, "file": "99_missing.py"}]}))
    with pytest.raises(ProblemError, match="no such file") as info:
        load_suite(bad)
    assert "problems[0]" in (info.value.where or "")


# ---------------------------------------------------------------- each problem

@pytest.mark.parametrize("problem", SUITE, ids=IDS)
def test_problem_passes_the_static_checks(problem: SuiteProblem) -> None:
    source = check_source(problem.path, "problem")
    assert source.forward_params, "forward's inputs should be statically visible"
    module = _import(problem)
    assert module.__doc__, "each problem says what it computes in its module docstring"
    _, inputs = _on_meta(module)
    assert len(inputs) == len(source.forward_params)


@pytest.mark.parametrize("problem", SUITE, ids=IDS)
def test_problem_runs_on_meta_with_coherent_dtypes(problem: SuiteProblem) -> None:
    module = _import(problem)
    model, inputs = _on_meta(module)
    want = getattr(torch, problem.dtype)
    assert all(isinstance(t, torch.Tensor) and t.is_meta for t in inputs)
    assert _nbytes(inputs) <= INPUT_BUDGET_BYTES, f"inputs take {_nbytes(inputs) / 2**30:.2f} GiB"
    assert all(t.dtype == want for t in inputs if t.is_floating_point()), [t.dtype for t in inputs]
    params = [p for p in model.parameters() if p.is_floating_point()]
    assert all(p.dtype == want for p in params), "parameters must be cast to the problem's dtype"
    with torch.no_grad():
        outs = _outputs(model(*inputs))
    assert all(o.dtype == want or not o.is_floating_point() for o in outs), [o.dtype for o in outs]
    assert all(o.numel() > 0 for o in outs)
    variants = getattr(module, "get_input_variants", None)
    for i in range(len(variants()) if variants else 0):
        _, v_inputs = _on_meta(module, lambda i=i: variants()[i])  # built under the meta device too
        assert all(t.is_meta for t in v_inputs if isinstance(t, torch.Tensor))
        with torch.no_grad():
            v_outs = _outputs(model(*v_inputs))
        assert [o.dtype for o in v_outs] == [o.dtype for o in outs]


def test_some_problems_declare_other_shapes() -> None:
    with_variants = [p.name for p in SUITE if "def get_input_variants" in p.path.read_text()]
    assert len(with_variants) >= 10, with_variants


@pytest.mark.parametrize("problem", SUITE, ids=IDS)
def test_functional_form_traces(problem: SuiteProblem) -> None:
    model, inputs = _on_meta(_import(problem))
    form = functional_form(model, inputs, module_source=problem.path.read_text())
    if problem.name in EXPECTED_FALLBACK:
        assert form.method == "source" and form.fallback_reason, "a fallback must say why"
        return
    assert form.method == "export", form.fallback_reason
    assert form.fallback_reason is None and form.ops
    with torch.no_grad():
        outs = _outputs(model(*inputs))
    assert [(s.shape, s.dtype) for s in form.outputs] == [
        (tuple(o.shape), str(o.dtype).removeprefix("torch.")) for o in outs]
    n_inputs = sum(a.kind == "input" for a in form.args)
    assert n_inputs == len(inputs)


# ---------------------------------------------------------------- a few at true size, on real CPU tensors

def _real(name: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    (problem,) = [p for p in SUITE if p.name == name]
    module = _import(problem)
    torch.manual_seed(0)
    model = module.Model(*module.get_init_inputs()).eval()
    inputs = module.get_inputs()
    with torch.no_grad():
        out = model(*inputs)
    meta_model, meta_inputs = _on_meta(module)
    with torch.no_grad():
        meta_out = meta_model(*meta_inputs)
    assert out.shape == meta_out.shape and out.dtype == meta_out.dtype
    return inputs, out


def test_true_size_row_sums_match_fp64() -> None:
    (x,), out = _real("10_sum_rows_bf16")
    torch.testing.assert_close(out.double(), x.double().sum(-1), atol=1e-2, rtol=1e-2)
    assert out.double().abs().min() > 1000  # the offset keeps sums well away from zero


def test_true_size_cumsum_is_a_running_total() -> None:
    (x,), out = _real("11_cumsum")
    torch.testing.assert_close(out[:, -1].double(), x.double().sum(1), atol=1e-3, rtol=1e-4)
    assert bool((out[:, 1:] >= out[:, :-1]).all())  # positive inputs: never decreasing


def test_true_size_argmin_points_at_the_minimum() -> None:
    (x,), idx = _real("35_argmin_dim0")
    assert torch.equal(x.gather(0, idx[None, :])[0], x.min(dim=0).values)
    assert idx.unique().numel() > 1000  # the minima are spread over the rows, not a constant index

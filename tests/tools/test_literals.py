"""Argument values written as Python source: one set of rules for the functional form and the host code."""

from __future__ import annotations

import math

import pytest
import torch

from kernelwright.tools.problem.literals import python_literal


@pytest.mark.parametrize("value", [None, True, 3, -2.5, "same", (4,), [1, (2, 3)], torch.bfloat16,
                                   torch.channels_last, torch.strided, float("inf"), float("-inf")])
def test_written_values_evaluate_back_to_themselves(value) -> None:
    assert eval(python_literal(value), {"torch": torch}) == value


def test_nan_is_written_as_a_float_call() -> None:
    assert math.isnan(eval(python_literal(float("nan")), {"torch": torch}))


def test_a_leaf_overrides_the_rules_and_the_fallback_writes_or_refuses_the_rest() -> None:
    leaf = lambda v: "DEV" if isinstance(v, torch.device) else None  # noqa: E731
    assert python_literal([torch.device("cpu"), 1], leaf) == "[DEV, 1]"
    with pytest.raises(TypeError, match="object"):
        python_literal(object(), fallback=lambda v: (_ for _ in ()).throw(TypeError("object")))


def test_the_functional_form_of_a_masked_fill_with_minus_infinity_is_valid_python() -> None:
    """It used to write a bare `-inf`, a name no namespace defines."""
    from kernelwright.tools.problem.functional import functional_form

    class Masked(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(x.masked_fill(x < 0, float("-inf")), dim=-1)

    form = functional_form(Masked(), [torch.randn(4, 8)], module_source="")
    assert form.method == "export" and "float('-inf')" in form.source
    namespace: dict = {"torch": torch}
    exec(compile(form.source, "functional", "exec"), namespace)
    x = torch.randn(4, 8)
    (out,) = namespace["forward"](x)  # the functional form returns its outputs as a tuple
    assert torch.allclose(out, Masked()(x), equal_nan=True)

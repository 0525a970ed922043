"""Harness-tampering detection inside a worker process."""

from __future__ import annotations

import torch

from kernelwright.tools.sandbox.guard import HarnessGuard, plain_tensor_problem


def test_guard_sees_patched_torch_and_harness_functions() -> None:
    import kernelwright.tools.verify.compare as compare

    guard = HarnessGuard.capture()
    assert guard.changed() == []
    real_allclose, real_compare = torch.allclose, compare.compare_output
    try:
        torch.allclose = lambda *a, **k: True
        compare.compare_output = lambda *a, **k: None
        changed = guard.changed()
    finally:
        torch.allclose, compare.compare_output = real_allclose, real_compare
    assert "torch.allclose" in changed and "kernelwright.tools.verify.compare.compare_output" in changed
    assert guard.changed() == []


def test_guard_sees_patched_event_timer() -> None:
    guard = HarnessGuard.capture()
    real = torch.cuda.Event.elapsed_time
    try:
        torch.cuda.Event.elapsed_time = lambda self, other: 0.0
        assert "torch.cuda.Event.elapsed_time" in guard.changed()
    finally:
        torch.cuda.Event.elapsed_time = real


def test_only_plain_tensors_are_accepted() -> None:
    class Sneaky(torch.Tensor):
        pass

    assert plain_tensor_problem(torch.zeros(2)) is None
    assert "not a plain torch.Tensor" in plain_tensor_problem(torch.zeros(2).as_subclass(Sneaky))
    assert plain_tensor_problem(torch.nn.Parameter(torch.zeros(2))) is not None

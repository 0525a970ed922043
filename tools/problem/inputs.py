"""Seeded problem inputs: generation, shapes without allocation, the timing perturbation and refills."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch


@dataclass(frozen=True, slots=True)
class InputSpec:
    """How to make one input set: the seed, and a scale for floating inputs (sensitising tests)."""

    seed: int
    scale: float = 1.0
    variant: int = -1  # >= 0: the problem's get_input_variants()[variant] (other shapes) instead of get_inputs()
    # top-level constants of the problem file set to other values for this input set (an unseen size:
    # get_inputs() of the file re-run with them, see shape_scaling)
    overrides: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed, "scale": self.scale, "variant": self.variant}
        if self.overrides:
            out["overrides"] = [list(o) for o in self.overrides]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        overrides = tuple((str(k), int(v)) for k, v in data.get("overrides") or ())
        return cls(int(data["seed"]), float(data.get("scale", 1.0)), int(data.get("variant", -1)), overrides)

    def describe(self) -> str:
        extra = f", {', '.join(f'{k}={v}' for k, v in self.overrides)}" if self.overrides else ""
        variant = f", variant {self.variant}" if self.variant >= 0 else ""
        scale = f", scale {self.scale:g}" if self.scale != 1.0 else ""
        return f"seed {self.seed}{variant}{scale}{extra}"


def make_inputs(get_inputs: Callable[[], Sequence[Any]], spec: InputSpec, device: torch.device,
                get_variants: Callable[[], Sequence[Sequence[Any]]] | None = None) -> list[Any]:
    """get_inputs() (or one of the problem's other-shape variants) under a fixed seed, on `device`, scaled."""
    if spec.variant >= 0:
        if get_variants is None:
            raise TypeError("input variant requested but the problem defines no get_input_variants()")
        produce = lambda: list(get_variants())[spec.variant]  # noqa: E731
    else:
        produce = get_inputs
    raw = _generate(produce, spec.seed, device)
    if not isinstance(raw, (list, tuple)):
        raise TypeError(f"get_inputs() must return a list or tuple, got {type(raw).__name__}")
    out = []
    for value in raw:
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if spec.scale != 1.0 and value.is_floating_point():
                value = value * spec.scale
        out.append(value)
    return out


def input_shapes(get_inputs: Callable[[], Sequence[Any]]) -> list[dict[str, Any]]:
    """What get_inputs() returns, described without allocating it: run on PyTorch's meta device (no memory),
    falling back to the CPU for an input function that cannot (it calls .numpy(), say)."""
    try:
        with torch.device("meta"):
            raw = get_inputs()
    except Exception:  # noqa: BLE001 - the CPU run below raises what a broken function raises
        torch.manual_seed(0)
        raw = get_inputs()
    if not isinstance(raw, (list, tuple)):
        raise TypeError(f"get_inputs() must return a list or tuple, got {type(raw).__name__}")
    return [describe_value(v) for v in raw]


@contextmanager
def unfilled_problem_inputs(problem: str | Path) -> Iterator[None]:
    """Within it, the tensors that the problem file's get_inputs()/get_input_variants() make are uninitialised
    CPU tensors of the right shape, stride and dtype: every torch call made from those functions runs on the
    meta device, and its result becomes an untouched CPU tensor. A call the meta device cannot run (.item(),
    .numpy()) runs as is; calls from anywhere else are untouched.

    Why: tracing (torch.export, the functional form, the offline translator) reads shapes, never values, and
    level-1 inputs are 4-17 GB; drawing them on the CPU costs seconds to minutes and their size in memory,
    while untouched pages cost neither. Only for tracing: never for inputs whose values anything reads.
    The mode is per thread (PyTorch keeps torch-function modes thread-local)."""
    with _UnfilledInputs(os.path.realpath(problem)):
        yield


class _UnfilledInputs(torch.overrides.TorchFunctionMode):
    def __init__(self, problem_file: str):
        super().__init__()
        self._file = problem_file

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        from torch.utils._pytree import tree_flatten, tree_map

        kwargs = kwargs or {}
        if not _called_from_input_function(self._file):
            return func(*args, **kwargs)
        meta_args, meta_kwargs = tree_map(_to_meta, (args, {k: v for k, v in kwargs.items() if k != "generator"}))
        if not any(isinstance(v, torch.Tensor) for v in tree_flatten((args, kwargs))[0]):
            meta_kwargs["device"] = "meta"  # a factory: torch.rand, randint, ones, tensor, ...
        try:
            result = func(*meta_args, **meta_kwargs)
        except Exception:  # noqa: BLE001 - not runnable on meta: the real call
            return func(*args, **kwargs)
        return tree_map(_unfilled, result)


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.size(), value.stride(), dtype=value.dtype, device="meta")
    return value


def _unfilled(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_meta:
        return torch.empty_strided(value.size(), value.stride(), dtype=value.dtype)
    return value


def _called_from_input_function(problem_file: str, depth: int = 12) -> bool:
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and depth > 0:
        code = frame.f_code
        if code.co_name in ("get_inputs", "get_input_variants") and os.path.realpath(code.co_filename) == problem_file:
            return True
        frame, depth = frame.f_back, depth - 1
    return False


def describe_value(value: Any) -> dict[str, Any]:
    if isinstance(value, torch.Tensor):
        return {"type": "tensor", "dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape),
                "bytes": value.numel() * value.element_size()}
    return {"type": type(value).__name__, "value": repr(value)[:80]}


def _generate(produce: Callable[[], Any], seed: int, device: torch.device) -> Any:
    """Run the problem's input function under `seed`, creating its tensors on `device` directly.

    Why on the device: get_inputs() usually draws with torch.randn on the CPU, which for the 64M-element
    inputs of a full-size problem costs more than the candidate's whole correctness check. Both workers
    (reference and candidate) make their inputs the same way on the same device, so they see identical
    values. An input function that cannot run with a CUDA default device (it calls .numpy(), say) runs on
    the CPU instead, again identically in both workers.
    """
    torch.manual_seed(seed)  # seeds the CPU and every CUDA generator
    if device.type == "cpu":
        return produce()
    try:
        with torch.device(device):
            return produce()
    except Exception:  # noqa: BLE001 - deterministic fallback; a function broken on the CPU too raises below
        torch.manual_seed(seed)
        return produce()


class Perturber:
    """Before each timed trial, swap two small windows of each input's elements.

    Cheap (two small copies per input, outside the timed region) and enough to make a result cached by
    object, pointer or shape stale, so the judged output of a timed call shows it; the windows are small,
    so a cache keyed on a few sampled elements almost never sees the change either. A swap permutes the
    values (never narrowing them to copies of a few), so however many trials run, the inputs keep moving
    away from any earlier state. The writes go through `.data`, which leaves the tensor's version counter
    alone: a cache keyed on (data_ptr, _version) is stale too, as it is when a user's code refills a buffer.
    """

    WINDOW = 64

    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def __call__(self, inputs: Sequence[Any]) -> None:
        for value in inputs:
            if isinstance(value, torch.Tensor) and value.numel() > 1 and value.is_contiguous():
                flat = value.data.view(-1)
                n = flat.numel()
                width = max(1, min(self.WINDOW, n // 2))
                i = self._rng.randrange(n - 2 * width + 1)
                j = self._rng.randrange(i + width, n - width + 1)  # after the first window: no overlap
                first = flat[i:i + width].clone()
                flat[i:i + width].copy_(flat[j:j + width])
                flat[j:j + width].copy_(first)


def refill(inputs: Sequence[Any], source: Sequence[Any]) -> None:
    """Overwrite each tensor of `inputs` in place with `source`'s values (same objects and addresses, new
    contents, version counters untouched)."""
    for dst, src in zip(inputs, source):
        if isinstance(dst, torch.Tensor) and isinstance(src, torch.Tensor) and dst.shape == src.shape:
            dst.data.copy_(src)


def input_bytes(inputs: Sequence[Any]) -> int:
    return sum(v.numel() * v.element_size() for v in inputs if isinstance(v, torch.Tensor))


def as_output_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]

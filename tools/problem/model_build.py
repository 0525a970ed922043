"""Building a problem's `Model` (or a candidate's `ModelNew`): the same seed and the same place in every worker.

Where the weights are made is a choice with two costs. KernelBench builds a Model on the host and moves it to
the GPU, so small models are built that way here too (the CPU generator draws the weights upstream draws). A
Model of many GB (level 3's wide MLPs: 8 GB of fp32 weights) built that way holds its whole size in host
memory in each worker, past the harness's host-memory limit; such a Model is built on its device instead, so
its weights never exist on the host. The place decides which generator draws the weights, so a problem's
reference and every candidate must be built in the same place: `weight_place` decides it once, from the
reference Model's size, and both workers ask it. Tracing on the CPU needs shapes only, so a large Model is
built there with uninitialised storage that is never written (address space, no memory).
"""

from __future__ import annotations

from typing import Any, Literal

from kernelwright.tools.problem.files import SourceFile, call_user

# Every Model and ModelNew is judged in eval mode; what that means, for tables that compare with KernelBench's.
MODEL_MODE_TEXT = ("Models run in eval mode (BatchNorm with its running statistics, dropout off), as the harness builds "
                   "Model and ModelNew; KernelBench's own evaluator leaves them in training mode.")
LARGE_WEIGHTS_BYTES = 1 << 30  # above this, a Model's weights are made where they are used (see the docstring)
WeightPlace = Literal["host", "device", "uninitialised"]


def weight_bytes(cls: Any, init_inputs: Any) -> int | None:
    """Bytes of `cls(*init_inputs)`'s parameters and buffers, from a build on the meta device (nothing is
    allocated); None where the constructor cannot run there (one that needs real values)."""
    import torch

    try:
        with torch.device("meta"):
            model = cls(*init_inputs)
        if not isinstance(model, torch.nn.Module):
            return None
        return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    except Exception:  # noqa: BLE001 - the size is an optimisation; without it the Model is built on the host
        return None


def is_large(n_bytes: int | None) -> bool:
    return (n_bytes or 0) > LARGE_WEIGHTS_BYTES


def weight_place(reference_weight_bytes: int | None, device: Any) -> WeightPlace:
    """Where a problem's Model and its candidates are built to run on `device` (the same answer in every worker)."""
    if is_large(reference_weight_bytes) and device is not None and getattr(device, "type", str(device)) != "cpu":
        return "device"
    return "host"


def build_model(cls: Any, init_inputs: Any, source: SourceFile, what: str, *, seed: int, device: Any,
                place: WeightPlace = "host") -> Any:
    """`cls(*init_inputs)` under a fixed seed (so Model and ModelNew get the same weights, when built in the same
    `place`), on `device`, in eval mode."""
    import torch

    torch.manual_seed(seed)
    if place == "uninitialised":
        return _uninitialised(cls, init_inputs, source, what, device)
    if place == "device":
        with torch.device(device):
            model = call_user(lambda: cls(*init_inputs), f"{what}(*get_init_inputs())", source)
    else:
        model = call_user(lambda: cls(*init_inputs), f"{what}(*get_init_inputs())", source)
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    return model


def _uninitialised(cls: Any, init_inputs: Any, source: SourceFile, what: str, device: Any) -> Any:
    """Built on the meta device, then given storage on `device` that is never written: however large, it costs
    address space but no memory on the host. For reading shapes (tracing), never for judging values."""
    import torch

    with torch.device("meta"):
        model = call_user(lambda: cls(*init_inputs), f"{what}(*get_init_inputs())", source)
    if not isinstance(model, torch.nn.Module):
        return model
    model = model.to_empty(device=device).eval()
    for sub in model.modules():  # plain tensor attributes too (to_empty moves parameters and buffers only)
        for name, value in list(vars(sub).items()):
            if isinstance(value, torch.Tensor) and value.is_meta:
                setattr(sub, name, torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=device))
    return model

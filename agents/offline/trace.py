"""Trace a problem for the offline translator: the FX graph with real node arguments.

tools/problem/functional.py keeps op arguments as text (enough for prompts); codegen needs
the real values (dims, eps, scalars), so this re-traces with torch.export and
keeps the graph. Composite ops the translator has no kernel for (losses, cosine
similarity, ...) are decomposed into ATen ops it does know; the ops it handles
natively (softmax, layer_norm, linear, conv, gelu, ...) are kept whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.problem.files import SourceFile, build_model, call_user, check_source, import_file
from kernelwright.tools.problem.inputs import InputSpec, make_inputs

INIT_SEED = 42  # the harness's default init seed; only the graph matters here, not the weights

_aten = torch.ops.aten
# Ops with their own kernel (or a host library call) in the translator: keep them whole.
KEEP_WHOLE = (
    _aten.linear.default, _aten.matmul.default, _aten.conv1d.default, _aten.conv2d.default, _aten.conv3d.default,
    _aten.conv_transpose1d.default, _aten.conv_transpose2d.input, _aten.conv_transpose3d.input,
    _aten.softmax.int, _aten.log_softmax.int, _aten.layer_norm.default, _aten.rms_norm.default,
    _aten.group_norm.default, _aten.batch_norm.default, _aten.instance_norm.default,
    _aten.gelu.default, _aten.silu.default, _aten.mish.default, _aten.hardswish.default, _aten.hardsigmoid.default,
    _aten.softplus.default, _aten.elu.default, _aten.selu.default, _aten.celu.default, _aten.leaky_relu.default,
    _aten.hardtanh.default, _aten.relu6.default, _aten.logsumexp.default, _aten.log_sigmoid_forward.default,
    _aten.softshrink.default, _aten.hardshrink.default, _aten.var.correction, _aten.std.correction,
    _aten.max_pool1d.default, _aten.max_pool2d.default, _aten.max_pool3d.default,
    _aten.avg_pool1d.default, _aten.avg_pool2d.default, _aten.avg_pool3d.default,
    _aten.adaptive_avg_pool2d.default, _aten.adaptive_avg_pool1d.default,
    _aten.scaled_dot_product_attention.default,  # flash / cuDNN attention: far faster than its decomposition
)


class TraceFailure(KernelwrightError):
    """The problem could not be loaded or traced into an op graph."""

    kind = "trace"


@dataclass
class TracedProblem:
    path: Path
    source: SourceFile
    module: ModuleType
    model: torch.nn.Module
    inputs: list[Any]
    init_inputs: list[Any]
    program: Any  # torch.export.ExportedProgram
    forward_params: tuple[str, ...]
    variant: int = -1

    @property
    def graph(self) -> torch.fx.Graph:
        return self.program.graph


def load_problem(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> tuple[SourceFile, ModuleType]:
    """Import the problem file in this process (the caller's CPU side). `overrides` replaces module globals
    (e.g. a smaller batch_size for CPU tests) before get_inputs() runs."""
    source = check_source(path, "problem")
    module = import_file(source, f"kw_offline_{source.sha256[:12]}_{abs(hash(tuple(sorted((overrides or {}).items())))) % 10**8}")
    for key, value in (overrides or {}).items():
        setattr(module, key, value)
    return source, module


def n_variants(module: ModuleType) -> int:
    variants = getattr(module, "get_input_variants", None)
    return len(variants()) if callable(variants) else 0


def trace_problem(path: str | Path, *, overrides: Mapping[str, Any] | None = None, seed: int = 0,
                  variant: int = -1) -> TracedProblem:
    """Load, build (eval mode, the harness's init seed) and export the problem's Model on get_inputs() (or on
    get_input_variants()[variant]); TraceFailure on failure."""
    try:
        source, module = load_problem(path, overrides=overrides)
        init_inputs = list(call_user(module.get_init_inputs, "get_init_inputs()", source))
        spec = InputSpec(seed, variant=variant)
        inputs = call_user(lambda: make_inputs(module.get_inputs, spec, torch.device("cpu"),
                                               getattr(module, "get_input_variants", None)), "get_inputs()", source)
        model = build_model(module.Model, init_inputs, source, "Model", seed=INIT_SEED, device=torch.device("cpu"))
    except KernelwrightError as exc:
        raise TraceFailure(f"cannot load the problem: {exc.message}", where=exc.where or str(path)) from None
    try:
        with torch.no_grad():
            program = torch.export.export(model, tuple(inputs), strict=False)
            table = torch.export.default_decompositions()
            for op in KEEP_WHOLE:
                table.pop(op, None)
            program = program.run_decompositions(table)
    except Exception as exc:  # export fails in many shapes; each becomes a typed report
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise TraceFailure(f"torch.export failed: {type(exc).__name__}: {first}", where=str(path)) from None
    params = source.forward_params or tuple(f"in{i}" for i in range(len(inputs)))
    return TracedProblem(Path(path).resolve(), source, module, model, list(inputs), init_inputs, program, params, variant)

"""Trace a problem for the offline translator: the FX graph with real node arguments.

tools/problem/functional.py keeps op arguments as text (enough for prompts); codegen needs
the real values (dims, eps, scalars), so this re-traces with torch.export and
keeps the graph. Composite ops the translator has no kernel for (losses, cosine
similarity, ...) are decomposed into ATen ops it does know; the ops it handles
natively (softmax, layer_norm, linear, conv, gelu, ...) are kept whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from kernelwright.agents.offline.attention import decompose_wide_fp32_attention
from kernelwright.agents.offline.recurrent import recurrent_ops_whole, restore_aten_targets
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.problem.files import SourceFile, call_user, check_source, import_file
from kernelwright.tools.problem.inputs import InputSpec, make_inputs
from kernelwright.tools.problem.model_build import build_model, is_large
from kernelwright.tools.problem.model_build import weight_bytes as model_weight_bytes

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
    _aten.scaled_dot_product_attention.default,  # flash / cuDNN attention; fp32 with a wide head: see attention.py
    # Recurrent layers: one RecurrentStep (a persistent kernel per layer) or the cuDNN call; decomposed, a
    # 512-step 6-layer LSTM becomes ~50k ops (minutes to trace and plan, thousands of kernels).
    _aten.lstm.input, _aten.gru.input, _aten.rnn_tanh.input, _aten.rnn_relu.input,
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
    # plain tensor attributes forward reassigns (state across calls), registered as buffers to be traced
    attributes: tuple[str, ...] = ()

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


def weight_bytes(module: ModuleType) -> int | None:
    """Bytes of the problem's Model's parameters and buffers (None where it cannot be built on the meta device)."""
    return model_weight_bytes(module.Model, module.get_init_inputs())


def trace_problem(path: str | Path, *, overrides: Mapping[str, Any] | None = None, seed: int = 0,
                  variant: int = -1, lazy_weights: bool | None = None) -> TracedProblem:
    """Load, build (eval mode, the harness's init seed) and export the problem's Model on get_inputs() (or on
    get_input_variants()[variant]); TraceFailure on failure. `lazy_weights`: build the Model without
    initialising its weights (for a Model too large to build in memory; see tools.problem.model_build); None:
    so for a large Model, unless its forward reads tensor attributes whose values a candidate embeds."""
    try:
        source, module = load_problem(path, overrides=overrides)
        init_inputs = list(call_user(module.get_init_inputs, "get_init_inputs()", source))
        spec = InputSpec(seed, variant=variant)
        inputs = call_user(lambda: make_inputs(module.get_inputs, spec, torch.device("cpu"),
                                               getattr(module, "get_input_variants", None)), "get_inputs()", source)
        auto = lazy_weights is None
        if lazy_weights is None:
            lazy_weights = is_large(model_weight_bytes(module.Model, init_inputs))
        model = build_model(module.Model, init_inputs, source, "Model", seed=INIT_SEED, device=torch.device("cpu"),
                            place="uninitialised" if lazy_weights else "host")
    except KernelwrightError as exc:
        raise TraceFailure(f"cannot load the problem: {exc.message}", where=exc.where or str(path)) from None
    try:
        program, attributes = _export(model, inputs)
    except Exception as exc:  # export fails in many shapes; each becomes a typed report
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise TraceFailure(f"torch.export failed: {type(exc).__name__}: {first}", where=str(path)) from None
    embedded = sorted(s.target for s in program.graph_signature.input_specs if s.kind.name == "CONSTANT_TENSOR")
    if lazy_weights and embedded and auto:
        return trace_problem(path, overrides=overrides, seed=seed, variant=variant, lazy_weights=False)
    if lazy_weights and embedded:
        # a lifted constant is embedded in the candidate by value, and lazily built ones have none
        raise TraceFailure("the Model is too large to build in memory here, and its forward reads tensor attributes "
                           f"({', '.join(embedded)}) whose values a candidate would embed", where=str(path))
    params = source.forward_params or tuple(f"in{i}" for i in range(len(inputs)))
    return TracedProblem(Path(path).resolve(), source, module, model, list(inputs), init_inputs, program, params, variant,
                         attributes)


def _export(model: torch.nn.Module, inputs: list[Any]) -> tuple[Any, tuple[str, ...]]:
    """The decomposed program (KEEP_WHOLE ops kept), and the plain tensor attributes registered as buffers
    on the way because forward changes them."""
    attributes: list[str] = []
    table = torch.export.default_decompositions()
    for op in KEEP_WHOLE:
        table.pop(op, None)
    table[_aten.scaled_dot_product_attention.default] = decompose_wide_fp32_attention  # NotImplemented: kept whole
    with torch.no_grad(), recurrent_ops_whole():
        while True:
            try:
                program = torch.export.export(model, tuple(inputs), strict=False).run_decompositions(table)
                break
            except RuntimeError as exc:
                name = _mutated_attribute(exc, model)
                if name is None or name in attributes:
                    raise
                _register_as_buffer(model, name)
                attributes.append(name)
    restore_aten_targets(program.graph)
    return program, tuple(attributes)


_MUTATED_CONSTANT = re.compile(r"Constant (\S+) is mutated in the forward method")


def _mutated_attribute(exc: Exception, model: torch.nn.Module) -> str | None:
    """The plain tensor attribute that torch.export refused because forward reassigns or changes it (the
    Model keeps state across calls, like an RNN's hidden state), or None for any other failure."""
    match = _MUTATED_CONSTANT.search(str(exc))
    if match is None:
        return None
    owner, _, attr = match.group(1).rpartition(".")
    try:
        value = getattr(model.get_submodule(owner), attr)
    except AttributeError:
        return None
    return match.group(1) if isinstance(value, torch.Tensor) else None


def _register_as_buffer(model: torch.nn.Module, target: str) -> None:
    """Make the attribute a (non-persistent) buffer of its module, so that export traces its update as a
    buffer mutation; the candidate still reads and writes it as the attribute it is in the problem's Model."""
    owner_name, _, attr = target.rpartition(".")
    owner = model.get_submodule(owner_name)
    value = getattr(owner, attr)
    delattr(owner, attr)
    owner.register_buffer(attr, value, persistent=False)

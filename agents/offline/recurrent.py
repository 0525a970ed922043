"""Recurrent layers (nn.LSTM, nn.GRU, nn.RNN) traced as one op each, fast.

The translator keeps aten.lstm/gru/rnn_tanh/rnn_relu whole (planned as one RecurrentStep), but those ops are
CompositeImplicitAutograd: to learn their output shapes, torch.export runs their Python decomposition with
fake tensors, one cell per time step and layer, twice (export and run_decompositions). For a 512-step,
6-layer LSTM that is ~10k cells and 15-40 s per problem, to produce a graph that then keeps the one op.

Here nn's recurrent modules call, for the duration of a trace, custom ops of the same signature whose fake
kernel gives the output shapes directly; after the trace each such node is pointed back at the ATen op it
stands for, so the graph is the one the slow path gives (the same op, arguments and output metadata).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

NAMESPACE = "kernelwright_offline"
# ATen op name -> whether its hx argument is a list (LSTM: (h0, c0)) or one tensor.
_RECURRENT = {"lstm": True, "gru": False, "rnn_tanh": False, "rnn_relu": False}
_TAIL = "Tensor[] params, bool has_biases, int num_layers, float dropout, bool train, bool bidirectional, bool batch_first"
_lock = threading.Lock()
_library: Any = None


def _aten(name: str) -> Any:
    return getattr(torch.ops.aten, name).input


def _define() -> None:
    """Register the stand-in ops once per process."""
    global _library
    with _lock:
        if _library is not None:
            return
        lib = torch.library.Library(NAMESPACE, "DEF")
        for name, hx_list in _RECURRENT.items():
            hx = "Tensor[] hx" if hx_list else "Tensor hx"
            outs = "(Tensor, Tensor, Tensor)" if hx_list else "(Tensor, Tensor)"
            lib.define(f"{name}(Tensor input, {hx}, {_TAIL}) -> {outs}")
            aten_op = _aten(name)
            lib.impl(name, _real(aten_op), "CompositeExplicitAutograd")
            torch.library.register_fake(f"{NAMESPACE}::{name}", _fake(hx_list), lib=lib)
        _library = lib


def _real(aten_op: Any) -> Any:
    def run(*args: Any) -> Any:
        return aten_op(*args)
    return run


def _fake(hx_list: bool) -> Any:
    def shapes(input: torch.Tensor, hx: Any, params: Any, has_biases: bool, num_layers: int, dropout: float,
               train: bool, bidirectional: bool, batch_first: bool) -> Any:
        states = list(hx) if hx_list else [hx]
        # output: the input's leading dims (seq and batch, in its order) by directions x hidden (or proj) size;
        # ATen computes it time-major, so batch-first output is the transposed view of that
        width = (2 if bidirectional else 1) * states[0].shape[-1]
        if batch_first and input.dim() == 3:
            batch, seq = input.shape[0], input.shape[1]
            out = input.new_empty_strided((batch, seq, width), (width, batch * width, 1))
        else:
            out = input.new_empty((*input.shape[:-1], width))
        return (out, *(s.new_empty(s.shape) for s in states))
    return shapes


class _VFShim:
    """Stands in for torch._VF inside torch.nn.modules.rnn: the padded-tensor forms of the four recurrent ops
    go to the stand-in ops; everything else (packed sequences, cells, other functions) to the real _VF."""

    def __init__(self, real: Any):
        self._real = real

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._real, name)
        if name not in _RECURRENT:
            return real
        stand_in = getattr(getattr(torch.ops, NAMESPACE), name).default

        def call(*args: Any, **kwargs: Any) -> Any:
            # input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first
            if len(args) == 9 and not kwargs and isinstance(args[0], torch.Tensor) and isinstance(args[2], (list, tuple)):
                return stand_in(*args)
            return real(*args, **kwargs)
        return call


@contextlib.contextmanager
def recurrent_ops_whole() -> Iterator[None]:
    """While tracing: nn.LSTM/GRU/RNN call the stand-in ops (see the module docstring)."""
    from torch.nn.modules import rnn

    _define()
    real = rnn._VF
    rnn._VF = _VFShim(real)  # type: ignore[assignment]  # duck-types the module's attribute lookups
    try:
        yield
    finally:
        rnn._VF = real


def restore_aten_targets(graph: torch.fx.Graph) -> int:
    """Point every stand-in node back at its ATen op; how many there were."""
    count = 0
    for node in graph.nodes:
        op = node.target
        if node.op == "call_function" and isinstance(op, torch._ops.OpOverload) and op.namespace == NAMESPACE:
            node.target = _aten(op._opname)
            count += 1
    return count

"""A candidate that replays its own launches as one CUDA graph (the tunable `launch.GRAPH`, behind the setting
RunSettings.offline_graphs, off until an H100 measures it).

Why: KernelBench's whole networks run at small batches (ResNet18 at batch 2), where a call is dozens of short
kernels and the host's launch time, not the GPU, sets its length. On an H100 (session 20, kernelbench profile) level
3's verified candidates ran at a median of 23x their roofline floor, ResNet18 at 114x, and two of its candidates
differing only in the first convolution's mode timed 1.81 and 2.61 ms: the host, not the GPU, set those times. A graph launches the whole forward at once.

What the candidate does (`GRAPH_METHOD`, a method of ModelNew): the first call at a traced shape outside a
profiler runs the forward as usual (its result is the call's), then captures one graph of it over copies of the
inputs (calls under a profiler, such as the harness's traced correctness calls, run plainly: a capture while CUPTI
records may fail; the harness still traces a replay in its check after timing). Later calls copy
their inputs into those copies, replay, and return copies of the graph's outputs, so every call computes from its
own inputs and no output is overwritten by the next call. A capture that fails (an op that waits on the host)
leaves that shape on the plain forward. Nothing is cached across calls but the graph itself: the harness's checks
(fresh inputs each call, outputs compared per call, side streams, launches traced) apply as to any candidate.

Offered only where a graph can hold the forward (`graph_offered`): every forward argument a tensor (a graph fixes
the rest), no output a Python constant and no attribute moved to the device per call (both copy from the host,
which a capture forbids), and inputs small enough that a call is launch-bound and a second copy of them is cheap.
"""

from __future__ import annotations

import torch

from kernelwright.agents.offline.ir import Buffer, Const, Plan

GRAPH_DIM = "launch.GRAPH"  # the plan-wide tunable: 0 plain launches, 1 one CUDA graph per traced shape
GRAPH_MAX_INPUT_BYTES = 64 << 20  # above this a call moves enough data that launches are not what it waits on


def _bytes(buf: Buffer) -> int:
    return buf.numel * getattr(torch, buf.dtype).itemsize


def graph_offered(plan: Plan) -> bool:
    """Whether a CUDA graph can replay this plan's forward (see the module docstring)."""
    if not plan.user_inputs or any(b is None for b in plan.user_inputs):
        return False
    if any(isinstance(o, Const) for o in plan.outputs):
        return False
    if any(b.origin == "attribute" for b in plan.buffers.values()):
        return False
    return sum(_bytes(plan.buffers[b]) for b in plan.user_inputs if b is not None) <= GRAPH_MAX_INPUT_BYTES


# ModelNew's method (4-space indented, as codegen_host writes methods). `forward` is the traced shape's plain forward.
GRAPH_METHOD = '''    def _kw_graphed(self, index, forward, args):
        # One CUDA graph per traced shape (kernelwright.agents.offline.graph_launch): inputs are copied into the
        # graph's own, the graph replays, and the call returns copies of its outputs.
        if not all(a.is_cuda for a in args) or len({a.device for a in args}) != 1:
            return forward(*args)
        device = args[0].device  # a graph is captured and replayed on its inputs' GPU, whichever is current
        key = tuple((a.dtype, a.device) for a in args)
        entry = self._kw_graphs.get(index)
        if entry is not None and entry[0] == key:
            _, graph, statics, captured = entry
            if graph is None:  # its capture failed: this shape keeps plain launches
                return forward(*args)
            for static, a in zip(statics, args):
                static.copy_(a)
            with torch.cuda.device(device):
                graph.replay()
            if isinstance(captured, torch.Tensor):
                return captured.clone()
            return type(captured)(t.clone() for t in captured)
        if torch._C._autograd._profiler_enabled():
            return forward(*args)  # no capture under a profiler (the harness traces its checked calls): a later call
        with torch.no_grad():
            out = forward(*args)  # this call's result, and the warm-up a capture needs (kernels loaded, state made)
            with torch.inference_mode(False):  # the graph's inputs take in-place copies on every later call
                statics = [a.clone() for a in args]
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.device(device), torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    captured = forward(*statics)
            except Exception:  # an op that waits on the host cannot be captured
                graph, statics, captured = None, None, None
        self._kw_graphs[index] = (key, graph, statics, captured)
        return out'''

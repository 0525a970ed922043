"""Whole networks (KernelBench level 3): recurrent layers stay one library call and trace fast, Model state
that forward changes is carried across calls, Models too large to build are traced without their weights,
and batch norm uses running statistics only where the Model is in eval mode."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from kernelwright.agents.offline import OfflineUnsupported, propose
from kernelwright.agents.offline.check import check_traced
from kernelwright.agents.offline.ir import ElementwiseStep, HostStep, Load, Op, RecurrentStep
from kernelwright.agents.offline.ops import PRIMITIVES
from kernelwright.agents.offline.planner import build_plan
from kernelwright.agents.offline.recurrent import NAMESPACE
from kernelwright.agents.offline.trace import KEEP_WHOLE, TraceFailure, trace_problem

RECURRENT = '''
import torch
import torch.nn as nn

KIND, BIDIRECTIONAL, BATCH_FIRST, SEQ, LAYERS, TAIL = "lstm", False, False, 5, 2, True


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}[KIND]
        extra = {"nonlinearity": "relu"} if KIND == "rnn_relu" else {}
        self.rnn = cls(6, 8, LAYERS, batch_first=BATCH_FIRST, bidirectional=BIDIRECTIONAL, **extra)

    def forward(self, x, h0):
        out, state = self.rnn(x, (h0, h0 * 0.5) if KIND == "lstm" else h0)
        if TAIL == "all":
            return (out, *state) if KIND == "lstm" else (out, state)
        return torch.relu(out) + 1.0 if TAIL else out


def get_inputs():
    x = torch.rand(3, SEQ, 6) if BATCH_FIRST else torch.rand(SEQ, 3, 6)
    return [x, torch.rand(LAYERS * (2 if BIDIRECTIONAL else 1), 3, 8)]


def get_init_inputs():
    return []
'''


def _problem(tmp_path: Path, text: str, **settings: object) -> Path:
    """`text` with module-level settings overridden (assignments after the defaults line)."""
    defaults = next(line for line in text.splitlines() if line.startswith("KIND, "))
    overrides = "".join(f"\n{k} = {v!r}" for k, v in settings.items())
    path = tmp_path / "problem.py"
    path.write_text(text.replace(defaults, defaults + overrides, 1))
    return path


def _shape_graph(graph: torch.fx.Graph) -> list[tuple]:
    """The graph as (op, target, argument structure, output shapes), names replaced by positions."""
    index = {n: i for i, n in enumerate(graph.nodes)}

    def arg(a: object) -> object:
        if isinstance(a, torch.fx.Node):
            return ("node", index[a])
        if isinstance(a, (list, tuple)):
            return tuple(arg(x) for x in a)
        return a

    def shapes(v: object) -> object:
        if isinstance(v, torch.Tensor):
            return (tuple(v.shape), v.dtype, tuple(v.stride()))
        if isinstance(v, (list, tuple)):
            return tuple(shapes(x) for x in v)
        return None

    return [(n.op, str(n.target), arg(n.args), shapes(n.meta.get("val"))) for n in graph.nodes]


@pytest.mark.parametrize(("kind", "bidirectional", "batch_first"),
                         [("lstm", True, True), ("gru", False, False), ("rnn_tanh", True, False), ("rnn_relu", False, True)])
def test_a_recurrent_layer_traces_as_one_op_with_the_slow_traces_graph(tmp_path: Path, kind: str, bidirectional: bool,
                                                                       batch_first: bool) -> None:
    path = _problem(tmp_path, RECURRENT, KIND=kind, BIDIRECTIONAL=bidirectional, BATCH_FIRST=batch_first)
    traced = trace_problem(path)
    aten_op = getattr(torch.ops.aten, kind).input
    targets = [n.target for n in traced.graph.nodes if n.op == "call_function"]
    assert targets.count(aten_op) == 1
    assert not any(getattr(t, "namespace", "") == NAMESPACE for t in targets)  # every stand-in pointed back
    # the same graph as torch's own (slow) trace, which runs the op's decomposition to learn its shapes
    table = torch.export.default_decompositions()
    for op in KEEP_WHOLE:
        table.pop(op, None)
    with torch.no_grad():
        slow = torch.export.export(traced.model, tuple(traced.inputs), strict=False).run_decompositions(table)
    assert _shape_graph(traced.graph) == _shape_graph(slow.graph)


@pytest.mark.parametrize(("kind", "bidirectional", "batch_first"),
                         [("lstm", True, True), ("lstm", False, False), ("gru", True, False), ("gru", False, True),
                          ("rnn_tanh", True, False), ("rnn_relu", False, True)])
def test_a_recurrent_network_is_one_step_that_reproduces_the_model(tmp_path: Path, kind: str, bidirectional: bool,
                                                                   batch_first: bool) -> None:
    path = _problem(tmp_path, RECURRENT, KIND=kind, BIDIRECTIONAL=bidirectional, BATCH_FIRST=batch_first, LAYERS=3,
                    TAIL="all")
    traced = trace_problem(path)
    plan = build_plan(traced.program)
    rec = [s for s in plan.steps if isinstance(s, RecurrentStep)]
    assert len(rec) == 1 and rec[0].cell == kind and not any(isinstance(s, HostStep) for s in plan.steps)
    # interp runs the step as its kernel does (gate projection, then step by step, reverse direction backwards):
    # output, h_n (and c_n) match the Model's own nn.LSTM / GRU / RNN
    check = check_traced(traced, {"fused": plan}, {})
    assert len(check.results["fused"]) == (3 if kind == "lstm" else 2)  # output, h_n (, c_n)
    assert all(c["passed"] for c in check.results["fused"]), check.results
    step = rec[0]
    source = propose(path)[0].source
    body = source.split("def _kw_forward_0")[1]
    assert body.count(f"_kw_lib.kw_launch_{step.name}(") == 3  # one launch per layer, both directions in it
    assert body.count("torch.ops.aten.linear.default(_kw_x") == 3 * step.directions  # the gate projections
    assert f"torch.ops.aten.{kind}.input(" not in body and "cudaLaunchCooperativeKernel" in source
    # the tuner can put the library call back
    library = propose(path, params={f"{step.name}.IMPL": "library"}, variants=("fused",))[0].source
    assert f"torch.ops.aten.{kind}.input(" in library and f"kw_launch_{step.name}" not in library


def test_a_recurrent_layer_the_kernel_does_not_cover_stays_the_library_call(tmp_path: Path) -> None:
    path = _problem(tmp_path, RECURRENT.replace("self.rnn = cls(6, 8, LAYERS,", "self.rnn = cls(6, 8, LAYERS, proj_size=4,"),
                    KIND="lstm")
    text = path.read_text().replace("torch.rand(LAYERS * (2 if BIDIRECTIONAL else 1), 3, 8)]",
                                    "torch.rand(LAYERS, 3, 4)]").replace("(h0, h0 * 0.5)", "(h0, torch.ones(LAYERS, 3, 8))")
    path.write_text(text)
    plan = build_plan(trace_problem(path).program)
    assert [s.target for s in plan.steps if isinstance(s, HostStep) and s.library] == ["aten.lstm.input"]
    assert any("projections" in note for note in plan.notes)


def test_a_long_deep_recurrent_network_traces_without_unrolling(tmp_path: Path) -> None:
    # KernelBench's LSTMs are 512 steps x 6 layers: decomposed, ~50k ops and minutes to trace and plan
    path = _problem(tmp_path, RECURRENT, KIND="gru", SEQ=512, LAYERS=6, TAIL=False)
    traced = trace_problem(path)
    assert sum(1 for n in traced.graph.nodes if n.op == "call_function") < 10
    candidate = propose(path)[0]
    assert "Custom kernels: 1;" in candidate.source and candidate.source.count("_kw_lib.kw_launch_r") == 6


STATEFUL = '''
import torch
import torch.nn as nn

batch_size = 4


class Model(nn.Module):
    """KernelBench's 33_VanillaRNN, scaled down: the hidden state is a plain attribute forward reassigns."""

    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.hidden = torch.randn((batch_size, hidden_size))
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)

    def forward(self, x, initial_hidden=None):
        if initial_hidden is not None:
            self.hidden.copy_(initial_hidden)
        self.hidden = self.hidden.to(x.device)
        self.hidden = torch.tanh(self.i2h(torch.cat((x, self.hidden), dim=1)))
        return self.h2o(self.hidden)


def get_inputs():
    return [torch.rand(batch_size, 8), torch.rand(batch_size, 16)]


def get_init_inputs():
    return [8, 16, 5]
'''


def test_state_a_forward_reassigns_is_read_each_call_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "stateful.py"
    path.write_text(STATEFUL)
    traced = trace_problem(path)  # export refuses a mutated constant: it is traced as a buffer instead
    assert traced.attributes == ("hidden",)
    plan = build_plan(traced.program, attributes=frozenset(traced.attributes))
    (target, value), = plan.state_updates
    assert target == "hidden" and len(plan.outputs) == 1 and plan.outputs[0] != value
    assert [b.origin for b in plan.buffers.values() if b.target == "hidden"] == ["attribute"]
    check = check_traced(traced, {"fused": plan}, {})
    assert all(c["passed"] for c in check.results["fused"]), check.results
    source = propose(path)[0].source
    body = source[source.index("def _kw_forward_0"):]
    # read afresh (a plain attribute: moved as the Model moves it), never cached, then reassigned
    assert "getattr(self.kw_ref.get_submodule(''), 'hidden').to(_kw_dev)" in body
    assert "'hidden'" not in body[:body.index("_kw_dev =")]
    assert f"setattr(self.kw_ref.get_submodule(''), 'hidden', {value.buffer})" in body
    assert body.index("setattr(") < body.index("return ")


COUNTER = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x):
        self.calls.add_(1)
        return torch.relu(x) * 2


def get_inputs():
    return [torch.rand(16, 32)]


def get_init_inputs():
    return []
'''


def test_a_buffer_forward_changes_is_updated_in_place_and_not_returned(tmp_path: Path) -> None:
    path = tmp_path / "counter.py"
    path.write_text(COUNTER)
    traced = trace_problem(path)
    plan = build_plan(traced.program)
    assert [t for t, _ in plan.state_updates] == ["calls"]
    check = check_traced(traced, {"fused": plan}, {})  # forward's output, not the buffer's new value
    assert all(c["passed"] for c in check.results["fused"]), check.results
    body = propose(path)[0].source.split("def _kw_forward_0")[1]
    assert "self._kw_state" not in body  # the buffer is the only state, and it is never cached
    assert "self.kw_ref.get_buffer('calls').contiguous()" in body
    assert f"self.kw_ref.get_buffer('calls').copy_({plan.state_updates[0][1].buffer})" in body


def test_forward_changing_its_input_in_place_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "inplace.py"
    path.write_text(COUNTER.replace("self.calls.add_(1)", "x.add_(1)"))
    with pytest.raises(OfflineUnsupported) as info:
        propose(path)
    assert "forward changes x in place" in info.value.message


MLP = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])
        self.register_buffer("scale", torch.full((sizes[-1],), 0.5))

    def forward(self, x):
        return self.net(x) * self.scale


def get_inputs():
    return [torch.rand(4, 32)]


def get_init_inputs():
    return [[32, 64, 48, 16]]
'''


@pytest.mark.parametrize("text", [MLP, STATEFUL], ids=["mlp", "stateful"])
def test_lazily_built_weights_give_the_same_candidates(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.py"
    path.write_text(text)
    real = [(c.variant, c.source) for c in propose(path)]
    assert real and [(c.variant, c.source) for c in propose(path, lazy_weights=True)] == real


def test_lazy_weights_refuse_a_model_whose_constants_a_candidate_embeds(tmp_path: Path) -> None:
    path = tmp_path / "p.py"
    # a plain tensor attribute forward only reads: export lifts it as a constant, embedded by value
    path.write_text(MLP.replace('self.register_buffer("scale", torch.full((sizes[-1],), 0.5))',
                                "self.scale = torch.full((sizes[-1],), 0.5)"))
    assert propose(path)  # with real weights: embedded
    with pytest.raises(TraceFailure, match=r"too large to build in memory here.*\(scale\)"):
        trace_problem(path, lazy_weights=True)


CONV_BN = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) + x.mean())


def get_inputs():
    return [torch.rand(2, 3, 8, 8)]


def get_init_inputs():
    return []
'''


def test_batch_norm_uses_running_statistics_only_in_eval_mode(tmp_path: Path) -> None:
    path = tmp_path / "conv_bn.py"
    path.write_text(CONV_BN)
    traced = trace_problem(path)
    assert not traced.model.training  # the translator (like the harness, Model and ModelNew alike) is in eval mode
    plan = build_plan(traced.program)
    stats = {n for n, b in plan.buffers.items() if b.target in ("bn.running_mean", "bn.running_var")}
    # eval: the normalisation (with the conv's bias and the ReLU) is the conv's epilogue kernel, on running stats
    assert [s.target for s in plan.steps if isinstance(s, HostStep)] == ["aten.conv2d.default"]
    readers = [s for s in plan.steps if isinstance(s, ElementwiseStep)
               and stats <= {e.layout.buffer for e in s.dag.nodes if isinstance(e, Load)}]
    assert len(readers) == 1 and not plan.state_updates
    # training: batch statistics. Never the running ones: batch norm stays an ATen op, and the running
    # statistics it updates are written back as the Model's would be
    model = traced.model.train()
    with torch.no_grad():
        training = torch.export.export(model, tuple(traced.inputs), strict=False).run_decompositions()
    plan = build_plan(training)
    stats = {n for n, b in plan.buffers.items() if b.target in ("bn.running_mean", "bn.running_var")}
    assert not any(e.layout.buffer in stats for s in plan.steps if isinstance(s, ElementwiseStep)
                   for e in s.dag.nodes if isinstance(e, Load))
    assert any("batch_norm" in op for op in plan.kept_aten_ops)
    assert {"bn.running_mean", "bn.running_var"} <= {t for t, _ in plan.state_updates}


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a host C++ compiler")
@pytest.mark.parametrize("prim", ["fmod", "remainder", "floor_divide"])
def test_integer_fmod_remainder_and_floor_divide_are_device_code_with_torchs_results(tmp_path: Path, prim: str) -> None:
    # torch.roll decomposes into an int64 fmod (30_SwinTransformerV2): <cmath>'s fmod/floor on integers are
    # host-only constexpr functions, which nvcc refuses in a kernel. The C expression is plain C++: run it here.
    op = Op(prim, (0, 1), "int64")
    text = PRIMITIVES[prim].c(["a", "b"], op, "long long")
    assert "fmod(" not in text and "floor(" not in text
    values = [-7, -6, -5, -1, 0, 1, 3, 5, 6, 7, 56, -56]
    program = tmp_path / "p.cpp"
    program.write_text("#include <cstdio>\nint main() {\n    long long xs[] = {" + ", ".join(map(str, values)) + "};\n"
                       "    for (long long a : xs) for (long long b : xs) if (b != 0) "
                       f"printf(\"%lld\\n\", (long long)({text}));\n}}\n")
    subprocess.run(["g++", "-std=c++17", "-o", str(tmp_path / "p"), str(program)], check=True, timeout=120)
    got = [int(v) for v in subprocess.run([str(tmp_path / "p")], capture_output=True, text=True, check=True).stdout.split()]
    a = torch.tensor([x for x in values for y in values if y != 0])
    b = torch.tensor([y for x in values for y in values if y != 0])
    want = {"fmod": torch.fmod, "remainder": torch.remainder, "floor_divide": torch.floor_divide}[prim](a, b)
    assert got == want.tolist()

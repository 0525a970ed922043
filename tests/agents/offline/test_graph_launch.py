"""The tunable launch.GRAPH (agents/offline/graph_launch.py, behind RunSettings.offline_graphs, off by default): a
candidate that replays its forward as one CUDA graph per traced shape. On CPU: where it is offered, that it is
absent with the setting off (so today's candidates are unchanged), the fill's switch, the rendered dispatch, and the
method's own logic with a stand-in for torch.cuda's graph (a CPU has none). On a GPU: the real harness verifies a
graphed network candidate beside the same candidate without the graph, and a forward that cannot be captured falls
back to plain launches."""

from __future__ import annotations

import ast
import contextlib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from kernelwright.agents.context import RunSettings
from kernelwright.agents.offline import graph_launch
from kernelwright.agents.offline.graph_launch import GRAPH_DIM, GRAPH_METHOD, graph_offered
from kernelwright.agents.offline.ir import Const
from kernelwright.agents.offline.propose import trace_all, tuning_target
from support.offline import harness_failures
from support.paths import KERNELBENCH

_MLP = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 32)

    def forward(self, x{extra}):
        return torch.relu(self.fc2(torch.relu(self.fc1(x)))){scale}


def get_inputs():
    return [torch.randn(8, 64){extra_input}]


def get_init_inputs():
    return []
'''


def _problem(tmp_path: Path, name: str = "mlp", *, scalar_argument: bool = False) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(_MLP.format(extra=", scale" if scalar_argument else "", scale=" * scale" if scalar_argument else "",
                                extra_input=", 2.0" if scalar_argument else ""))
    return path


def _target(problem: Path, graphs: bool) -> Any:
    target = tuning_target(trace_all(problem), "fused", graphs=graphs)
    assert target is not None
    return target


def test_the_setting_is_off_by_default_and_off_adds_nothing(tmp_path: Path) -> None:
    assert RunSettings().offline_graphs is False
    target = _target(_problem(tmp_path), graphs=False)
    assert GRAPH_DIM not in target.space.to_dict()
    assert not target.plans[0].graph_launch
    assert "_kw_graphed" not in target.render(target.space.defaults())


def test_with_the_setting_on_the_fill_switches_the_graph_on_and_forward_dispatches_to_it(tmp_path: Path) -> None:
    target = _target(_problem(tmp_path), graphs=True)
    assert target.plans[0].graph_launch and target.space.to_dict()[GRAPH_DIM] == {"choices": [0, 1], "default": 0}
    defaults = target.space.defaults()
    switched = target.space.switched_on(defaults)
    assert switched is not None and switched[GRAPH_DIM] == 1
    plain, graphed = target.render(defaults), target.render(switched)
    assert "_kw_graphed" not in plain
    ast.parse(graphed)
    assert "return self._kw_graphed(0, self._kw_forward_0, (x, ))" in graphed
    assert graphed.count("def _kw_graphed(") == 1 and "self._kw_graphs = {}" in graphed
    # the plain forward is the same code in both: the graph only wraps it
    body = plain[plain.index("    def _kw_forward_0"):]
    assert body.split("\n\n")[0] in graphed


def test_a_graph_is_not_offered_where_a_capture_could_not_hold_the_forward(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _target(_problem(tmp_path), graphs=True).plans[0]
    assert graph_offered(plan)
    # a non-tensor argument would be fixed into the graph
    assert not _target(_problem(tmp_path, "scaled", scalar_argument=True), graphs=True).plans[0].graph_launch
    # a Python constant output is copied from the host on every call, which a capture forbids
    assert not graph_offered(replace(plan, outputs=(Const(1.0, "float32"),)))
    # so is an attribute moved to the device per call
    first = next(iter(plan.buffers))
    attribute = {**plan.buffers, first: replace(plan.buffers[first], origin="attribute")}
    assert not graph_offered(replace(plan, buffers=attribute))
    # inputs past the limit: the call is not launch-bound
    monkeypatch.setattr(graph_launch, "GRAPH_MAX_INPUT_BYTES", 8 * 64 * 4 - 1)
    assert not graph_offered(plan)


class _FakeGraph:
    """torch.cuda.CUDAGraph's part the method uses: capture records the forward, replay runs it again."""

    def __init__(self, log: list[str], fail: bool) -> None:
        self.log, self.fail, self.work = log, fail, None

    def replay(self) -> None:
        self.log.append("replay")
        assert self.work is not None
        self.work()


class _FakeCapture:
    def __init__(self, graph: _FakeGraph, capture_error_mode: str) -> None:
        assert capture_error_mode == "thread_local"  # other threads' CUDA calls must not break the capture
        self.graph = graph

    def __enter__(self) -> None:
        self.graph.log.append("capture")
        if self.graph.fail:
            raise RuntimeError("operation not permitted when stream is capturing")

    def __exit__(self, *exc: object) -> None:
        return None


def _graphed_module(fail_capture: bool, profiling: list[bool] | None = None) -> tuple[Any, list[str]]:
    """GRAPH_METHOD in a module whose forward doubles its input, with torch.cuda's graph replaced by a recorder
    that runs the captured forward again on replay, and tensors that claim to be on CUDA."""
    log: list[str] = []

    class Cuda(torch.Tensor):
        is_cuda = True  # type: ignore[assignment]

    captured: dict[str, Any] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        log.append("forward")
        out = x * 2
        captured["run"] = lambda: captured["out"].copy_(captured["input"] * 2)
        captured["input"], captured["out"] = x, out
        return out

    def make_graph() -> _FakeGraph:
        graph = _FakeGraph(log, fail_capture)
        captured["graph"] = graph
        return graph

    def capture(graph: _FakeGraph, capture_error_mode: str) -> _FakeCapture:
        class Recording(_FakeCapture):
            def __exit__(self, *exc: object) -> None:
                graph.work = captured["run"]

        return Recording(graph, capture_error_mode)

    def device(where: torch.device) -> contextlib.AbstractContextManager[None]:
        log.append(f"on {where}")
        return contextlib.nullcontext()

    profiler = SimpleNamespace(_profiler_enabled=lambda: bool(profiling and profiling[0]))
    fake_torch = SimpleNamespace(**{name: getattr(torch, name) for name in ("no_grad", "inference_mode", "Tensor")},
                                 cuda=SimpleNamespace(CUDAGraph=make_graph, graph=capture, device=device),
                                 _C=SimpleNamespace(_autograd=profiler))
    namespace: dict[str, Any] = {"torch": fake_torch}
    exec("class Graphed:\n" + GRAPH_METHOD, namespace)  # noqa: S102 (the generated method itself is under test)
    module = namespace["Graphed"]()
    module._kw_graphs = {}
    module.forward = forward
    module.to_cuda = lambda t: t.as_subclass(Cuda)
    return module, log


def test_the_graph_method_replays_on_copies_of_each_calls_inputs_and_returns_copies_of_its_outputs() -> None:
    module, log = _graphed_module(fail_capture=False)
    first, second, third = (module.to_cuda(torch.full((4,), float(v))) for v in (1, 5, 7))
    out1 = module._kw_graphed(0, module.forward, (first,))
    assert torch.equal(out1, torch.full((4,), 2.0)) and log == ["forward", "on cpu", "capture", "forward"]
    out2 = module._kw_graphed(0, module.forward, (second,))
    out3 = module._kw_graphed(0, module.forward, (third,))
    assert log[-4:] == ["on cpu", "replay", "on cpu", "replay"]  # no plain forward after the capture; on the inputs' device
    assert torch.equal(out2, torch.full((4,), 10.0)) and torch.equal(out3, torch.full((4,), 14.0))
    # each call's output is its own: the next replay did not overwrite it, and the inputs were not touched
    assert torch.equal(out2, torch.full((4,), 10.0)) and torch.equal(second, torch.full((4,), 5.0))


def test_a_failed_capture_leaves_the_shape_on_plain_launches_and_cpu_tensors_never_capture() -> None:
    module, log = _graphed_module(fail_capture=True)
    x = module.to_cuda(torch.ones(3))
    assert torch.equal(module._kw_graphed(0, module.forward, (x,)), torch.full((3,), 2.0))
    assert torch.equal(module._kw_graphed(0, module.forward, (x * 3,)), torch.full((3,), 6.0))
    assert log == ["forward", "on cpu", "capture", "forward"]  # the capture failed once; then plain launches
    module, log = _graphed_module(fail_capture=False)
    assert torch.equal(module._kw_graphed(0, module.forward, (torch.ones(2),)), torch.full((2,), 2.0))
    assert log == ["forward"]

    class Elsewhere(torch.Tensor):  # claims a second GPU
        is_cuda = True  # type: ignore[assignment]
        device = torch.device("cuda", 1)  # type: ignore[assignment]

    module, log = _graphed_module(fail_capture=False)
    mixed = (module.to_cuda(torch.ones(2)), torch.ones(2).as_subclass(Elsewhere))
    module._kw_graphed(0, lambda a, b: log.append("forward"), mixed)
    assert log == ["forward"]  # inputs on two devices: no graph


def test_calls_under_a_profiler_run_plainly_and_the_first_call_outside_one_captures() -> None:
    profiling = [True]
    module, log = _graphed_module(fail_capture=False, profiling=profiling)
    for v in (1.0, 2.0):
        assert torch.equal(module._kw_graphed(0, module.forward, (module.to_cuda(torch.full((2,), v)),)),
                           torch.full((2,), 2 * v))
    assert log == ["forward", "forward"] and module._kw_graphs == {}  # traced calls: plain launches, no capture
    profiling[0] = False
    module._kw_graphed(0, module.forward, (module.to_cuda(torch.ones(2)),))
    assert log[2:] == ["forward", "on cpu", "capture", "forward"]


RESNET18 = KERNELBENCH / "level3" / "9_ResNet18.py"


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_a_graphed_network_and_times_it_beside_plain_launches(tmp_path: Path,
                                                                                  build_cache: Path) -> None:
    if not RESNET18.exists():
        pytest.skip(f"KernelBench is not at {KERNELBENCH} (KERNELBENCH_DIR names a copy)")
    target = tuning_target(trace_all(RESNET18), "fused", graphs=True, allow_tf32=False)
    assert target is not None and target.plans[0].graph_launch
    defaults = target.space.defaults()
    sources = {"plain": target.render(defaults), "GRAPH": target.render({**defaults, GRAPH_DIM: 1})}
    failed = harness_failures(RESNET18, sources, tmp_path, build_cache)
    assert not failed, failed

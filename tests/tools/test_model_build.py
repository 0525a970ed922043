"""Where a problem's Model is built: small ones on the host as KernelBench does, large ones where they run, and
the functional form of a Model larger than the harness's host-memory limit traced without its weights."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import torch

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.problem.model_build import LARGE_WEIGHTS_BYTES, build_model, weight_bytes, weight_place
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.large_model import wide_linear_problem


class _Linear(torch.nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.fc = torch.nn.Linear(n_in, n_out)
        self.register_buffer("scale", torch.ones(n_out))


class _NeedsValues(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.k = int(torch.ones(1).item())  # a real value: cannot run on the meta device


def test_weight_bytes_count_parameters_and_buffers_without_allocating_them() -> None:
    n_in, n_out = 1 << 15, 1 << 16  # 8 GiB of fp32 weights: only a meta build can count them here
    assert weight_bytes(_Linear, [n_in, n_out]) == 4 * (n_in * n_out + n_out + n_out)
    assert weight_bytes(_NeedsValues, []) is None


@pytest.mark.parametrize(("n_bytes", "device", "place"), [
    (LARGE_WEIGHTS_BYTES + 1, torch.device("cuda", 0), "device"),
    (LARGE_WEIGHTS_BYTES, torch.device("cuda", 0), "host"),
    (None, torch.device("cuda", 0), "host"),  # size unknown: as KernelBench builds it
    (LARGE_WEIGHTS_BYTES + 1, torch.device("cpu"), "host"),  # the CPU self-test mode runs on the host anyway
    (LARGE_WEIGHTS_BYTES + 1, None, "host"),
])
def test_large_models_are_built_where_they_run(n_bytes: int | None, device: torch.device | None, place: str) -> None:
    assert weight_place(n_bytes, device) == place


def test_host_and_device_builds_under_one_seed_give_one_set_of_weights_per_place(tmp_path: Path) -> None:
    source = check_source(wide_linear_problem(tmp_path, 8, 4), "problem")
    cpu = torch.device("cpu")
    first = build_model(_Linear, [8, 4], source, "Model", seed=42, device=cpu, place="device")
    again = build_model(_Linear, [8, 4], source, "Model", seed=42, device=cpu, place="device")
    assert torch.equal(first.fc.weight, again.fc.weight) and not first.training


def test_an_uninitialised_build_of_4_gib_costs_no_memory(tmp_path: Path) -> None:
    source = check_source(wide_linear_problem(tmp_path, 1 << 15, 1 << 15), "problem")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = build_model(_Linear, [1 << 15, 1 << 15], source, "Model", seed=42, device=torch.device("cpu"),
                        place="uninitialised")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert tuple(model.fc.weight.shape) == (1 << 15, 1 << 15) and model.fc.weight.device.type == "cpu"
    assert grown_kib < 256 * 1024, f"peak RSS grew {grown_kib / 1024:.0f} MiB"


@pytest.mark.timeout(300)
def test_the_functional_form_of_a_model_over_the_host_memory_limit_is_traced(tmp_path: Path,
                                                                              build_cache: Path) -> None:
    # 3.2 GB of weights, a 2 GiB limit on the workers: built on the host, the reference worker would be stopped
    problem = wide_linear_problem(tmp_path, 1 << 14, 3 << 14)
    settings = EvalSettings(load_timeout_s=120.0, host_memory_limit_gb=2.0)
    options = WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache), "CUDA_VISIBLE_DEVICES": ""})
    with Evaluator(problem, settings, options) as ev:
        form = ev.functional_form()
    assert form["traced"] and form["op_counts"] == {"aten.linear.default": 1, "aten.relu.default": 1,
                                                    "aten.mul.Tensor": 1}, form
    assert form["args"][0]["spec"]["shape"] == [3 << 14, 1 << 14]

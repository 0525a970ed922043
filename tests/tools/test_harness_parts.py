"""Parts of the harness that need no GPU: fingerprints, chunked comparison, tensor sharing as bytes, the
unseen-size search, precision profiles, and the windows the timing perturbation swaps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import kernelwright.tools.verify.compare as compare
from kernelwright.tools.problem.files import check_source, import_file
from kernelwright.tools.problem.inputs import InputSpec, Perturber, input_shapes, refill
from kernelwright.tools.problem.shape_scaling import rescaled_module, scaled_override
from kernelwright.tools.sandbox.tensor_share import open_shared, share_tensor
from kernelwright.tools.verify.compare import Tolerance, compare_output
from kernelwright.tools.verify.fingerprint import fingerprint
from kernelwright.tools.verify.precision import STRICT_FLAGS, FlagSwitch, precision_profile
from support.paths import KERNELBENCH

TOL = Tolerance(1e-4, 1e-4, 1e-3)


def test_fingerprint_sees_any_single_change_and_swaps() -> None:
    x = torch.randn(1000)
    base = fingerprint(x)
    assert fingerprint(x.clone()) == base
    y = x.clone()
    y[517] = torch.nextafter(y[517], torch.tensor(float("inf")))  # one ulp
    assert fingerprint(y) != base
    z = x.clone()
    z[[3, 4]] = z[[4, 3]]  # same values, other places
    assert fingerprint(z) != base
    assert fingerprint(x.reshape(10, 100)) != base  # shape is part of it
    assert fingerprint(torch.ones(3, dtype=torch.bool)) != fingerprint(torch.zeros(3, dtype=torch.bool))


def test_chunked_comparison_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    ref = torch.randn(64, 33)
    out = ref.clone()
    out[40, 7] += 1.0
    out[50, 1] += 2.0
    whole = compare_output(0, out, ref, TOL)
    monkeypatch.setattr(compare, "CHUNK_ELEMENTS", 100)
    chunked = compare_output(0, out, ref, TOL)
    assert chunked.first_bad_index == whole.first_bad_index == (40, 7)
    assert chunked.mismatch_fraction == whole.mismatch_fraction == pytest.approx(2 / out.numel())
    assert chunked.max_abs_err == pytest.approx(whole.max_abs_err)
    assert chunked.rel_l2 == pytest.approx(whole.rel_l2, rel=1e-5)
    assert not compare_output(0, ref.t(), ref.t().contiguous(), TOL).failure  # non-contiguous output


def test_cpu_tensors_travel_as_bytes_and_come_back_equal() -> None:
    blobs: list = []
    t = torch.randn(5, 7)[:, 1:4]  # a strided view
    meta = share_tensor(t, blobs)
    assert meta["kind"] == "bytes"
    assert torch.equal(open_shared(meta, blobs), t)


def test_perturbation_moves_values_without_the_version_counter() -> None:
    x = torch.arange(1000.0)
    version, before = x._version, x.clone()
    Perturber(7)([x])
    assert x._version == version
    assert not torch.equal(x, before) and torch.equal(x.sort().values, before)  # a permutation: same values
    refill([x], [torch.zeros(1000)])
    assert x._version == version and not x.any()


def test_input_shapes_allocate_nothing() -> None:
    shapes = input_shapes(lambda: [torch.randn(4096, 393216), 3])  # 6 GB if it were real
    assert shapes[0] == {"type": "tensor", "dtype": "float32", "shape": [4096, 393216], "bytes": 4096 * 393216 * 4}
    assert shapes[1]["type"] == "int"


def test_unseen_size_halves_a_batch_constant_through_derived_ones(tmp_path: Path) -> None:
    path = tmp_path / "p.py"
    path.write_text(
        "import torch\nimport torch.nn as nn\n\nclass Model(nn.Module):\n"
        "    '''batch_size in a docstring does not count'''\n"
        "    def __init__(self, features):\n        super().__init__()\n        self.lin = nn.Linear(features, 8)\n"
        "    def forward(self, x):\n        return self.lin(x)\n\n"
        "batch_size = 16\nfeatures = 32\nshape = (batch_size, features)\n\n"
        "def get_inputs():\n    return [torch.randn(shape)]\n\ndef get_init_inputs():\n    return [features]\n")
    source = check_source(path, "problem")
    module = import_file(source, "kw_test_scaling")
    assert scaled_override(source.text, str(path), module) == ("batch_size", 8)  # features changes the model
    other = rescaled_module(source.text, str(path), [("batch_size", 8)])
    assert other.get_inputs()[0].shape == (8, 32)
    spec = InputSpec(3, overrides=(("batch_size", 8),))
    assert InputSpec.from_dict(spec.to_dict()) == spec and "batch_size=8" in spec.describe()


@pytest.mark.skipif(not KERNELBENCH.is_dir(), reason="the KernelBench dev split is not beside this checkout")
def test_most_kernelbench_problems_get_an_unseen_size() -> None:
    found = total = 0
    for path in sorted(KERNELBENCH.glob("level[12]/*.py")):
        source = check_source(path, "problem")
        module = import_file(source, f"kw_kb_{source.sha256[:10]}")
        total += 1
        found += scaled_override(source.text, str(path), module) is not None
    assert total == 160 and found >= 150, (found, total)


def test_precision_profiles_and_flag_switch() -> None:
    strict, kb = precision_profile("strict"), precision_profile("kernelbench")
    assert strict.reference_flags == "strict" and strict.tolerances["float32"].atol == 1e-4
    assert kb.reference_flags == "default" and kb.tolerances["float32"].atol == kb.tolerances["float32"].rtol == 1e-2
    assert "Precision profile: kernelbench" in kb.label()
    assert kb.allows_tf32 and not strict.allows_tf32  # plain TF32 math only where the tolerance admits it
    with pytest.raises(ValueError, match="strict, kernelbench"):
        precision_profile("loose")
    switch = FlagSwitch()
    defaults = switch.defaults
    with switch.using("strict") as flags:
        assert flags == STRICT_FLAGS and not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.allow_tf32 == defaults.cudnn_tf32

"""Pure convolution problems get candidates whose conv is the candidate's own CUTLASS implicit-GEMM kernel, when
RunSettings.offline_preview is on (the default); off, they get exactly what they got before (cuDNN)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernelwright.agents.offline.codegen_gemm import MATH, STAGE_CHOICES
from kernelwright.agents.offline.conv_plan import ConvLaunch, conv_launch, conv_plan
from kernelwright.agents.offline.ir import ConvStep, HostStep
from kernelwright.agents.offline.planner import build_plan
from kernelwright.agents.offline.propose import OfflineUnsupported, plans_for, propose, trace_all
from kernelwright.agents.offline.trace import trace_problem
from support.conv import assert_interpreted_like_the_model, fixture_conv_problems, one_layer_problem, propose_conv
from support.gemm import traced_forward

FIXTURES = {p.stem: p for p in fixture_conv_problems()}


def test_the_fixtures_cover_each_kind_of_conv() -> None:
    assert set(FIXTURES) >= {"conv2d_bias", "conv3d_fp32", "conv1d_dilated", "conv2d_bf16_dilated",
                             "conv_transpose2d_strided", "conv_transpose3d_dilated", "conv3d_c3", "conv2d_c3_bf16",
                             "conv2d_grouped_bf16", "conv_transpose2d_grouped_strided_dilated",
                             "conv_transpose3d_grouped", "conv_transpose3d_strided_dilated",
                             "conv_transpose1d_strided_dilated"}


@pytest.mark.parametrize("problem", fixture_conv_problems(), ids=lambda p: p.stem)
def test_the_conv_plan_agrees_with_the_model(problem: Path) -> None:
    """The interpreter computes the ConvStep from conv_launch's numbers (sizes, roles, padding, stride, dilation,
    bias): a wrong one is a mismatch with the Model."""
    (traced,) = trace_all(problem)
    (plan,) = plans_for([traced], preview=True)["fused"]
    (step,) = plan.steps
    assert isinstance(step, ConvStep)
    assert_interpreted_like_the_model(plan, traced)


@pytest.mark.parametrize("problem", fixture_conv_problems(), ids=lambda p: p.stem)
def test_conv_candidates_launch_their_own_kernel_and_no_torch_conv(problem: Path) -> None:
    (cand,) = propose_conv(problem)
    forward = traced_forward(cand.source)
    assert "torch.ops.aten.conv" not in forward and "torch.nn.functional" not in forward
    assert re.search(r"_kw_lib\.kw_conv[23]d_(fprop|dgrad)_\w+\(", forward), forward
    assert "headers=('cutlass',)" in cand.source
    assert cand.kept_aten_ops == ()
    # a transposed conv is a data gradient, unless stride and dilation are both above 1 (a zero-inserted fprop)
    dgrad = "transpose" in problem.stem and "strided_dilated" not in problem.stem
    assert ("dgrad" in forward) == dgrad
    assert ("kw_conv3d_" in forward) == ("3d" in problem.stem)


def test_the_bias_joins_the_conv_launcher_output_copy_and_is_passed_to_the_kernel() -> None:
    (cand,) = propose_conv(FIXTURES["conv2d_bias"])
    forward = traced_forward(cand.source)
    call = re.search(r"_kw_lib\.(kw_conv\w+)\((.*)\)", forward)
    assert call is not None
    args = [a.strip() for a in call.group(2).split(",")]
    assert args[2] != args[1]  # the bias buffer, not the weight standing in for none
    assert args[4 + 22 - 1] == "1"  # has_bias
    assert forward.count("_kw_lib.") == 1  # no separate bias kernel


def test_a_1d_conv_runs_as_a_2d_one_with_unit_height() -> None:
    (traced,) = trace_all(FIXTURES["conv1d_dilated"])
    (plan,) = plans_for([traced], preview=True)["fused"]
    launch = conv_launch(plan.steps[0], plan.buffers)  # type: ignore[arg-type]
    assert launch.dims == 2 and launch.dhw[:2] == (1, 1) and launch.trs[:2] == (1, 1) and launch.zpq[:2] == (1, 1)
    assert launch.stride == (1, 1, 3) and launch.dilation == (1, 1, 2) and launch.pad == (0, 0, 2)


def test_a_transposed_conv_is_the_data_gradient_of_the_conv_it_inverts() -> None:
    (traced,) = trace_all(FIXTURES["conv_transpose2d_strided"])
    (plan,) = plans_for([traced], preview=True)["fused"]
    launch = conv_launch(plan.steps[0], plan.buffers)  # type: ignore[arg-type]
    # input (4, 32, 30, 26), weight (32, 48, 3, 4), stride 2, padding 1, output_padding 1 -> (4, 48, 60, 53)
    assert launch.operator == "dgrad" and (launch.k, launch.c) == (32, 48)
    assert launch.zpq[1:] == (30, 26) and launch.dhw[1:] == (60, 53) and launch.stride_support == "strided"


def _launch_of(name: str) -> ConvLaunch:
    (traced,) = trace_all(FIXTURES[name])
    (plan,) = plans_for([traced], preview=True)["fused"]
    return conv_launch(plan.steps[0], plan.buffers)  # type: ignore[arg-type]


def test_channels_the_operand_copies_cannot_align_are_padded_with_zeros() -> None:
    launch = _launch_of("conv3d_c3")  # 3-D fp32: whole 16-byte vectors, 4 channels
    assert (launch.c, launch.c_used, launch.k, launch.k_used) == (4, 3, 16, 16)
    assert launch.align_a == launch.align_b == 4 and launch.fits_a_kernel
    bf16 = _launch_of("conv2d_c3_bf16")  # 2-D bf16: 4-byte copies, an even count
    assert (bf16.c, bf16.c_used, bf16.align_a) == (4, 3, 4)
    fp32_2d = _launch_of("conv2d_bias")  # already aligned: nothing padded
    assert (fp32_2d.c, fp32_2d.c_used, fp32_2d.k, fp32_2d.k_used) == (32, 32, 64, 64)


def test_a_grouped_conv_is_one_implicit_gemm_per_group_with_its_channels_per_group() -> None:
    launch = _launch_of("conv2d_grouped_bf16")  # 12 -> 32 channels in 4 groups: 3 (padded to 4) -> 8 a group
    assert (launch.groups, launch.c, launch.c_used, launch.k, launch.k_used) == (4, 4, 3, 8, 8)
    assert launch.filter_numel == 4 * 8 * 4 * 9
    t3 = _launch_of("conv_transpose3d_grouped")  # 32 -> 32 in 4 groups: a strided dgrad per group of 8 -> 8
    assert t3.operator == "dgrad" and (t3.groups, t3.k, t3.c) == (4, 8, 8) and t3.stride == (2, 2, 2)


def test_a_strided_dilated_transposed_conv_is_a_conv_over_its_zero_inserted_input() -> None:
    launch = _launch_of("conv_transpose3d_strided_dilated")  # (2, 16, 5, 6, 7), k 3, stride 2, padding 1, dilation 2
    assert launch.operator == "fprop" and launch.flip and launch.zero_insert == (2, 2, 2)
    assert launch.src == (5, 6, 7) and launch.dhw == (9, 11, 13)  # (n - 1) * stride + 1
    assert launch.stride == (1, 1, 1) and launch.dilation == (2, 2, 2) and launch.pad == (3, 3, 3)  # 2 * 2 - 1
    assert launch.zpq == (11, 13, 15) and (launch.c, launch.k) == (16, 32)
    one = _launch_of("conv_transpose1d_strided_dilated")  # output_padding 1: the output size, one longer
    assert one.dims == 2 and one.dhw == (1, 1, 599) and one.zpq == (1, 1, 602) and one.pad == (0, 0, 3)
    grouped = _launch_of("conv_transpose2d_grouped_strided_dilated")
    assert grouped.groups == 4 and grouped.zero_insert == (1, 2, 3) and grouped.pad == (0, 3, 2)


@pytest.mark.parametrize("problem", fixture_conv_problems(), ids=lambda p: p.stem)
def test_the_launcher_spec_matches_its_arguments_and_the_c_signature(problem: Path) -> None:
    (cand,) = propose_conv(problem)
    forward = traced_forward(cand.source)
    call = re.search(r"_kw_lib\.(kw_conv\w+)\((.*)\)", forward)
    assert call is not None
    spec = re.search(rf"'{call.group(1)}': '([^']*)'", cand.source)
    assert spec is not None, cand.source[:2000]
    kinds = [k.strip() for k in spec.group(1).split(",")]
    args = [a.strip() for a in call.group(2).split(",")]
    signature = re.search(rf'extern "C" int {call.group(1)}\((.*?)\)\s*{{', cand.source, re.S)
    assert signature is not None
    params = [p for p in signature.group(1).split(",") if "cudaStream_t" not in p]
    assert len(kinds) == len(args) == len(params)


def test_the_tuners_space_has_tiles_and_stages() -> None:
    (cand,) = propose_conv(FIXTURES["conv2d_bf16_dilated"])
    dims = {d.name: d for d in cand.space.dims}
    assert dims["h0.TILE"].choices == MATH["bfloat16"].tiles and dims["h0.STAGES"].choices == STAGE_CHOICES
    (other,) = propose_conv(FIXTURES["conv2d_bf16_dilated"], params={"h0.TILE": MATH["bfloat16"].tiles[3]})
    assert other.source != cand.source and MATH["bfloat16"].tiles[3].split("_")[0] in other.source


def test_where_the_profile_admits_tf32_an_fp32_conv_runs_plain_tf32_and_may_ask_for_the_split() -> None:
    from support.offline import cuda_of

    split, plain = "cutlass::arch::OpMultiplyAddFastF32", "cutlass::arch::OpMultiplyAdd,"
    (strict,) = propose_conv(FIXTURES["conv3d_fp32"])
    assert split in cuda_of(strict.source) and "tf32" not in cuda_of(strict.source)
    assert not [d for d in strict.space.dims if d.name.endswith(".MATH")]
    (tf32,) = propose_conv(FIXTURES["conv3d_fp32"], allow_tf32=True)
    assert {d.name: (d.choices, d.default) for d in tf32.space.dims}["h0.MATH"] == (("tf32", "f32x3"), "tf32")
    assert plain in cuda_of(tf32.source) and split not in cuda_of(tf32.source) and "_tf32_" in cuda_of(tf32.source)
    (asked,) = propose_conv(FIXTURES["conv3d_fp32"], params={"h0.MATH": "f32x3"}, allow_tf32=True)
    assert cuda_of(asked.source) == cuda_of(strict.source)
    (bf16,) = propose_conv(FIXTURES["conv2d_bf16_dilated"], allow_tf32=True)  # only fp32 has the choice
    assert not [d for d in bf16.space.dims if d.name.endswith(".MATH")]


def test_with_the_preview_off_a_conv_without_bias_gets_no_candidate_as_before() -> None:
    with pytest.raises(OfflineUnsupported, match="nothing to generate: every op is a library call") as info:
        propose(FIXTURES["conv3d_fp32"], preview=False)
    assert info.value.ops == ("aten.conv3d.default",)


def test_with_the_preview_off_a_conv_with_bias_keeps_cudnn_and_adds_a_bias_kernel() -> None:
    cands = propose(FIXTURES["conv2d_bias"], preview=False)
    assert cands
    for cand in cands:
        forward = traced_forward(cand.source)
        assert "torch.ops.aten.conv2d.default(" in forward and "kw_conv" not in cand.source


def _plan_of(path: Path) -> object:
    traced = trace_problem(path)
    return build_plan(traced.program, preview=False)  # every conv a library call, for conv_plan to take or leave


@pytest.mark.parametrize(("layer", "expr", "shape", "why"), [
    ("nn.Conv2d(16, 16, 3, groups=4)", "self.conv(x)", "2, 16, 12, 12", "grouped: fine"),
    ("nn.Conv2d(16, 16, 3, groups=16)", "self.conv(x)", "2, 16, 12, 12", "depthwise"),
    ("nn.ConvTranspose2d(16, 16, 3, groups=16)", "self.conv(x)", "2, 16, 12, 12", "depthwise transposed"),
    ("nn.Conv2d(16, 32, 3)", "torch.relu(self.conv(x))", "2, 16, 12, 12", "a conv in a chain (level 2)"),
    ("nn.ConvTranspose2d(16, 32, 3, stride=2, dilation=2)", "self.conv(x)", "2, 16, 12, 12",
     "strided and dilated transposed: fine"),
    ("nn.ConvTranspose2d(16, 32, 3, stride=2, dilation=2, padding=5)", "self.conv(x)", "2, 16, 12, 12",
     "strided and dilated transposed with padding over dilation * (kernel - 1): a negative conv padding"),
    ("nn.Conv2d(3, 32, 3)", "self.conv(x)", "2, 3, 12, 12", "3 fp32 channels: fine in 2-D"),
    ("nn.Conv3d(3, 32, 3)", "self.conv(x)", "2, 3, 8, 8, 8", "3 channels in 3-D: padded, fine"),
])
def test_what_keeps_its_library_conv(layer: str, expr: str, shape: str, why: str, tmp_path: Path) -> None:
    plan = _plan_of(one_layer_problem(tmp_path / "problem.py", layer, shape, expr=expr))
    result = conv_plan(plan)  # type: ignore[arg-type]
    if "fine" in why:
        assert result is not None and isinstance(result.steps[0], ConvStep)
    else:
        assert result is None, why
        assert any(isinstance(s, HostStep) and "conv" in s.target for s in plan.steps)  # type: ignore[attr-defined]


def test_the_setting_is_on_by_default_and_reachable_from_the_config_file_and_the_environment(tmp_path: Path) -> None:
    """On since every family behind it passed on an H100 (session 15); off stays reachable."""
    from kernelwright.agents.context import RunSettings
    from kernelwright.config import load_config

    assert RunSettings().offline_preview is True
    assert load_config(env={}).run_settings().offline_preview is True
    path = tmp_path / "kernelwright.toml"
    path.write_text("[agents]\noffline_preview = false\n")
    assert load_config(path, env={}).run_settings().offline_preview is False
    assert load_config(env={"KERNELWRIGHT_AGENTS__OFFLINE_PREVIEW": "0"}).run_settings().offline_preview is False


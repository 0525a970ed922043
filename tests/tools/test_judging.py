"""The judging rules, on plain CPU tensors and recorded traces: each rule can fail."""

from __future__ import annotations

import socket
import threading

import pytest
import torch

from kernelwright.tools.sandbox.protocol import recv_message, send_message
from kernelwright.tools.sandbox.tensor_wire import decode_tensor, encode_tensor
from kernelwright.tools.verify.compare import Tolerance, compare_output, outputs_close, outputs_identical
from kernelwright.tools.verify.gpu_memory import POISON_BYTE
from kernelwright.tools.verify.integrity import check_mutation, check_traces, kernel_times, kernel_usage
from kernelwright.tools.verify.kernel_trace import CallTrace, GpuActivity, _parse_events, base_name, classify

TOL = Tolerance(1e-4, 1e-4, 1e-3)


def test_exact_output_passes_and_reports_zero_error() -> None:
    ref = torch.randn(64, 64)
    result = compare_output(0, ref.clone(), ref, TOL)
    assert result.passed and result.max_abs_err == 0.0 and result.mismatch_fraction == 0.0


def test_wrong_output_reports_first_bad_index_and_fraction() -> None:
    ref = torch.randn(8, 8)
    out = ref.clone()
    out[3, 5] += 1.0
    result = compare_output(0, out, ref, TOL)
    assert not result.passed and result.failure == "wrong_output"
    assert result.first_bad_index == (3, 5) and result.mismatch_fraction == pytest.approx(1 / 64)


def test_poisoned_elements_are_named_unwritten() -> None:
    ref = torch.randn(4, 4)
    out = ref.clone()
    out.view(-1)[8:].view(torch.uint8).fill_(POISON_BYTE)
    result = compare_output(0, out, ref, TOL)
    assert result.failure == "unwritten_output" and "8 of 16" in result.message


def test_nan_never_passes() -> None:
    ref = torch.randn(16)
    out = ref.clone()
    out[2] = float("nan")
    assert compare_output(0, out, ref, TOL).failure == "nan_output"


def test_zero_output_on_near_zero_reference_fails_the_relative_check() -> None:
    ref = torch.randn(1000) * 1e-6
    result = compare_output(0, torch.zeros(1000), ref, TOL)
    assert not result.passed and result.failure == "degenerate_output"
    assert compare_output(0, torch.zeros(1000), ref, TOL, check_rel_l2=False).passed  # what plain allclose would do


def test_shape_and_dtype_mismatch() -> None:
    ref = torch.randn(4, 4)
    assert compare_output(0, torch.randn(16), ref, TOL).failure == "shape_mismatch"
    assert compare_output(0, ref.double(), ref, TOL).failure == "dtype_mismatch"


def test_identity_and_closeness_helpers() -> None:
    a = [torch.randn(10)]
    assert outputs_identical(a, [a[0].clone()]) and not outputs_identical(a, [a[0] + 1e-7])
    assert outputs_close(a, [a[0] + 1e-7]) and not outputs_close(a, [a[0] + 1.0])


def test_tensor_wire_round_trip_all_dtypes() -> None:
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.int64, torch.bool, torch.uint8):
        t = (torch.randn(3, 5) * 10).to(dtype)
        meta, raw = encode_tensor(t)
        back = decode_tensor(meta, raw)
        assert back.dtype == dtype and torch.equal(back, t)
    meta, raw = encode_tensor(torch.empty(0, 3))
    assert decode_tensor(meta, raw).shape == (0, 3)


def test_protocol_frames_carry_json_and_blobs() -> None:
    a, b = socket.socketpair()
    sender = threading.Thread(target=send_message, args=(a, {"op": "x", "n": [1, 2]}, [b"abc", b"", bytes(range(256)) * 1000]))
    sender.start()
    msg = recv_message(b, timeout_s=5)
    sender.join()
    assert msg.header == {"op": "x", "n": [1, 2]} and msg.blobs[0] == b"abc" and len(msg.blobs[2]) == 256000
    with pytest.raises(TimeoutError):
        recv_message(b, timeout_s=0.05)
    a.close()
    b.close()


def _trace(*kernels: tuple[str, float, float], marker: float = 100.0, copies: tuple = ()) -> CallTrace:
    acts = [GpuActivity("kernel", n, 7, s, e) for n, s, e in kernels]
    acts += [GpuActivity("memcpy", "Memcpy DtoH", 7, 0, 1, b, "DtoH") for b in copies]
    return CallTrace(tuple(acts), marker)


REF = [_trace(("void at::native::softmax_warp_forward<float>(float*)", 0, 50))]


def test_trace_policies_each_fire() -> None:
    custom = {"my_kernel"}
    ok = _trace(("void my_kernel(float*)", 0, 40))
    assert check_traces([ok], REF, custom) == []
    assert check_traces([_trace()], REF, custom)[0].reason == "no_kernel_launched"
    assert check_traces([_trace(("void my_kernel(float*)", 0, 40), copies=(1 << 20,))], REF, custom)[0].reason == "host_computation"
    assert check_traces([REF[0]], REF, custom)[0].reason == "reference_op_called"
    assert check_traces([_trace(("void other::thing(float*)", 0, 40))], REF, custom)[0].reason == "no_custom_kernel"
    mostly_ref = _trace(("void my_kernel(float*)", 0, 1), ("void at::native::softmax_warp_forward<float>(float*)", 1, 50))
    assert check_traces([mostly_ref], REF, custom)[0].reason == "reference_op_called"
    escaped = _trace(("void my_kernel(float*)", 0, 400), marker=10.0)
    assert check_traces([escaped], REF, custom)[0].reason == "side_stream_escape"
    with_gemm = _trace(("void my_kernel(float*)", 0, 10), ("sm90_xmma_gemm_f32f32_tn", 10, 90))
    assert check_traces([with_gemm], REF, custom) == []


def test_a_candidate_that_keeps_every_launch_of_the_reference_replaced_nothing() -> None:
    gemm, relu = "sm90_xmma_gemm_f32f32_tn_cublas", "void at::native::vectorized_elementwise_kernel<4, relu>(int)"
    ref = [_trace((gemm, 0, 90))]
    token = _trace((gemm, 0, 90), ("void my_kernel(float*)", 90, 91))  # the reference's GEMM and a token kernel
    assert check_traces([token], ref, {"my_kernel"})[0].reason == "reference_op_called"
    own_gemm = _trace(("void my_kernel(float*)", 0, 80))
    assert check_traces([own_gemm], ref, {"my_kernel"}) == []
    # the reference's GEMM kept, its elementwise launches fused into the candidate's own kernel: work replaced
    ref2 = [_trace((gemm, 0, 80), (relu, 80, 90), (gemm, 90, 170), (relu, 170, 180))]
    partial = _trace((gemm, 0, 80), ("void my_kernel(float*)", 80, 85), (gemm, 85, 165), (relu, 165, 175), marker=200.0)
    assert check_traces([partial], ref2, {"my_kernel"}) == []  # one of two ReLU launches fused: counts, not names
    everything = _trace((gemm, 0, 80), (relu, 80, 90), (gemm, 90, 170), (relu, 170, 180), ("void my_kernel(float*)", 180, 181),
                        marker=200.0)
    assert check_traces([everything], ref2, {"my_kernel"})[0].reason == "reference_op_called"


def test_kernel_usage_breaks_gpu_time_down_per_kernel_with_launch_counts() -> None:
    gemm = "sm90_xmma_gemm_f32f32_tn"
    fill = "void at::native::vectorized_elementwise_kernel<4, FillFunctor<float>>(int)"
    trace = _trace(("void my_kernel(float*)", 0, 10), (gemm, 10, 70), (gemm, 70, 90), (fill, 90, 100))
    usage = kernel_usage(trace, {"my_kernel"}, set())
    by_name = {k.name: k for k in usage.kernels}
    assert [k.name for k in usage.kernels] == [gemm, "void my_kernel(float*)", fill]  # longest first
    assert (by_name[gemm].cls, by_name[gemm].total_us, by_name[gemm].calls) == ("library", 80.0, 2)
    assert by_name[gemm].share == 0.8 and by_name[fill].share == 0.1 and by_name[fill].cls == "framework"
    assert usage.library_time_share == 0.8 and usage.library == (gemm,)  # the class totals are unchanged
    data = usage.to_dict()
    assert {"custom", "library", "framework", "library_time_share", "kernels"} <= set(data)
    assert kernel_times(data) == list(usage.kernels)  # read back from a report's dict
    old_report = {k: v for k, v in data.items() if k != "kernels"}  # report.json written before the breakdown
    assert kernel_times(old_report) == [] and kernel_times(None) == []


def test_unavailable_trace_applies_no_policy() -> None:
    assert check_traces([CallTrace((), None, available=False, reason="no CUPTI")], REF, set()) == []


def test_mutation_policy_respects_reference_mutation() -> None:
    assert check_mutation([[0]], [[]])[0].reason == "input_mutation"
    assert check_mutation([[0]], [[0]]) == []


def test_kernel_names_and_classes() -> None:
    assert base_name("void ns::relu_kernel<float, 4>(float const*, float*, long)") == "relu_kernel"
    assert base_name("void (anonymous namespace)::cunn_SoftMaxForward<4, float>(float*, float const*, int)") == "cunn_SoftMaxForward"
    assert classify("void relu_kernel(float*)", {"relu_kernel"}) == "custom"
    assert classify("nvjet_tst_128x64_64x8_1x1_v_bz_TNT", set()) == "library"
    assert classify("void at::native::vectorized_elementwise_kernel<4>(int)", set()) == "framework"
    # cuDNN's FFT convolution (chosen for a 3x3 conv on an H100): library kernels, though no name says cuDNN
    for name in ("void DSE::regular_fft_pad<0, 1, 128, 16, 32, 1, float, float, float2>(float2*, float*, int)",
                 "void DSE::vector_fft<1, 2, 128, 8, 8, 1, float, float, float2>(float2*, float2*, int, int3, int3)",
                 "void pointwise_mult_and_sum_complex<float2, 8, 4>(float2*, float2*, float2*, int, int, float2)"):
        assert classify(name, set()) == "library", name


def test_chrome_trace_parsing_finds_marker_and_copies() -> None:
    events = [
        {"ph": "X", "cat": "kernel", "name": "void k(float*)", "ts": 10.0, "dur": 5.0, "args": {"stream": 7}},
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy DtoH (Device -> Pageable)", "ts": 16.0, "dur": 2.0,
         "args": {"stream": 7, "bytes": 4096}},
        {"ph": "X", "cat": "kernel", "name": "void at::cuda::(anonymous namespace)::spin_kernel(long)", "ts": 20.0,
         "dur": 1.0, "args": {"stream": 7}},
        {"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 1.0, "dur": 1.0},
    ]
    acts, marker = _parse_events(events)
    assert marker == 20.0 and [a.kind for a in acts] == ["kernel", "memcpy"]
    assert CallTrace(tuple(acts), marker).device_to_host_bytes() == 4096


def test_outputs_close_samples_first_but_still_sees_a_single_differing_element() -> None:
    torch.manual_seed(0)
    a = torch.randn(3 << 17)  # larger than the sample, so the sampled path runs
    assert outputs_close([a], [a.clone()])
    assert not outputs_close([a], [torch.randn(3 << 17)])
    one_off = a.clone()
    one_off[12345] += 1.0  # index 12345 is not on the sample's stride
    assert not outputs_close([a], [one_off])


def test_worker_stage_seconds_are_summed_per_stage_under_a_prefix() -> None:
    from kernelwright.tools.harness.evaluate import _add_stage_seconds

    durations = {"trials_call": 0.5}
    _add_stage_seconds(durations, [{"stages_s": {"call": 0.25, "encode": 0.1}}, {"stages_s": {"call": 0.25}}, {}],
                       "trials_")
    assert durations == {"trials_call": 1.0, "trials_encode": 0.1}

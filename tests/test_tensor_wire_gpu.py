"""Outputs leave a worker through a reused page-locked buffer: every blob of a reply stays right, across growth."""

from __future__ import annotations

import pytest
import torch

from kernelwright.tools.tensor_wire import PinnedStaging, decode_tensor

pytestmark = pytest.mark.gpu


def test_blobs_of_one_reply_survive_growth_and_the_next_reply_reuses_the_buffer() -> None:
    staging = PinnedStaging()
    small = torch.arange(1000, device="cuda", dtype=torch.float32)
    big = torch.randn(3 << 20, device="cuda").to(torch.bfloat16)  # forces a larger buffer
    flags = torch.rand(77, device="cuda") > 0.5
    strided = torch.randn(64, 48, device="cuda").t()  # not contiguous
    encoded = [staging.encode(t) for t in (small, big, flags, strided)]
    for original, (meta, raw) in zip((small, big, flags, strided), encoded):
        back = decode_tensor(meta, raw)
        assert back.dtype == original.dtype and torch.equal(back, original.cpu())
    staging.reset()
    meta, raw = staging.encode(small * 2)
    assert torch.equal(decode_tensor(meta, raw), (small * 2).cpu())

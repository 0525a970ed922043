"""fp32 attention with a wide head: two GEMMs and a softmax instead of the fused library kernel.

Flash attention has no fp32 kernel, so PyTorch runs fp32 `scaled_dot_product_attention` on a fused SIMT kernel
(memory-efficient attention) or on its math path: 4*L*S*D fp32 FLOPs per head on CUDA cores. Decomposed, the two
GEMMs can run on tensor cores at fp32 accuracy (the 3xTF32 split, where gemm_split's roofline estimate says it
pays; the tuner tries it otherwise) and the softmax is a kernel of the candidate's own; the price is the L*S score
matrix going through DRAM (about 16 bytes per score: written, read, the probabilities written, read). Per score the fused kernel spends ~4*D/fp32_rate and the decomposition
~4*D/split_rate + 16/bandwidth; on an H100 (fp32 ~60 TFLOP/s, the split ~150, DRAM ~3 TB/s) the decomposition
wins from a head dim of about 200 on, so it is taken from 256: a narrow head (64, 128: the transformers of
KernelBench level 3) keeps the fused kernel. Other cases (dropout, grouped-query heads, half precision: flash
attention there) keep the library call too.
"""

from __future__ import annotations

import math
from typing import Any

import torch

DECOMPOSE_FROM_HEAD_DIM = 256

_aten = torch.ops.aten


def decompose_wide_fp32_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                  attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                                  is_causal: bool = False, scale: float | None = None,
                                  enable_gqa: bool = False) -> Any:
    """A decomposition for torch.export's table: softmax(Q K^T * scale + mask) V, or NotImplemented (the op is
    kept whole) where the fused kernel is the better or the only exact choice."""
    if (query.dtype != torch.float32 or query.shape[-1] < DECOMPOSE_FROM_HEAD_DIM or dropout_p != 0.0
            or is_causal or enable_gqa or query.shape[:-2] != key.shape[:-2]
            or (attn_mask is not None and attn_mask.dtype == torch.bool)):
        return NotImplemented
    factor = scale if scale is not None else 1.0 / math.sqrt(query.shape[-1])
    scores = _aten.mul.Tensor(_aten.matmul.default(query, _aten.transpose.int(key, -2, -1)), factor)
    if attn_mask is not None:
        scores = _aten.add.Tensor(scores, attn_mask)
    return _aten.matmul.default(_aten.softmax.int(scores, -1), value)

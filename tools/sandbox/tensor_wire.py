"""Tensors as plain bytes + metadata, for crossing process boundaries without pickle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

_DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d
    for d in (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
              torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128)
}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_from_name(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"unsupported dtype {name!r}") from None


@dataclass(frozen=True, slots=True)
class TensorMeta:
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorMeta:
        return cls(str(data["dtype"]), tuple(int(s) for s in data["shape"]))


def encode_tensor(t: torch.Tensor) -> tuple[dict[str, Any], memoryview | bytes]:
    """Meta + the raw bytes of a (detached, contiguous, CPU) copy of `t`, as a view of that copy (no second copy)."""
    cpu = t.detach().to("cpu").contiguous()
    meta = TensorMeta(dtype_name(cpu.dtype), tuple(cpu.shape)).to_dict()
    raw = cpu.reshape(-1).view(torch.uint8).numpy().data if cpu.numel() else b""
    return meta, raw


def decode_tensor(meta: dict[str, Any], raw: bytes | bytearray | memoryview) -> torch.Tensor:
    """The tensor over `raw`'s memory: shared when raw is a writable buffer (what the protocol receives), copied otherwise."""
    info = TensorMeta.from_dict(meta)
    dtype = dtype_from_name(info.dtype)
    if not len(raw):
        return torch.empty(info.shape, dtype=dtype)
    buffer = raw if isinstance(raw, bytearray) else bytearray(raw)
    flat = torch.frombuffer(buffer, dtype=torch.uint8).view(dtype)
    return flat.reshape(info.shape)

"""Tensors passed between worker processes by reference: CUDA IPC handles for GPU tensors, bytes otherwise.

Why: KernelBench's level-1 outputs reach 6 GB; copying them to host memory and through a socket cost tens
of seconds and exhausted host RAM. A CUDA tensor is instead exported as a CUDA IPC handle (PyTorch's own
mechanism behind torch.multiprocessing: the exporting process keeps the memory alive until the importer
lets go), and the judge opens it and compares on the GPU. Nothing is pickled: the handle and the
tensor's geometry travel as JSON plus raw byte blobs, and the importer rebuilds the view itself.

CPU tensors (the harness's CPU self-test mode) travel as their bytes.
"""

from __future__ import annotations

from typing import Any

import torch

from kernelwright.tools.sandbox.tensor_wire import decode_tensor, dtype_from_name, dtype_name, encode_tensor


class ShareError(Exception):
    """A shared tensor could not be exported or opened (not from PyTorch's allocator, bad handle)."""


def share_tensor(t: torch.Tensor, blobs: list[Any], *, via_host: bool = False) -> dict[str, Any]:
    """JSON-safe description of `t`; its payload (IPC handles or bytes) is appended to `blobs`. `via_host`
    sends a CUDA tensor's bytes instead (the fallback where CUDA IPC does not work between processes)."""
    t = t.detach()
    meta: dict[str, Any] = {"dtype": dtype_name(t.dtype), "shape": list(t.shape), "device": str(t.device)}
    if not t.is_cuda or via_host:
        wire_meta, raw = encode_tensor(t)
        meta.update(kind="bytes", blob=len(blobs), wire=wire_meta)
        blobs.append(raw)
        return meta
    storage = t.untyped_storage()
    if storage.nbytes() == 0 or t.numel() == 0:
        meta.update(kind="empty")
        return meta
    try:
        (device, handle, size_bytes, offset_bytes, ref_handle, ref_offset, event_handle,
         event_sync) = storage._share_cuda_()
    except RuntimeError as exc:  # memory not from the caching allocator (e.g. a raw cudaMalloc wrapped by from_blob)
        raise ShareError(f"cannot export a CUDA tensor by IPC: {exc}") from None
    meta.update(kind="cuda_ipc", device_index=int(device), stride=list(t.stride()), storage_offset=int(t.storage_offset()),
                storage_bytes=int(size_bytes), segment_offset=int(offset_bytes), ref_offset=int(ref_offset),
                event_sync=bool(event_sync), blob=len(blobs))
    blobs += [bytes(handle), bytes(ref_handle or b""), bytes(event_handle or b"")]
    return meta


def open_shared(meta: dict[str, Any], blobs: list[Any], device: torch.device | None = None) -> torch.Tensor:
    """The tensor a `share_tensor` description names, mapped into this process (no copy for CUDA IPC)."""
    dtype = dtype_from_name(str(meta["dtype"]))
    shape = tuple(int(s) for s in meta["shape"])
    kind = meta.get("kind")
    if kind == "bytes":
        t = decode_tensor(meta["wire"], blobs[int(meta["blob"])])
        return t.to(device) if device is not None else t
    if kind == "empty":
        return torch.empty(shape, dtype=dtype, device=device or meta.get("device", "cpu"))
    if kind != "cuda_ipc":
        raise ShareError(f"unknown shared tensor kind {kind!r}")
    stride = tuple(int(s) for s in meta["stride"])
    elem = torch.empty((), dtype=dtype).element_size()
    size_bytes, offset = int(meta["storage_bytes"]), int(meta["storage_offset"])
    extent = offset + sum((n - 1) * s for n, s in zip(shape, stride) if n > 0) + 1
    if size_bytes <= 0 or any(s < 0 for s in stride) or extent * elem > size_bytes:
        raise ShareError("shared tensor's geometry does not fit its storage")
    i = int(meta["blob"])
    handle, ref_handle, event_handle = (bytes(blobs[i]), bytes(blobs[i + 1]), bytes(blobs[i + 2]))
    try:
        storage = torch.UntypedStorage._new_shared_cuda(
            int(meta["device_index"]), handle, size_bytes, int(meta["segment_offset"]), ref_handle,
            int(meta["ref_offset"]), event_handle, bool(meta["event_sync"]))  # all three handles must be bytes
    except (RuntimeError, TypeError) as exc:
        raise ShareError(f"cannot open a shared CUDA tensor: {exc}") from None
    t = torch.empty((0,), dtype=dtype, device=storage.device)
    t.set_(storage, offset, shape, stride)
    return t

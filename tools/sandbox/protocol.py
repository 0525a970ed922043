"""Framed messages between the harness and its sandbox workers.

A frame is a JSON header plus raw binary blobs (tensor bytes). Nothing is
unpickled: a worker that runs candidate code can send only data, never objects
that execute code in the harness when decoded.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

_HDR = struct.Struct("!IQ")  # header length, number of blobs
_BLOB = struct.Struct("!Q")
MAX_HEADER_BYTES = 64 << 20


class ProtocolError(Exception):
    """The peer closed the channel or sent a malformed frame."""


@dataclass
class Message:
    header: dict[str, Any]
    blobs: list[bytes | bytearray | memoryview] = field(default_factory=list)


def send_message(sock: socket.socket, header: dict[str, Any],
                 blobs: list[bytes | bytearray | memoryview] | None = None) -> None:
    blobs = blobs or []
    raw = json.dumps(header, allow_nan=True).encode()
    parts = [_HDR.pack(len(raw), len(blobs)), raw]
    for blob in blobs:
        parts.append(_BLOB.pack(memoryview(blob).nbytes))
        parts.append(blob)
    for part in parts:
        sock.sendall(part)


def recv_message(sock: socket.socket, *, timeout_s: float | None = None) -> Message:
    """Read one frame; raises TimeoutError if nothing complete arrives in time."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    head_len, n_blobs = _HDR.unpack(_recv_exact(sock, _HDR.size, deadline))
    if head_len > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {head_len} bytes is too large")
    header = json.loads(_recv_exact(sock, head_len, deadline))
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    blobs = []
    for _ in range(n_blobs):
        (size,) = _BLOB.unpack(_recv_exact(sock, _BLOB.size, deadline))
        blobs.append(_recv_exact(sock, size, deadline))
    return Message(header, blobs)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    """Exactly `size` bytes, read straight into one preallocated buffer (outputs can be hundreds of MB)."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete reply in time")
            ready, _, _ = select.select([sock], [], [], remaining)
            if not ready:
                raise TimeoutError("no complete reply in time")
        n = sock.recv_into(view[got:], min(size - got, 1 << 22))
        if not n:
            raise ProtocolError("channel closed by peer")
        got += n
    return buf

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_HDR = struct.Struct("!IQ")  # header length, number of blobs
_BLOB = struct.Struct("!Q")
MAX_HEADER_BYTES = 64 << 20

Blob = bytes | bytearray | memoryview  # what a frame carries after its header


class ProtocolError(Exception):
    """The peer closed the channel or sent a malformed frame."""


@dataclass
class Message:
    header: dict[str, Any]
    blobs: list[Blob] = field(default_factory=list)


def send_message(sock: socket.socket, header: dict[str, Any],
                 blobs: list[Blob] | None = None) -> None:
    blobs = blobs or []
    raw = json.dumps(header, allow_nan=True).encode()
    parts: list[Blob] = [_HDR.pack(len(raw), len(blobs)), raw]
    for blob in blobs:
        parts.append(_BLOB.pack(memoryview(blob).nbytes))
        parts.append(blob)
    for part in parts:
        sock.sendall(part)


WAIT_POLL_S = 0.25  # how often a waiting reader calls its on_wait check (memory limits)


def recv_message(sock: socket.socket, *, timeout_s: float | None = None,
                 on_wait: Callable[[], None] | None = None) -> Message:
    """Read one frame; raises TimeoutError if nothing complete arrives in time. While it waits, `on_wait` is
    called every WAIT_POLL_S seconds (it may raise to stop waiting)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    head_len, n_blobs = _HDR.unpack(_recv_exact(sock, _HDR.size, deadline, on_wait))
    if head_len > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {head_len} bytes is too large")
    header = json.loads(_recv_exact(sock, head_len, deadline, on_wait))
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    blobs: list[Blob] = []
    for _ in range(n_blobs):
        (size,) = _BLOB.unpack(_recv_exact(sock, _BLOB.size, deadline, on_wait))
        blobs.append(_recv_exact(sock, size, deadline, on_wait))
    return Message(header, blobs)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None,
                on_wait: Callable[[], None] | None = None) -> bytearray:
    """Exactly `size` bytes, read straight into one preallocated buffer (outputs can be hundreds of MB)."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        if deadline is not None or on_wait is not None:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("no complete reply in time")
                wait = WAIT_POLL_S if on_wait is not None else remaining
                if remaining is not None and wait is not None:
                    wait = min(wait, remaining)
                ready, _, _ = select.select([sock], [], [], wait)
                if ready:
                    break
                if on_wait is not None:
                    on_wait()
        n = sock.recv_into(view[got:], min(size - got, 1 << 22))
        if not n:
            raise ProtocolError("channel closed by peer")
        got += n
    return buf

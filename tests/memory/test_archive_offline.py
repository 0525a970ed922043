"""The archive's embedding is fully offline: with every non-loopback connection refused (and no
HF_HUB_OFFLINE to lean on, and an empty hub cache), a fresh process imports the model, stores and
retrieves kernels, and makes no connection attempt at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.paths import TESTS

SCRIPT = r"""
import ipaddress, json, socket, sys
attempts = []

def _host(address):
    return address[0] if isinstance(address, tuple) else address

def _loopback(host):
    if isinstance(host, (bytes, str)) and str(host) in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

def _guard(kind, host):
    if _loopback(host):
        return
    attempts.append([kind, str(host)])
    raise OSError(f"network blocked by the test: {kind} {host}")

real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

def connect(self, address):
    if self.family != socket.AF_UNIX:  # a local socket file is no network
        _guard("connect", _host(address))
    return real_connect(self, address)

def connect_ex(self, address):
    if self.family != socket.AF_UNIX:
        _guard("connect_ex", _host(address))
    return real_connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    _guard("getaddrinfo", host)
    return real_getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo

sys.path.insert(0, sys.argv[2])
from support.archive import make_record, signature
from kernelwright.memory.archive import KernelArchive
from kernelwright.memory.embedding import MiniLMEmbedding

with KernelArchive.open_local(sys.argv[1]) as archive:  # the default embedding
    kind = type(archive.embedding).__name__
    archive.add_many([make_record("softmax"), make_record("relu", variant=1)])
    hits = archive.search(signature("softmax", shape=(64, 1024)), k=1)
print(json.dumps({"attempts": attempts, "embedding": kind, "top": hits[0].record.signature.name}))
"""


def test_no_network_is_touched_by_the_offline_embedding(tmp_path: Path) -> None:
    script = tmp_path / "offline.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS"))}
    env["HF_HOME"] = str(tmp_path / "empty-hub-cache")  # nothing cached to fall back on
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "archive"), str(TESTS)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"attempts": [], "embedding": "MiniLMEmbedding", "top": "softmax"}
    assert not (tmp_path / "empty-hub-cache").exists() or not any((tmp_path / "empty-hub-cache").rglob("*.safetensors"))


def test_the_guard_does_catch_a_connection_attempt(tmp_path: Path) -> None:
    """The check above could pass vacuously if the guard missed connections; prove it catches one."""
    script = tmp_path / "probe.py"
    body = SCRIPT.split("sys.path.insert")[0]
    script.write_text(body + "\ntry:\n    socket.create_connection(('huggingface.co', 443), timeout=1)\n"
                      "except OSError:\n    pass\nprint(json.dumps(attempts))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [["getaddrinfo", "huggingface.co"]]

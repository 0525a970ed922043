"""The archive on a real Chroma server process, started here on loopback (a team's shared archive)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernelwright.memory.archive import ArchiveUnavailable, KernelArchive
from kernelwright.memory.embedding import HashedEmbedding
from kernelwright.memory.prompting import retrieve_examples
from support.archive import make_record, signature

LAUNCH = "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; sys.exit(app())"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def chroma_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "run", "--path", str(tmp_path / "server-data"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("chroma server did not come up:\n" + (tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_store_search_and_share_through_a_chroma_server(chroma_server: tuple[str, int], tmp_path: Path) -> None:
    host, port = chroma_server
    softmax, relu = make_record("softmax", idea="shuffle", speedup=3.0), make_record("relu")
    with KernelArchive.open_server(host, port, embedding=HashedEmbedding()) as archive:
        assert archive.add_many([softmax, relu]) == {softmax.id: "added", relu.id: "added"}
        assert archive.add(softmax) == "kept"
    # a second client (another team member) sees the same archive
    with KernelArchive.open_server(host, port, embedding=HashedEmbedding()) as other:
        assert other.count() == 2 and other.get(softmax.id) == softmax
        hits = retrieve_examples(other, signature("softmax"), k=1)
        assert hits[0].record.id == softmax.id
        assert other.export_jsonl(tmp_path / "team.jsonl") == 2
    with KernelArchive.open_local(tmp_path / "mine", embedding=HashedEmbedding()) as mine:
        assert mine.import_jsonl(tmp_path / "team.jsonl") == {"added": 2}


def test_a_server_that_is_not_there_is_unavailable_not_a_crash() -> None:
    with pytest.raises(ArchiveUnavailable):
        KernelArchive.open_server("127.0.0.1", _free_port(), embedding=HashedEmbedding())

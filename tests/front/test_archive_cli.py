"""`kernelwright archive list|show|search|export|import|stats` on a real local archive."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import EXIT_BAD_INPUT, app
from kernelwright.memory.archive import KernelArchive
from kernelwright.memory.embedding import MiniLMEmbedding
from support.archive import make_record

runner = CliRunner(env={"COLUMNS": "240"})  # rich tables: no wrapping of ids


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("cli") / "archive"
    records = [make_record("softmax", idea="shuffle", speedup=3.25), make_record("matmul", variant=1, cc="8.0"),
               make_record("relu", variant=2, status="rejected")]
    with KernelArchive.open_local(path, embedding=MiniLMEmbedding()) as archive:  # what the CLI opens by default
        archive.add_many(records)
    return path, records


def _run(*args: str) -> object:
    return runner.invoke(app, ["archive", *args], catch_exceptions=False)


def test_list_shows_verified_kernels_and_all_with_the_flag(filled: tuple[Path, list]) -> None:
    path, records = filled
    out = _run("list", "--path", str(path)).output
    assert records[0].id[:16] in out and records[1].id[:16] in out and records[2].id[:16] not in out
    assert "3.25x" in out
    assert records[2].id[:16] in _run("list", "--all", "--path", str(path)).output


def test_show_by_prefix_and_json(filled: tuple[Path, list]) -> None:
    path, records = filled
    out = _run("show", records[0].id[:10], "--path", str(path)).output
    assert "warp_shuffle" in out and "softmax_kernel_0" in out and "translator@v1" in out
    data = json.loads(_run("show", records[0].id, "--json", "--path", str(path)).output)
    assert data["id"] == records[0].id and data["speedup_vs_eager"] == 3.25
    missing = runner.invoke(app, ["archive", "show", "ffffffffffff", "--path", str(path)])
    assert missing.exit_code == EXIT_BAD_INPUT and "no kernel" in missing.output


def test_show_a_kernel_whose_generation_was_not_recorded(tmp_path: Path) -> None:
    """A record without a generation used to show "generation None" in its lineage row."""
    record = make_record("gelu")
    record = dataclasses.replace(record, lineage=dataclasses.replace(record.lineage, generation=None))
    path = tmp_path / "archive"
    with KernelArchive.open_local(path, embedding=MiniLMEmbedding()) as archive:
        archive.add_many([record])
    out = _run("show", record.id, "--path", str(path)).output
    assert "translator@v1 generation ? parents" in out and "None" not in out, out


def test_search_by_text_and_by_example(filled: tuple[Path, list]) -> None:
    path, records = filled
    out = _run("search", "softmax over rows", "-k", "1", "--path", str(path)).output
    assert records[0].id[:16] in out and records[1].id[:16] not in out
    out = _run("search", "--like", records[1].id[:12], "-k", "1", "--arch", "sm_80", "--path", str(path)).output
    assert records[1].id[:16] in out


def test_export_import_and_stats(filled: tuple[Path, list], tmp_path: Path) -> None:
    path, records = filled
    file = tmp_path / "out.jsonl"
    assert "exported 3 records" in _run("export", str(file), "--path", str(path)).output
    assert len(file.read_text().splitlines()) == 3
    fresh = tmp_path / "fresh"
    assert "3 added" in _run("import", str(file), "--path", str(fresh)).output
    assert "3 kept" in _run("import", str(file), "--path", str(fresh)).output
    stats = json.loads(_run("stats", "--json", "--path", str(fresh)).output)
    assert stats["records"] == 3 and stats["verified"] == 2 and stats["best_speedup_vs_eager"] == 3.25
    assert "verified" in _run("stats", "--path", str(fresh)).output


def test_errors_go_through_the_cli_error_path(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["archive", "list", "--path", str(tmp_path / "nothing")])
    assert missing.exit_code == EXIT_BAD_INPUT and "no archive here" in missing.output
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "chroma.sqlite3").write_text("garbage")
    result = runner.invoke(app, ["archive", "stats", "--path", str(damaged)])
    assert result.exit_code == EXIT_BAD_INPUT and "cannot open the archive" in result.output
    bad_server = runner.invoke(app, ["archive", "stats", "--server", "nonsense"])
    assert bad_server.exit_code == 2 and "HOST:PORT" in bad_server.output


def test_the_default_path_comes_from_the_environment(filled: tuple[Path, list]) -> None:
    path, records = filled
    result = runner.invoke(app, ["archive", "stats", "--json"], env={"KERNELWRIGHT_ARCHIVE": str(path)})
    assert json.loads(result.output)["records"] == 3


def test_an_empty_archive_says_where_it_is_and_how_it_fills(tmp_path: Path) -> None:
    """An empty `archive list` used to print a table with headers and no rows, and nothing else."""
    path = tmp_path / "archive"
    path.mkdir()
    empty = runner.invoke(app, ["archive", "list", "--path", str(path)])
    text = " ".join(empty.output.split())
    assert empty.exit_code == 0 and "┏" not in empty.output, empty.output
    assert f"The archive at {path} is empty." in text
    assert "`kernelwright run` adds each kernel it verifies" in text and "archive import FILE.jsonl" in text
    with KernelArchive.open_local(path, embedding=MiniLMEmbedding()) as archive:
        archive.add_many([make_record("relu", variant=2, status="rejected")])
    unverified = runner.invoke(app, ["archive", "list", "--path", str(path)])
    text = " ".join(unverified.output.split())
    assert unverified.exit_code == 0 and "┏" not in unverified.output, unverified.output
    assert f"No verified kernels in the archive at {path}; it holds 1 that did not pass" in text and "--all" in text
    assert "relu" in runner.invoke(app, ["archive", "list", "--all", "--path", str(path)]).output


def test_list_fits_80_columns(filled: tuple[Path, list]) -> None:
    path, records = filled
    out = runner.invoke(app, ["archive", "list", "--path", str(path)], env={"COLUMNS": "80"}).output
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert records[0].id[:16] in out and records[1].id[:16] in out and "3.25x" in out  # ids whole, speedups kept

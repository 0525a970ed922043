"""`kernelwright archive ...`: look into, search and share the kernel archive."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from kernelwright.cli_app import KernelwrightTyper
from kernelwright.cli_errors import EXIT_BAD_INPUT, fail
from kernelwright.cli_tables import Column, fitted_table
from kernelwright.graphs.generations import generation_label
from kernelwright.logging_setup import configure_logging
from kernelwright.tools.errors import KernelwrightError

if TYPE_CHECKING:  # chromadb is imported only by the commands that use it: `kernelwright --help` stays fast
    from kernelwright.memory.archive import KernelArchive

archive_app = KernelwrightTyper(no_args_is_help=True,
                                help="The kernel archive: verified kernels reused as prompt examples.")

PathOpt = typer.Option(None, "--path", help="archive folder (default: $KERNELWRIGHT_ARCHIVE or the user cache dir)")
ServerOpt = typer.Option(None, "--server", help="a shared Chroma server, HOST:PORT, instead of a local folder")
LogOpt = typer.Option("warning", "--log-level", help="console log level")


@contextmanager
def _open(path: Path | None, server: str | None, log_level: str, *, create: bool = False) -> Iterator[KernelArchive]:
    """The archive, with every kernelwright error turned into a message and exit code 2."""
    from kernelwright.memory.archive import KernelArchive

    configure_logging(level=log_level)
    try:
        if server:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise typer.BadParameter("--server takes HOST:PORT")
            archive = KernelArchive.open_server(host, int(port))
        else:
            archive = KernelArchive.open_local(path, create=create)
        with archive:
            yield archive
    except KernelwrightError as exc:
        fail(exc, EXIT_BAD_INPUT)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _speed(value: object) -> str:
    return f"{value:.2f}x" if isinstance(value, (int, float)) else "-"


@archive_app.command("list")
def list_command(path: Path | None = PathOpt, server: str | None = ServerOpt, log_level: str = LogOpt,
                 all_: bool = typer.Option(False, "--all", help="include kernels that did not pass"),
                 limit: int = typer.Option(50, min=1, help="newest first, at most this many")) -> None:
    """Kernels in the archive, newest first."""
    with _open(path, server, log_level) as archive:
        rows = archive.entries(verified_only=not all_, limit=limit)
        unlisted = archive.count() if not rows else 0
        where = archive.where
    console = Console()
    if not rows:
        console.print(Text(_nothing_listed(where, unlisted)))
        return
    # A narrow terminal loses the date first, then the techniques, the speedup vs compile and the arch.
    columns = [Column("id"), Column("problem", flexible=True), Column("status"), Column("arch", drop=4),
               Column("vs eager"), Column("vs compile", drop=3), Column("techniques", drop=2), Column("when", drop=1)]
    console.print(fitted_table(columns, [[rid[:16], str(m.get("problem_name") or m.get("problem_key", "")),
                                          str(m.get("status")), str(m.get("gpu_arch") or "-"),
                                          _speed(m.get("speedup_vs_eager")), _speed(m.get("speedup_vs_compile")),
                                          str(m.get("techniques") or "")[:40], _when(float(m.get("created_at", 0.0)))]
                                         for rid, m in rows], console.width))


def _nothing_listed(where: str, unlisted: int) -> str:
    """What an empty `archive list` says: where it looked, and how kernels get there."""
    if unlisted:
        return (f"No verified kernels in the archive at {where}; it holds {unlisted} that did not pass "
                "(`kernelwright archive list --all` lists them).")
    return (f"The archive at {where} is empty. `kernelwright run` adds each kernel it verifies (verifying needs a "
            "CUDA GPU); `kernelwright archive import FILE.jsonl` merges kernels exported from another archive.")


@archive_app.command("show")
def show_command(record_id: str = typer.Argument(..., help="kernel id or a unique prefix (6+ characters)"),
                 path: Path | None = PathOpt, server: str | None = ServerOpt, log_level: str = LogOpt,
                 as_json: bool = typer.Option(False, "--json", help="the whole record as JSON")) -> None:
    """One kernel: its evidence, lineage and source."""
    with _open(path, server, log_level) as archive:
        record = archive.get(record_id)
    if record is None:
        fail(f"no kernel {record_id!r} in the archive", EXIT_BAD_INPUT)
    if as_json:
        typer.echo(json.dumps(record.to_dict(), indent=2))
        return
    console = Console()
    table = Table(show_header=False, title=f"kernel {record.id[:16]}")
    lin = record.lineage
    generation = generation_label(lin.generation) if lin.generation is not None else "generation ?"  # not recorded
    lineage = f"{lin.agent} {lin.prompt} {generation} parents {[p[:16] for p in lin.parents]}"
    for key, value in (("problem", record.signature.text()), ("status", record.status),
                       ("gpu", f"{record.gpu_name or '?'} ({record.gpu_arch or '?'})"),
                       ("speedup vs eager", _speed(record.speedup_vs_eager)),
                       ("speedup vs torch.compile", _speed(record.speedup_vs_compile)),
                       ("correctness", json.dumps(record.correctness)), ("techniques", ", ".join(record.techniques())),
                       ("profile", record.profile_summary), ("lineage", lineage),
                       ("run", record.run_id), ("added", _when(record.created_at))):
        table.add_row(key, str(value))
    console.print(table)
    console.print(Syntax(record.kernel_source, "python", line_numbers=False))


@archive_app.command("search")
def search_command(query: str = typer.Argument("", help="free text (op names, a description); or use --like"),
                   path: Path | None = PathOpt, server: str | None = ServerOpt, log_level: str = LogOpt,
                   k: int = typer.Option(5, "-k", min=1, help="how many kernels"),
                   arch: str | None = typer.Option(None, help="prefer kernels measured on this arch, e.g. sm_90"),
                   like: str | None = typer.Option(None, help="search by the problem signature of this kernel id"),
                   diversity: float = typer.Option(0.3, min=0.0, max=1.0, help="0 = pure relevance, 1 = novelty")) -> None:
    """The kernels the translator and mutator would be shown for QUERY."""
    with _open(path, server, log_level) as archive:
        target: object = query
        if like:
            record = archive.get(like)
            if record is None:
                fail(f"no kernel {like!r} in the archive", EXIT_BAD_INPUT)
            target = record.signature
        elif not query.strip():
            raise typer.BadParameter("give a QUERY or --like ID")
        hits = archive.search(target, k, gpu_arch=arch, diversity=diversity)
    table = Table("score", "id", "problem", "arch", "vs eager", "techniques")
    for hit in hits:
        r = hit.record
        table.add_row(f"{hit.score:.3f}", r.id[:16], r.signature.text()[:60], r.gpu_arch or "-",
                      _speed(r.speedup_vs_eager), ", ".join(r.techniques())[:40])
    Console().print(table if hits else "no verified kernels match")


@archive_app.command("export")
def export_command(file: Path = typer.Argument(..., help="JSONL file to write"), path: Path | None = PathOpt,
                   server: str | None = ServerOpt, log_level: str = LogOpt) -> None:
    """Write every record as one JSON line (to share an archive)."""
    with _open(path, server, log_level) as archive:
        n = archive.export_jsonl(file)
    Console().print(f"exported {n} records to {file}")


@archive_app.command("import")
def import_command(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL from `archive export`"),
                   path: Path | None = PathOpt, server: str | None = ServerOpt, log_level: str = LogOpt) -> None:
    """Merge an exported archive in; known kernels keep the better evidence."""
    with _open(path, server, log_level, create=True) as archive:
        counts = archive.import_jsonl(file)
    Console().print(", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing to import")


@archive_app.command("stats")
def stats_command(path: Path | None = PathOpt, server: str | None = ServerOpt, log_level: str = LogOpt,
                  as_json: bool = typer.Option(False, "--json", help="print as JSON")) -> None:
    """How many kernels, verified, per architecture, best speedup."""
    with _open(path, server, log_level) as archive:
        stats = archive.stats()
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    table = Table(show_header=False, title="kernel archive")
    for key, value in stats.items():
        table.add_row(key, _speed(value) if key == "best_speedup_vs_eager" else str(value))
    Console().print(table)

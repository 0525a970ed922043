"""The run and the fault suite need the archive's path but not chromadb: a GPU machine without chromadb runs them
(a bench there once failed every problem on `import chromadb`, for a path the jail hides)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kernelwright.memory.location import default_archive_path
from support.blocked_import import without

_WITHOUT_CHROMADB = without("chromadb") + """
import sys
from pathlib import Path
from kernelwright.graphs.run import _jailed
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.eval.faults.registry import all_cases
runs = Path(sys.argv[1])
settings = _jailed(EvalSettings(), runs, runs / "r1", None)
print(len(all_cases()), settings.private_paths[-1])
"""


def test_the_runs_jail_and_the_fault_suite_load_without_chromadb(tmp_path: Path) -> None:
    env_archive = tmp_path / "arch"
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_CHROMADB, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "KERNELWRIGHT_ARCHIVE": str(env_archive)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    cases, hidden = proc.stdout.split()
    assert int(cases) > 10 and hidden == str(env_archive)


def test_the_archive_path_follows_its_environment_variable(tmp_path: Path) -> None:
    assert default_archive_path({"KERNELWRIGHT_ARCHIVE": str(tmp_path / "x")}) == tmp_path / "x"
    assert default_archive_path({}).parts[-2:] == ("kernelwright", "archive")

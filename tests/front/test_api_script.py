"""The Python API as a user calls it: from a plain script (with or without a `__main__` guard), from a REPL.

The workers re-run a script to get a class defined in it; the script must not start another run there.
Without a GPU every candidate ends "needs_gpu" (needs a CUDA GPU), which still proves the problem was
generated and the reference loaded (a broken reference stops the run with ReferenceFailure).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog
import torch

from kernelwright.api import evaluate, optimize, problem_from_module
from kernelwright.config import ConfigError
from kernelwright.logging_setup import api_logging
from kernelwright.tools.errors import LoadError, ProblemError
from kernelwright.tools.problem.from_module import load_user_class

SCRIPT = '''
import json
from pathlib import Path

import torch
import torch.nn as nn

import kernelwright
from kernelwright.agents.context import RunSettings

HERE = Path(__file__).parent
with (HERE / "trace.txt").open("a") as f:
    f.write("top\\n")
SCALE = 2.0


def shifted(x):
    return x + 1.0


class Doubler(nn.Module):
    def forward(self, x):
        return torch.relu(shifted(x)) * SCALE

'''
CALL = '''
result = kernelwright.optimize(Doubler, example_inputs=[torch.randn(64, 128)], runs_dir=HERE / "runs",
                               settings=RunSettings(generations=1, candidates_per_generation=1){extra})
with (HERE / "trace.txt").open("a") as f:
    f.write("after\\n")
print(json.dumps({"statuses": sorted({c["status"] for c in result.state["candidates"].values()})}))
'''
REPL_CODE = '''import torch, kernelwright
class Net(torch.nn.Module):
    def forward(self, x):
        return x * 2

kernelwright.optimize(Net, example_inputs=[torch.randn(4, 4)], runs_dir="runs")
'''
NO_SOURCE = "kernelwright.tools.errors.ProblemError: Net has no source file (it was defined in a REPL"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KERNELWRIGHT_LOG_LEVEL" and not k.startswith("OPENAI_")}
    return {**env, **extra}


def _run_script(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "my_script.py"
    script.write_text(text)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=400,
                          cwd=tmp_path, env=_env(**env))


def _run_traced_script(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """The workers' re-runs of the script are counted through the file its top appends to, which the jail's
    read-only file system refuses (by design: test_a_script_whose_top_writes_a_file_is_told_why_in_the_jail),
    so the jail is off here; the static pre-check stays on (the default): the candidates carry the script's
    problem, json and kernelwright's module loader included, and must pass it."""
    return _run_script(tmp_path, text, KERNELWRIGHT_HARNESS__ISOLATION="off")


def _check_run(proc: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    if not torch.cuda.is_available():
        assert outcome["statuses"] == ["needs_gpu"]  # compiled and loaded, then "needs a CUDA GPU"
    else:
        assert outcome["statuses"] and "load_error" not in outcome["statuses"]
    trace = (tmp_path / "trace.txt").read_text().split()
    # The workers re-ran the script's top (to get Doubler, SCALE and shifted), never the call or what follows.
    assert trace.count("after") == 1 and trace.count("top") >= 2


def test_a_plain_script_without_a_main_guard_optimises_its_own_class_and_is_quiet(tmp_path: Path) -> None:
    proc = _run_traced_script(tmp_path, SCRIPT + CALL.replace("{extra}", ""))
    _check_run(proc, tmp_path)
    assert proc.stderr == ""  # a library is quiet unless asked
    assert len(proc.stdout.strip().splitlines()) == 1  # only the script's own print: no log lines on stdout


def test_a_guarded_script_shows_logs_on_stderr_when_asked(tmp_path: Path) -> None:
    call = CALL.replace("{extra}", ', log_level="INFO"')
    guarded = SCRIPT + 'if __name__ == "__main__":\n' + textwrap.indent(call, "    ")
    proc = _run_traced_script(tmp_path, guarded)
    _check_run(proc, tmp_path)
    assert "node_done" in proc.stderr and "[info" in proc.stderr and "[debug" not in proc.stderr
    assert "node_done" not in proc.stdout


@pytest.mark.parametrize("mode", ["-c", "stdin", "interactive"])
def test_a_class_typed_into_a_repl_is_refused_before_any_run_naming_the_fix(tmp_path: Path, mode: str) -> None:
    args = {"-c": ["-c", REPL_CODE], "stdin": ["-"], "interactive": ["-q", "-i"]}[mode]
    proc = subprocess.run([sys.executable, *args], input=None if mode == "-c" else REPL_CODE, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=_env())
    assert NO_SOURCE in proc.stderr and "put the class in a .py file" in proc.stderr
    assert "LangGraph" not in proc.stderr and "During task" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run started
    if mode != "interactive":
        assert proc.returncode == 1


def test_logging_is_off_by_default_on_when_asked_and_never_left_changed() -> None:
    out = io.StringIO()
    assert not structlog.is_configured()
    with api_logging(None, stream=out):
        structlog.get_logger("kw").info("progress")
        structlog.get_logger("kw").warning("careful")
    assert not structlog.is_configured()  # the program's (default) configuration is back
    assert "careful" in out.getvalue() and "progress" not in out.getvalue()
    with api_logging(None, "info", stream=out):  # KERNELWRIGHT_LOG_LEVEL=info
        structlog.get_logger("kw").info("from the environment")
    assert "from the environment" in out.getvalue() and not structlog.is_configured()

    mine = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(mine))
    before = structlog.get_config()
    with api_logging(None, "debug", stream=out):
        structlog.get_logger("kw").info("theirs")  # the program (or the CLI) configured structlog: it decides
    assert "theirs" in mine.getvalue() and "theirs" not in out.getvalue() and structlog.get_config() == before
    with api_logging("debug", stream=out):
        structlog.get_logger("kw").debug("asked")
    assert "asked" in out.getvalue() and "asked" not in mine.getvalue() and structlog.get_config() == before


def test_a_bad_log_level_is_a_config_error_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="log_level"):
        optimize(tmp_path / "missing.py", log_level="loud")
    with pytest.raises(ConfigError, match="log_level"):
        evaluate(tmp_path / "missing.py", tmp_path / "missing.py", log_level="loud")


def test_reloading_a_script_stops_at_its_first_kernelwright_call(tmp_path: Path) -> None:
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent('''
        import torch
        import kernelwright

        class First(torch.nn.Module):
            def forward(self, x):
                return x

        try:
            kernelwright.optimize(First, example_inputs=[torch.randn(2)])
        except Exception:
            pass  # a script's own handler must not swallow the stop
        raise RuntimeError("ran past the kernelwright call")

        class Later(torch.nn.Module):
            def forward(self, x):
                return x
    '''))
    cls = load_user_class(str(script), "kw_user_test_reload", "First")
    assert cls.__name__ == "First" and sys.modules["kw_user_test_reload"].First is cls
    with pytest.raises(LoadError, match="Later is not defined when user.py is re-run up to its first kernelwright"):
        load_user_class(str(script), "kw_user_test_reload_later", "Later")


def test_a_script_that_fails_when_re_run_names_its_line_and_the_fix(tmp_path: Path) -> None:
    script = tmp_path / "user.py"
    script.write_text("import torch\n\nDATA = open(\"data/missing.csv\").read()\n")
    with pytest.raises(LoadError) as info:
        load_user_class(str(script), "kw_user_test_fails", "Net")
    assert info.value.where == f"{script.resolve()}:3"
    assert "FileNotFoundError" in info.value.message and 'if __name__ == "__main__":' in info.value.message


def test_a_script_whose_top_writes_a_file_is_told_why_in_the_jail(tmp_path: Path) -> None:
    """Under the default jail a worker re-running the script cannot write beside it: the error says so."""
    script = tmp_path / "user.py"
    script.write_text("import errno\nraise OSError(errno.EROFS, 'Read-only file system', 'trace.txt')\n")
    with pytest.raises(LoadError) as info:
        load_user_class(str(script), "kw_user_test_erofs", "Net")
    assert "Read-only file system" in info.value.message
    assert "workers run in the sandbox (harness.isolation), whose file system is read-only" in info.value.message


def test_a_class_whose_name_was_rebound_is_refused(tmp_path: Path) -> None:
    import importlib.util

    script = tmp_path / "rebinding.py"
    script.write_text("import torch\nclass Net(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
                      "OLD = Net\nclass Net(torch.nn.Module):\n    def forward(self, x):\n        return -x\n")
    spec = importlib.util.spec_from_file_location("rebinding_for_test", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["rebinding_for_test"] = module
    try:
        spec.loader.exec_module(module)
        with pytest.raises(ProblemError, match="no longer refers to this class"):
            problem_from_module(module.OLD, [torch.randn(2)], directory=tmp_path)
        assert problem_from_module(module.Net, [torch.randn(2)], directory=tmp_path).is_file()
    finally:
        sys.modules.pop("rebinding_for_test", None)

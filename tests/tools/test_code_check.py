"""The static pre-check of candidate code (tools.verify.code_check): one hostile snippet per forbidden family and
the usual ways of hiding them are refused with their line; every honest candidate there is passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.tools.verify.code_check import REASON, check_code
from support.offline import suite_problems
from support.paths import FIXTURES, KERNELBENCH, ROOT

HEADER = "import torch\nimport torch.nn as nn\n"  # two lines: a snippet's first line is line 3

# (name, snippet, what a finding's message must say, the snippet's line that finding must name)
FORBIDDEN = [
    ("os_system", "import os\nos.system('id')", "os.system", 2),
    ("os_exec", "import os\nos.execv('/bin/sh', ['sh'])", "os.execv", 2),
    ("os_spawn", "import os\nos.spawnl(0, '/bin/true')", "os.spawnl", 2),
    ("os_fork", "import os\nos.fork()", "os.fork", 2),
    ("os_popen", "import os\nos.popen('ls')", "os.popen", 2),
    ("os_remove", "import os\nos.remove('/tmp/x')", "os.remove", 2),
    ("os_unlink", "import os\nos.unlink('/tmp/x')", "os.unlink", 2),
    ("subprocess", "import subprocess", "import of subprocess", 1),
    ("subprocess_from", "from subprocess import run", "import of subprocess", 1),
    ("socket", "import socket", "import of socket", 1),
    ("http", "import http.client", "import of http.client", 1),
    ("urllib", "from urllib.request import urlopen", "import of urllib.request", 1),
    ("requests", "import requests", "import of requests", 1),
    ("asyncio", "import asyncio", "import of asyncio", 1),
    ("ctypes_cdll", "import ctypes\nctypes.CDLL('libc.so.6')", "ctypes.CDLL", 2),
    ("ctypes_loader", "import ctypes\nctypes.cdll.LoadLibrary('libc.so.6')", "ctypes.cdll", 2),
    ("ctypes_util", "import ctypes.util", "import of ctypes.util", 1),
    ("cffi", "import cffi", "import of cffi", 1),
    ("shutil_rmtree", "import shutil\nshutil.rmtree('/')", "import of shutil", 1),
    ("open_write", "f = open('/tmp/out', 'w')", "open() for writing", 1),
    ("open_append_kw", "f = open('/tmp/out', mode='a')", "open() for writing", 1),
    ("open_exclusive", "f = open('/tmp/out', 'xb')", "open() for writing", 1),
    ("open_update", "f = open('/tmp/out', 'r+')", "open() for writing", 1),
    ("open_computed_mode", "m = 'w'\nopen('/tmp/out', m)", "computed at run time", 2),
    ("exec_built", "code = 'import ' + 'os'\nexec(code)", "exec() of a string built at run time", 2),
    ("eval_built", "eval(input())", "eval() of a string built at run time", 1),
    ("compile_built", "c = compile('x' * 2, 'f', 'exec')", "compile() of a string built at run time", 1),
    ("exec_literal_hiding", "x = 1\nexec('import subprocess')", "import of subprocess inside exec()", 2),
    ("dunder_import", "__import__('os').system('id')", "__import__", 1),
    ("importlib", "import importlib\nimportlib.import_module('sub' + 'process')", "import of importlib", 1),
    ("sys_modules", "import sys\nsys.modules['os'].system('id')", "sys.modules", 2),
    ("sys_getframe", "import sys\nf = sys._getframe(1)", "sys._getframe", 2),
    ("inspect_frame", "import inspect\ninspect.currentframe()", "import of inspect", 1),
    ("frame_back", "def f(frame):\n    return frame.f_back.f_globals", "f_back", 2),
    ("gc_referrers", "import gc\ngc.get_referrers(torch)", "import of gc", 1),
    ("builtins_module", "import builtins\nbuiltins.open = None", "import of builtins", 1),
    ("builtins_dunder", "__builtins__['print'] = None", "__builtins__", 1),
    ("getattr_builtins", "getattr(__builtins__, 'ex' + 'ec')('1')", "__builtins__", 1),
    ("from_os_alias", "from os import system as s\ns('id')", "os.system", 1),
    ("module_alias_chain", "import os\nx = os\ny = x\ny.system('id')", "os.system", 4),
    ("getattr_computed", "import os\nname = 'sys' + 'tem'\ngetattr(os, name)('id')", "computed at run time", 3),
    ("lambda_wrapper", "import os\nrun = lambda c: os.system(c)", "os.system", 2),
    ("module_passed", "import os\nf = (lambda m: m.system)(os)", "use of the module os as a value", 2),
    ("reexport", "torch.os.system('id')", "reaches the os module through torch", 1),
    ("reexport_attr", "nn.modules.module.sys.modules", "reaches the sys module", 1),
    ("subclasses", "x = ().__class__.__base__.__subclasses__()", "__subclasses__", 1),
    ("globals", "g = globals()['__builtins__']", "globals", 1),
    ("open_as_value", "w = open\nw('/tmp/x', 'w')", "open as a value", 1),
    ("torch_load_library", "torch.ops.load_library('/tmp/evil.so')", "torch.ops.load_library", 1),
    ("torch_distributed", "import torch.distributed as dist", "import of torch.distributed", 1),
    ("relative_import", "from . import sibling", "relative import", 1),
    ("unknown_module", "import pyautogui", "not on the candidate allow-list", 1),
    ("attrgetter", "import operator\noperator.attrgetter('system')", "operator.attrgetter", 2),
    ("module_dict", "m = torch.__dict__['o' + 's']", "torch.__dict__", 1),
    ("log_file", "import logging\nlogging.FileHandler('/tmp/x.log')", "logging.FileHandler", 2),
]


@pytest.mark.parametrize("snippet,expected,line", [c[1:] for c in FORBIDDEN], ids=[c[0] for c in FORBIDDEN])
def test_each_forbidden_construct_is_refused_with_its_line(snippet: str, expected: str, line: int) -> None:
    text = HEADER + snippet + "\n\nclass ModelNew(nn.Module):\n    pass\n"
    check = check_code(text, "cand.py")
    assert check.forbidden, snippet
    lines = {f.line for f in check.findings if expected in f.message}
    assert lines, [f.message for f in check.findings]
    assert 2 + line in lines, ([f.message for f in check.findings], 2 + line)
    assert check.message().startswith(f"line {check.findings[0].line}: ")
    assert check.to_dict()["reason"] == REASON == "forbidden_code"


def test_the_message_names_the_construct_and_its_line() -> None:
    check = check_code(HEADER + "import os\n\n\nimport subprocess\nos.system('x')\n", "c.py")
    assert check.findings[0].message == ("line 6: import of subprocess is not allowed in a candidate "
                                         "(it runs other programs)")
    assert check.message().startswith("line 6: import of subprocess") and "1 more (line 7)" in check.message()


ALLOWED = [
    ("os_path_and_environ", "import os\np = os.path.join(os.path.dirname(__file__), 'k.cu')\n"
                            "arch = os.environ.get('TORCH_CUDA_ARCH_LIST', '')\nos.environ['X'] = '1'"),
    ("read_a_source", "src = open('kernel.cu').read()\nsrc2 = open('kernel.cu', 'r').read()"),
    ("load_inline", "from torch.utils.cpp_extension import load_inline, load\n"
                    "m = load_inline(name='x', cpp_sources='', cuda_sources='', functions=['f'])"),
    ("load_cuda", "from kernelwright.tools.raw_kernel import load_cuda"),
    ("math_typing", "import math\nfrom typing import Any\nimport functools\nfrom dataclasses import dataclass"),
    ("getattr_on_objects", "def f(self, name):\n    return getattr(self, name), getattr(torch, 'float16')"),
    ("patching_torch", "torch.allclose = lambda *a, **k: True"),  # a cheat the runtime checks catch
    ("threads", "import threading\nimport multiprocessing\nthreading.Thread(target=print)"),
    ("ctypes_pointers", "import ctypes\nctypes.string_at(0)"),  # crashes: the sandbox's to contain
    ("exec_of_literal", "exec('y = 1 + 1')"),
    ("torch_select_and_code_attr", "y = torch.select(torch.ones(2), 0, 0)\ndef f(e):\n    return e.code"),
    ("compile_and_eval_attrs", "f = torch.compile(lambda x: x)\nm = nn.Linear(2, 2).eval()\nv = torch.__version__"),
]


@pytest.mark.parametrize("snippet", [s for _, s in ALLOWED], ids=[n for n, _ in ALLOWED])
def test_what_honest_candidates_use_is_allowed(snippet: str) -> None:
    check = check_code(HEADER + snippet + "\n", "cand.py")
    assert not check.forbidden, check.message()


def test_a_syntax_error_is_left_to_the_source_check() -> None:
    assert not check_code("def (:\n", "bad.py").forbidden


def _honest_files() -> list[Path]:
    """Every honest candidate file in the repository, and the problems a translated candidate embeds."""
    cheats = sorted((FIXTURES / "cheats").glob("*.py")) + sorted((FIXTURES / "cpu_cheats").glob("*.py"))
    others = [p for p in FIXTURES.rglob("*.py") if p not in cheats]
    kb = sorted(KERNELBENCH.glob("level*/*.py")) if KERNELBENCH.is_dir() else []
    return cheats + others + suite_problems() + kb + sorted((ROOT / "examples" / "relu").glob("*.py"))


def test_every_fixture_problem_and_cheat_passes() -> None:
    """Cheats that game the GPU must still reach the runtime checks that own them, so nothing here is refused."""
    refused = {str(p): check_code(p.read_text(), p).message() for p in _honest_files()
               if check_code(p.read_text(), p).forbidden}
    assert not refused, refused
    assert len(_honest_files()) > 100


# One suite problem per kernel family the translator writes (elementwise, scan, GEMM, reduction, conv, norm,
# attention, a whole block); tests/agents/offline/test_offline_compile.py checks every candidate of the suite.
FAMILIES = ("01_gelu_tanh", "11_cumsum", "14_linear_bias_softmax", "20_conv2d_relu_avgpool", "29_rms_norm_bf16",
            "37_sdpa_padding_mask", "44_conv_bn_relu_pool", "46_transformer_layer_bf16")


def test_offline_candidates_of_each_kernel_family_pass() -> None:
    from kernelwright.agents.offline.propose import propose

    problems = [p for p in suite_problems() if p.stem in FAMILIES]
    assert len(problems) == len(FAMILIES), [p.stem for p in problems]
    refused, count = {}, 0
    for problem in problems:
        for cand in propose(problem):
            count += 1
            check = check_code(cand.source, f"{problem.name}:{cand.variant}")
            if check.forbidden:
                refused[f"{problem.name}:{cand.variant}"] = check.message()
    assert not refused, refused
    assert count >= len(problems)


def test_a_refused_candidate_goes_to_repair_with_every_finding() -> None:
    """An LLM's careless file (a build directory, nvcc by hand) is fixable: the repair prompt lists each line."""
    from kernelwright.agents.mutator import diagnostics_text, repairable
    from kernelwright.tools.verify.code_check import forbidden_code_error

    error = forbidden_code_error(HEADER + "import os\nimport subprocess\nos.makedirs('build')\n", "cand.py")
    assert error is not None and error.reason == "forbidden_code" and error.where == "cand.py:4"
    report = {"status": "rejected", "reason": error.reason, "error": error.to_dict()}
    assert diagnostics_text(report).splitlines() == [
        "line 4: import of subprocess is not allowed in a candidate (it runs other programs)",
        "line 5: use of os.makedirs is not allowed in a candidate (only PathLike, cpu_count, curdir, devnull, "
        "environ, extsep, fspath, getenv, getpid, linesep, name, pardir, path, pathsep, sep of os may be used)"]
    assert repairable({"status": "rejected", "reason": "forbidden_code"}, max_depth=1)


def test_a_refused_candidate_counts_as_never_built_in_kernelbench_tables() -> None:
    from kernelwright.eval.kernelbench.full_job import _compiled

    assert not _compiled({"status": "rejected", "reason": "forbidden_code"})
    assert _compiled({"status": "rejected", "reason": "wrong_output"})


# -- the problem's own code: carried verbatim it is trusted, only what the candidate adds is checked ----------

# A user's problem that does what no candidate may: imports json and writes a file, at module level and in a helper.
OWN_PROBLEM = '''import json

import torch
import torch.nn as nn

SETTINGS_FILE = "settings.json"
with open(SETTINGS_FILE, "w") as f:
    json.dump({"scale": 2.0}, f)


def save_report(path, data):
    with open(path, "w") as out:
        out.write(str(data))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = 2.0

    def forward(self, x):
        return torch.relu(x) * self.scale


def get_inputs():
    return [torch.randn(8, 8)]


def get_init_inputs():
    return []
'''
MODEL_NEW = '''

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.ref = Model()

    def forward(self, x):
        return self.ref(x)
'''
PLAIN_PROBLEM = "import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n    def forward(self, x):\n        return x\n"


def test_a_candidate_carrying_its_problems_own_code_passes() -> None:
    candidate = OWN_PROBLEM + MODEL_NEW
    assert check_code(candidate, "cand.py").forbidden  # unchecked against its problem: json, the file writes
    check = check_code(candidate, "cand.py", trusted=OWN_PROBLEM)
    assert not check.forbidden, check.message()


def test_the_same_code_added_by_the_candidate_is_refused() -> None:
    """The problem without those lines: the candidate brought them, so the check refuses them with their lines."""
    from kernelwright.tools.verify.code_check import forbidden_code_error

    error = forbidden_code_error(OWN_PROBLEM + MODEL_NEW, "cand.py", PLAIN_PROBLEM)
    assert error is not None and error.reason == REASON == "forbidden_code" and error.where == "cand.py:1"
    lines = [f["line"] for f in error.details["findings"]]
    assert 1 in lines and 7 in lines and 12 in lines, error.details  # import json, open(..., "w") twice


def test_a_statement_changed_from_the_problems_is_checked_as_the_candidates_own() -> None:
    changed = OWN_PROBLEM.replace('with open(SETTINGS_FILE, "w") as f:', 'with open("/root/.bashrc", "a") as f:')
    check = check_code(changed + MODEL_NEW, "cand.py", trusted=OWN_PROBLEM)
    assert [f.line for f in check.findings] == [7, 8], check.message()  # the write, and its use of the problem's json
    assert check.findings[0].construct == "open() for writing (mode 'a')" and check.findings[1].construct == "use of json"


# What the candidate's own code may not borrow from the problem's waived statements: (added snippet, message part)
BORROWING = [
    ("imported_module", "def f():\n    return json.dumps({})", "use of json"),  # as `import json` would be
    ("gadget_call", "def f(x):\n    save_report('/tmp/out', x)", "use of save_report"),  # the problem's writer
    ("steered_data", "SETTINGS_FILE = '/root/.ssh/authorized_keys'", "SETTINGS_FILE"),  # what its write writes to
    ("steered_through_global", "def f():\n    global SETTINGS_FILE\n    SETTINGS_FILE = 'x'", "SETTINGS_FILE"),
    ("replaced_builtin", "def str(value):\n    return 'import os'", "rebinding of str"),  # save_report calls str()
    ("replaced_module", "import math as json", "rebinding of json"),
]


@pytest.mark.parametrize("snippet,expected", [c[1:] for c in BORROWING], ids=[c[0] for c in BORROWING])
def test_the_candidates_own_code_may_not_borrow_what_the_problem_was_let_off_for(snippet: str, expected: str) -> None:
    candidate = OWN_PROBLEM + MODEL_NEW + "\n\n" + snippet + "\n"
    check = check_code(candidate, "cand.py", trusted=OWN_PROBLEM)
    assert check.forbidden, snippet
    first_added = OWN_PROBLEM.count("\n") + MODEL_NEW.count("\n") + 3
    found = [f for f in check.findings if expected in f.message]
    assert found and all(f.line >= first_added for f in check.findings), check.message()
    assert "the problem's own code uses it at line" in found[0].message


def test_what_the_problem_did_not_need_let_off_stays_usable() -> None:
    """Its class, torch, os.path and builtins its waived code reads: the candidate may use them as any candidate may."""
    added = "\n\ndef helper(x):\n    return torch.relu(x), str(x.shape), Model\n"
    assert not check_code(OWN_PROBLEM + MODEL_NEW + added, "cand.py", trusted=OWN_PROBLEM).forbidden


def test_the_problems_class_may_be_carried_under_another_name() -> None:
    """As the offline translator carries it (Model renamed _KwReferenceModel, every use of the name too)."""
    problem = OWN_PROBLEM.replace("        self.scale = 2.0\n", "        self.scale = 2.0\n        open('x', 'w')\n")
    renamed = problem.replace("class Model(", "class _KwReferenceModel(").replace("self.ref = Model()",
                                                                                "self.ref = _KwReferenceModel()")
    assert not check_code(renamed + MODEL_NEW.replace("Model()", "_KwReferenceModel()"), "c.py", trusted=problem).forbidden
    other = renamed.replace("open('x', 'w')", "open('/root/.profile', 'w')")  # another body under the new name
    check = check_code(other + MODEL_NEW.replace("Model()", "_KwReferenceModel()"), "c.py", trusted=problem)
    assert check.forbidden and "open() for writing" in check.message()


def test_an_offline_candidate_of_an_optimize_module_problem_passes(tmp_path: Path) -> None:
    """`kernelwright.optimize(MyModule)`: the generated problem imports json and kernelwright's module loader; the
    translator's candidate carries them, so they must pass as the problem's, while the candidate's own json does not."""
    import importlib.util
    import sys

    import torch

    from kernelwright.agents.offline.propose import propose
    from kernelwright.tools.problem.from_module import write_problem_from_module

    (tmp_path / "user_net.py").write_text("import json\nimport torch\n\n\nclass Net(torch.nn.Module):\n"
                                          "    def forward(self, x):\n        return torch.relu(x) * 2\n")
    spec = importlib.util.spec_from_file_location("kw_test_user_net", tmp_path / "user_net.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kw_test_user_net"] = module
    try:
        spec.loader.exec_module(module)
        problem = write_problem_from_module(module.Net, [torch.randn(4, 8)], tmp_path)
        candidates = propose(problem)
    finally:
        sys.modules.pop("kw_test_user_net", None)
    trusted = problem.read_text()
    assert candidates and check_code(candidates[0].source, "c.py").forbidden  # without the trust: import of json
    refused = {c.variant: check_code(c.source, "c.py", trusted=trusted).message() for c in candidates
               if check_code(c.source, "c.py", trusted=trusted).forbidden}
    assert not refused, refused
    smuggled = candidates[0].source + "\n\nLEAK = json.dumps(dict(globals()))\n"
    assert check_code(smuggled, "c.py", trusted=trusted).forbidden

"""A static pre-check of a candidate's Python, before any process imports it: imports and calls outside an
allow-list are refused as `forbidden_code`, each finding naming its construct and line.

Defence in depth, not the wall. Python is dynamic enough that a determined file can hide a call from any
static reading, and a candidate's CUDA/C++ host code (load_cuda, load_inline) can do whatever a process can;
the sandbox around the workers must hold when this check is bypassed. What the check buys: the plain ways
(shelling out, opening a socket, writing files, deleting them, loading a native library) are refused with a
clear message before any code runs, and so are the usual ways of hiding them (names built at run time for
imports and attributes, exec/eval of built strings, frame and builtins tricks, modules passed around as values).

The policy, all in this module (ALLOWED_MODULES, DENIED and the tables after them):
- imports: only the modules in ALLOWED_MODULES (torch, math, typing, ..., kernelwright's load_cuda); a few
  of them only with the attributes they list (os: paths and the environment; sys: versions and streams);
  DENIED names what is refused and why, also when reached through another module (`torch.os.system`);
- builtins: exec/eval/compile only of a literal string (itself checked), no __import__, globals, vars(),
  breakpoint or __builtins__; open() only for reading: a candidate writes no file (its builds are written by
  load_cuda / load_inline into the harness's own cache), so any write mode (w, a, x, +) or a computed mode is refused;
- attributes: frame, code and class-graph internals (f_back, f_globals, __subclasses__, ...), a module's
  own internals (torch.__dict__), and attribute names computed at run time on a module (getattr(os, name));
  patching torch (torch.allclose = ...) is left to the runtime harness_tampering check;
- threads and child processes started with threading / multiprocessing are left to the runtime check that
  owns background work (tools.sandbox.background: background_thread, background_process).

The problem's own code is trusted (`trusted`: the problem file's source): a candidate's top-level statement
identical to one of the problem's (ast.dump; a class may carry the problem's class under another name, as the
offline translator's `_KwReferenceModel` does) is not checked, so the code that `kernelwright.optimize(MyModule)`
problems are made of (json, kernelwright's module loader) passes. It runs in the candidate as it does in the
reference. Only what the candidate adds is checked, and it may not borrow what the problem was let off for: a
name a waived statement binds (`json` from its `import json`, a helper function that writes a file) is refused
in the candidate's own code, as the import itself would be, and so is a global a waived statement reads (its
data), so the candidate cannot steer it; the modules, builtins and classes involved stay usable but may not be
rebound. What is left: the candidate may build the problem's own class with arguments of its choosing, so a
class whose constructor does what a candidate may not is the sandbox's to contain (docs/SANDBOX.md).
"""

from __future__ import annotations

import ast
import builtins
import copy
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from kernelwright.tools.errors import IntegrityError, location

_V = TypeVar("_V")

REASON: Final = "forbidden_code"


@dataclass(frozen=True, slots=True)
class ModuleRule:
    """How much of an allowed module a candidate may use: every attribute but `denied` (None), or only `only`."""

    only: frozenset[str] | None = None
    denied: dict[str, str] = field(default_factory=dict)  # attribute -> why


_RUNS_PROGRAMS = "it runs other programs"
_NETWORK = "it opens network connections"
_FILES = "it changes files"
_NATIVE = "it loads native libraries"
_INTROSPECTION = "it reaches the interpreter's internals (frames, modules, builtins)"

# The whole policy. Honest candidates (the offline translator's, the KernelBench problems they embed, the
# fixtures) need only the top of this list; tests/tools/test_code_check.py runs the check over all of them.
ALLOWED_MODULES: Final[dict[str, ModuleRule]] = {
    "torch": ModuleRule(denied={"distributed": _NETWORK, "hub": "it downloads code", "load": "unpickling runs code",
                                "save": _FILES, "package": "unpickling runs code"}),
    "torch.ops": ModuleRule(denied={"load_library": _NATIVE}),
    "torch.classes": ModuleRule(denied={"load_library": _NATIVE}),
    "torch.utils.cpp_extension": ModuleRule(),  # load_inline / load: the documented way to build a kernel
    "kernelwright.tools.raw_kernel": ModuleRule(),  # load_cuda: the candidate format's raw form
    "numpy": ModuleRule(denied={n: _FILES for n in ("save", "savez", "savez_compressed", "savetxt", "memmap",
                                                    "load", "fromfile", "ctypeslib")}),
    "einops": ModuleRule(), "triton": ModuleRule(),
    "math": ModuleRule(), "cmath": ModuleRule(), "numbers": ModuleRule(), "random": ModuleRule(),
    "statistics": ModuleRule(), "fractions": ModuleRule(), "decimal": ModuleRule(),
    "typing": ModuleRule(), "typing_extensions": ModuleRule(), "__future__": ModuleRule(),
    "functools": ModuleRule(), "itertools": ModuleRule(), "collections": ModuleRule(), "dataclasses": ModuleRule(),
    "enum": ModuleRule(), "abc": ModuleRule(), "contextlib": ModuleRule(), "copy": ModuleRule(),
    "warnings": ModuleRule(), "re": ModuleRule(), "string": ModuleRule(), "textwrap": ModuleRule(),
    "time": ModuleRule(), "weakref": ModuleRule(), "queue": ModuleRule(),
    "logging": ModuleRule(denied={"FileHandler": _FILES, "handlers": _FILES, "config": _FILES,
                                  "basicConfig": "it can open a log file"}),
    "operator": ModuleRule(denied={"attrgetter": "it reads attributes named by strings",
                                   "methodcaller": "it calls methods named by strings"}),
    # background work is judged at run time (tools.sandbox.background), not here
    "threading": ModuleRule(),
    "multiprocessing": ModuleRule(denied={"connection": _NETWORK, "managers": _NETWORK, "shared_memory": _FILES}),
    "os": ModuleRule(only=frozenset({"path", "environ", "getenv", "cpu_count", "getpid", "sep", "pathsep",
                                     "linesep", "name", "fspath", "PathLike", "curdir", "pardir", "extsep",
                                     "devnull"})),
    "os.path": ModuleRule(),
    "sys": ModuleRule(only=frozenset({"version", "version_info", "hexversion", "platform", "maxsize", "float_info",
                                      "int_info", "byteorder", "implementation", "stdout", "stderr",
                                      "getrecursionlimit", "setrecursionlimit", "executable"})),
    # ctypes pointers and types, not its library loaders
    "ctypes": ModuleRule(denied={n: _NATIVE for n in ("CDLL", "PyDLL", "cdll", "pydll", "LibraryLoader",
                                                      "pythonapi", "util", "WinDLL", "windll", "OleDLL", "oledll",
                                                      "_dlopen", "macholib")}),
}

DENIED: Final[dict[str, str]] = {  # module -> why (also as an attribute of another module: torch.os, np.ctypeslib)
    **{m: _RUNS_PROGRAMS for m in ("subprocess", "pty", "commands", "popen2", "posix", "nt", "_posixsubprocess")},
    **{m: _NETWORK for m in ("socket", "_socket", "ssl", "http", "urllib", "urllib3", "requests", "httpx", "aiohttp",
                             "asyncio", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc",
                             "socketserver", "websockets", "websocket", "paramiko", "selectors", "select")},
    **{m: _FILES for m in ("shutil", "tempfile", "pathlib", "io", "_io", "fileinput", "glob", "zipfile", "tarfile",
                           "sqlite3", "dbm", "shelve", "mmap", "fcntl")},
    **{m: _NATIVE for m in ("_ctypes", "cffi", "ctypes.util")},
    **{m: _INTROSPECTION for m in ("importlib", "imp", "inspect", "gc", "builtins", "__builtin__", "code", "codeop",
                                   "runpy", "pkgutil", "zipimport", "sysconfig", "site", "traceback", "dis",
                                   "types", "pickle", "_pickle", "marshal", "dill", "cloudpickle")},
    **{m: "it can stop or signal other processes" for m in ("signal", "resource", "atexit")},
}
# Modules that other modules re-export as attributes (torch.os, np.ctypeslib's ctypes): reaching them that way
# escapes their own limits. A narrow list, as these names are checked on any object (`x.os`), and torch.select
# or a `.code` attribute must stay usable.
_REACHED_THROUGH: Final = frozenset({"os", "sys", "subprocess", "socket", "shutil", "importlib", "builtins",
                                     "ctypes", "inspect", "gc", "pickle", "pathlib", "tempfile", "urllib", "http",
                                     "requests", "asyncio"})

_EXEC_BUILTINS: Final = frozenset({"exec", "eval", "compile"})
_FORBIDDEN_BUILTINS: Final[dict[str, str]] = {
    "__import__": "it imports modules by computed names", "globals": _INTROSPECTION, "locals": _INTROSPECTION,
    "breakpoint": "it starts a debugger", "__builtins__": _INTROSPECTION, "__loader__": _INTROSPECTION,
    "__spec__": _INTROSPECTION,
}
_FORBIDDEN_ATTRIBUTES: Final[dict[str, str]] = {
    **{a: "a frame trick" for a in ("f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame",
                                    "gi_frame", "cr_frame", "ag_frame", "_getframe", "currentframe")},
    **{a: _INTROSPECTION for a in ("__globals__", "__builtins__", "__subclasses__", "__code__", "__loader__",
                                   "__import__", "__getattribute__", "get_referrers", "get_referents",
                                   "get_objects")},
}
_MODULE_DUNDERS: Final = frozenset({"__version__", "__name__", "__file__", "__doc__"})  # the rest: internals
_WRITE_MODE_CHARS: Final = frozenset("wax+")


@dataclass(frozen=True, slots=True)
class Finding:
    """One forbidden construct: where, what, and why."""

    line: int
    column: int
    construct: str  # what the file does, in words: "import of subprocess", "call of os.system"
    why: str = ""

    @property
    def message(self) -> str:
        return f"line {self.line}: {self.construct} is not allowed in a candidate" + (f" ({self.why})" if self.why else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """The pre-check's verdict on one file: its findings in line order (none: it may be loaded)."""

    findings: tuple[Finding, ...]

    @property
    def forbidden(self) -> bool:
        return bool(self.findings)

    def message(self) -> str:
        if not self.findings:
            return "no forbidden code"
        first, rest = self.findings[0], self.findings[1:]
        more = f"; and {len(rest)} more (line{'s' if len(rest) > 1 else ''} " \
               f"{', '.join(str(f.line) for f in rest[:8])}{', ...' if len(rest) > 8 else ''})" if rest else ""
        return first.message + more

    def to_dict(self) -> dict[str, Any]:
        return {"reason": REASON, "findings": [f.to_dict() for f in self.findings]}


def check_code(text: str, filename: str | Path = "<candidate>", trusted: str | None = None) -> CodeCheck:
    """Check candidate source without running it. A syntax error is not this check's business (check_source
    reports it): such a file gives no findings here. `trusted`: the problem's source, whose statements the
    candidate may carry unchecked (see the module's docstring)."""
    try:
        tree = ast.parse(text, filename=str(filename))
    except (SyntaxError, ValueError):
        return CodeCheck(())
    checker = _Checker(tree)
    checker.trusted = _carried_statements(tree, trusted)
    unique = {(f.line, f.column): f for f in reversed(checker.run())}  # an a.b.c chain: the outermost
    return CodeCheck(tuple(sorted(unique.values(), key=lambda f: (f.line, f.column))))


def forbidden_code_error(text: str, path: str | Path, trusted: str | None = None) -> IntegrityError | None:
    """The harness's rejection of a file the pre-check refuses (reason forbidden_code, `where` its first finding's
    file:line, every finding in details), or None when it may be loaded. `trusted`: the problem's source."""
    check = check_code(text, path, trusted)
    if not check.forbidden:
        return None
    return IntegrityError(REASON, check.message(), where=location(path, check.findings[0].line),
                          details=check.to_dict())


# ------------------------------------------------------------------------------- the problem's own code

_BUILTIN_NAMES: Final = frozenset(dir(builtins))
_MAX_RENAMED_CLASSES: Final = 8  # a candidate's new classes tried as a renamed problem class (bounded work)


def _carried_statements(candidate: ast.Module, problem_text: str | None) -> set[int]:
    """id() of the candidate's top-level statements that are the problem's own, verbatim: identical ast.dump, or
    the problem's tree with one of its classes renamed to a class only the candidate defines (the class and
    every name of it, as agents.offline.codegen_host renames Model)."""
    if not problem_text:
        return set()
    try:
        problem = ast.parse(problem_text)
    except (SyntaxError, ValueError):
        return set()
    known = {ast.dump(node) for node in problem.body}
    theirs = {n.name for n in problem.body if isinstance(n, ast.ClassDef)}
    new = [n.name for n in candidate.body if isinstance(n, ast.ClassDef) and n.name not in theirs]
    for old in theirs:
        for name in new[:_MAX_RENAMED_CLASSES]:
            known |= {ast.dump(node) for node in _renamed(problem, old, name).body}
    return {id(node) for node in candidate.body if ast.dump(node) in known}


def _renamed(tree: ast.Module, old: str, new: str) -> ast.Module:
    tree = copy.deepcopy(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == old:
            node.name = new
        elif isinstance(node, ast.Name) and node.id == old:
            node.id = new
    return tree


def _bound_names(node: ast.stmt) -> set[str]:
    """Module-level names a top-level statement binds (its function and class bodies' locals excluded, their
    `global` names included)."""
    names = {n for sub in ast.walk(node) if isinstance(sub, ast.Global) for n in sub.names}
    for sub in _module_scope(node):
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in sub.names if a.name != "*"}
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
    return names


def _free_names(node: ast.stmt) -> set[str]:
    """The names a statement reads that nothing inside it binds: the globals and builtins it depends on (a name
    bound anywhere inside counts as its own, a slight under-count that only spares the candidate)."""
    loads: set[str] = set()
    bound: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            (loads if isinstance(sub.ctx, ast.Load) else bound).add(sub.id)
        elif isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            bound |= {a.asname or a.name.split(".")[0] for a in sub.names}
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            bound.add(sub.name)
    return loads - bound


def _module_scope(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and what it holds, not descending into function, lambda or class bodies (their own scopes)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)) \
                and child not in getattr(node, "decorator_list", ()) and child not in getattr(node, "bases", ()):
            continue
        yield from _module_scope(child)


# ------------------------------------------------------------------------------------------- the walk

def _module_rule(dotted: str) -> tuple[str, ModuleRule] | None:
    """The longest allowed module that `dotted` is, or is inside of: (its name, its rule)."""
    return _longest_prefix(dotted, ALLOWED_MODULES)


def _denied_module(dotted: str) -> tuple[str, str] | None:
    """The denied module `dotted` is or is inside of, with why."""
    return _longest_prefix(dotted, DENIED)


def _longest_prefix(dotted: str, table: Mapping[str, _V]) -> tuple[str, _V] | None:
    """The longest dotted prefix of `dotted` (itself included) that `table` names, with its entry."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in table:
            return name, table[name]
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, line_offset: int = 0):
        self.tree = tree
        self.offset = line_offset
        self.findings: list[Finding] = []
        self.aliases: dict[str, str] = {}  # local name -> the dotted module path (or module attribute) it names
        self._called: set[int] = set()  # id() of Name/Attribute nodes in a call's function position
        self._bases: set[int] = set()  # id() of nodes that are the object of an attribute access
        self.trusted: set[int] = set()  # id() of top-level statements carried verbatim from the problem
        self._borrowed: dict[str, str] = {}  # names the candidate's own code may not use -> why
        self._pinned: dict[str, str] = {}  # modules and builtins it may use but not rebind -> why

    def run(self) -> list[Finding]:
        self._collect_aliases()
        if not self.trusted:
            self.visit(self.tree)
            return self.findings
        for node in self.tree.body:  # the problem's statements first: what they were let off for
            if id(node) in self.trusted:
                self._waive(node)
        for node in self.tree.body:
            if id(node) in self.trusted:
                continue
            for name in sorted(_bound_names(node) & (self._borrowed.keys() | self._pinned.keys())):
                self._add(node, f"rebinding of {name}", self._borrowed.get(name) or self._pinned[name])
            self.visit(node)
        return self.findings

    def _waive(self, node: ast.stmt) -> None:
        """A statement of the problem's own: unchecked; where the check would refuse it, the names it binds (a
        refused import's module) and the variables it reads (its data) are off limits to the candidate's code."""
        probe = _Checker(self.tree)
        probe.aliases = self.aliases
        probe.visit(node)
        if not probe.findings:
            return
        why = f"the problem's own code uses it at line {node.lineno} ({probe.findings[0].construct}), " \
              "which a candidate's own code may not"
        for name in _bound_names(node):
            # the problem's class stays usable: a candidate builds the reference module to own its parameters
            (self._pinned if isinstance(node, ast.ClassDef) and name == node.name else self._borrowed).setdefault(name, why)
        for name in _free_names(node):
            if name in self.aliases or name in _BUILTIN_NAMES:  # still usable, but not to be replaced
                self._pinned.setdefault(name, why)
            else:
                self._borrowed.setdefault(name, why)

    def _add(self, node: ast.AST, construct: str, why: str = "") -> None:
        self.findings.append(Finding(getattr(node, "lineno", 0) + self.offset, getattr(node, "col_offset", 0),
                                     construct, why))

    # -- aliases: every name a module (or a module's attribute) is bound to, file-wide -----------------
    def _collect_aliases(self) -> None:
        for _ in range(3):  # x = os; y = x: a few rounds settle chains of plain assignments
            for node in ast.walk(self.tree):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for a in node.names:
                        if a.name != "*":
                            self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                    dotted = self._dotted(node.value)
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if dotted is not None:
                        for t in targets:
                            if isinstance(t, ast.Name):
                                self.aliases[t.id] = dotted

    def _dotted(self, node: ast.AST) -> str | None:
        """The module path an expression names (`os.path` for `os.path` when os is imported), or None."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return f"{base}.{node.attr}" if base is not None else None
        return None

    # -- imports ---------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._check_module(node, a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._add(node, f"relative import (from {'.' * node.level}{node.module or ''})",
                      "a candidate is one file")
            return
        module = node.module or ""
        if not self._check_module(node, module):
            return
        for a in node.names:
            if a.name == "*":
                rule = _module_rule(module)
                if rule is not None and (rule[1].only is not None or rule[1].denied):
                    self._add(node, f"`from {module} import *`", "it would bring in names this check refuses")
            else:
                self._check_name(node, f"{module}.{a.name}", f"import of {module}.{a.name}")

    def _check_module(self, node: ast.AST, module: str) -> bool:
        """Refuse an import of a module that is not allowed; True when it is."""
        denied = _denied_module(module)
        if denied is not None:
            self._add(node, f"import of {module}", denied[1])
            return False
        rule = _module_rule(module)
        if rule is None:
            self._add(node, f"import of {module}", "not on the candidate allow-list: "
                      "torch, math, numpy, einops, triton, typing, functools, dataclasses, os.path, ...")
            return False
        return self._check_name(node, module, f"import of {module}")

    def _check_name(self, node: ast.AST, dotted: str, construct: str) -> bool:
        """A dotted name inside an allowed module: refused when a part of it is denied there, or is a denied
        module reached through another (torch.os)."""
        parts = dotted.split(".")
        for i in range(1, len(parts)):
            if parts[i] in _REACHED_THROUGH and ".".join(parts[:i + 1]) not in ALLOWED_MODULES:
                self._add(node, construct, f"it reaches the {parts[i]} module through {'.'.join(parts[:i])}")
                return False
        found = _module_rule(dotted)
        if found is None:
            return True
        name, rule = found
        rest = dotted[len(name) + 1:].split(".")[0] if dotted != name else ""
        if rest and rule.only is not None and rest not in rule.only:
            self._add(node, construct, f"only {', '.join(sorted(rule.only))} of {name} may be used")
            return False
        if rest in rule.denied:
            self._add(node, construct, rule.denied[rest])
            return False
        return True

    # -- names, attributes, calls ------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        self._called.add(id(node.func))
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in _EXEC_BUILTINS:
                self._check_exec(node, func.id)
            elif func.id == "open":
                self._check_open(node)
            elif func.id in ("getattr", "setattr", "delattr") and len(node.args) >= 2:
                self._check_getattr(node, func.id)
            elif func.id == "vars" and (not node.args or self._dotted(node.args[0]) is not None):
                self._add(node, "vars() of a module or the caller", _INTROSPECTION)
        self.generic_visit(node)

    def _check_exec(self, node: ast.Call, name: str) -> None:
        arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "source"), None)
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            self._add(node, f"{name}() of a string built at run time", "the code it runs cannot be checked")
            return
        try:
            inner = ast.parse(arg.value, mode="exec")
        except SyntaxError:
            return  # it fails when it runs
        nested = _Checker(inner, line_offset=node.lineno - 1)
        nested.aliases = dict(self.aliases)
        for f in nested.run():
            self.findings.append(Finding(f.line, f.column, f"{f.construct} inside {name}()", f.why))

    def _check_open(self, node: ast.Call) -> None:
        mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
        if mode is None:
            return  # read-only text
        if not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)):
            self._add(node, "open() with a mode computed at run time", "a candidate may only read files")
        elif _WRITE_MODE_CHARS & set(mode.value):
            self._add(node, f"open() for writing (mode {mode.value!r})", "a candidate writes no file; its builds "
                      "go to the harness's cache through load_cuda / load_inline")

    def _check_getattr(self, node: ast.Call, name: str) -> None:
        obj, attr = node.args[0], node.args[1]
        base = self._dotted(obj)
        if isinstance(attr, ast.Constant) and isinstance(attr.value, str):
            self._bases.add(id(obj))  # getattr(torch, "float16") is torch.float16
            self._check_attribute(node, attr.value, base, f"{name}({_short(obj)}, {attr.value!r})")
        elif base is not None:
            self._add(node, f"{name}() on {base} with a name computed at run time",
                      "attribute names built at run time cannot be checked")
        if name in ("setattr", "delattr") and base is not None and base.split(".")[0] in ("builtins", "__builtins__"):
            self._add(node, f"{name}() on the builtins", _INTROSPECTION)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._bases.add(id(node.value))
        base = self._dotted(node.value)
        self._check_attribute(node, node.attr, base, f"use of {base or _short(node.value)}.{node.attr}")
        self.generic_visit(node)

    def _check_attribute(self, node: ast.AST, attr: str, base: str | None, construct: str) -> None:
        if attr in _FORBIDDEN_ATTRIBUTES:
            self._add(node, construct, _FORBIDDEN_ATTRIBUTES[attr])
        elif base is not None and attr.startswith("__") and attr not in _MODULE_DUNDERS:
            self._add(node, construct, "a module's internals (torch.__dict__['os'] would reach any module)")
        elif base is not None:
            self._check_name(node, f"{base}.{attr}", construct)
        elif attr in _REACHED_THROUGH:
            self._add(node, construct, f"it reaches the {attr} module through another object")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self._borrowed:
            self._add(node, f"use of {node.id}", self._borrowed[node.id])
        elif node.id in _FORBIDDEN_BUILTINS:
            self._add(node, f"use of {node.id}", _FORBIDDEN_BUILTINS[node.id])
        elif node.id in _EXEC_BUILTINS and id(node) not in self._called:
            self._add(node, f"use of {node.id} as a value", "the code it runs cannot be checked")
        elif node.id == "open" and id(node) not in self._called:
            self._add(node, "use of open as a value", "its mode cannot be checked")
        elif (module := self.aliases.get(node.id)) is not None and isinstance(node.ctx, ast.Load) \
                and id(node) not in self._bases and id(node) not in self._called and _restricted(module):
            self._add(node, f"use of the module {module} as a value", "what is reached through it cannot be checked")



def _short(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


def _restricted(module: str) -> bool:
    """A module whose use this check limits: passing it around as a value would escape the limits."""
    found = _module_rule(module)
    return found is not None and found[0] == module and (found[1].only is not None or bool(found[1].denied))

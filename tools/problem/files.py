"""Problem and candidate files: static checks (AST, no code run) and loading in a worker.

A problem is a KernelBench-style file: `class Model(nn.Module)`, `get_inputs()`,
`get_init_inputs()`. A candidate defines `class ModelNew` with Model's signature.
Static checks run in the harness and never execute the file; importing happens
only inside sandbox workers.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from kernelwright.tools.errors import InputFileError, LoadError, ProblemError, location

FileRole = Literal["problem", "candidate"]
_REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "problem": (("class", "Model"), ("function", "get_inputs"), ("function", "get_init_inputs")),
    "candidate": (("class", "ModelNew"),),
}


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A problem or candidate file that passed the static checks."""

    path: Path
    role: FileRole
    text: str
    sha256: str
    forward_params: tuple[str, ...] | None  # forward's parameters after self, when statically visible

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "role": self.role, "sha256": self.sha256,
                "forward_params": list(self.forward_params) if self.forward_params is not None else None}


def check_source(path: str | Path, role: FileRole) -> SourceFile:
    """Parse without executing; raise ProblemError naming the file, line and what is missing."""
    path = Path(path)
    text = read_source(path, role)
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise ProblemError(f"syntax error in {role} file: {exc.msg}",
                           where=location(path, exc.lineno, exc.offset or None),
                           details={"line": exc.lineno, "text": (exc.text or "").rstrip()}) from None
    top = {node.name: node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    for kind, name in _REQUIRED[role]:
        node = top.get(name)
        want = ast.ClassDef if kind == "class" else ast.FunctionDef
        if node is None and not _assigned_at_top(tree, name):
            raise ProblemError(f"{role} file defines no top-level {kind} `{name}`", where=str(path),
                               details={"missing": name})
        if node is not None and not isinstance(node, want):
            raise ProblemError(f"`{name}` must be a {kind}", where=f"{path}:{node.lineno}")
    cls_name = "Model" if role == "problem" else "ModelNew"
    cls = top.get(cls_name)
    params = _forward_params(cls) if isinstance(cls, ast.ClassDef) else None
    if (role == "problem" and isinstance(cls, ast.ClassDef) and params is None and not _has_method(cls, "forward")
            and all(ast.unparse(b) in ("nn.Module", "torch.nn.Module", "Module") for b in cls.bases)):
        raise ProblemError("class Model has no forward method", where=f"{path}:{cls.lineno}")
    return SourceFile(path.resolve(), role, text, hashlib.sha256(text.encode()).hexdigest(), params)


def read_source(path: str | Path, role: FileRole) -> str:
    """A problem or candidate file's text, decoded as Python decodes source (UTF-8 unless a coding line says
    otherwise). InputFileError naming the file (and line) when it is no Python source at all: missing, a
    directory or other non-regular file, unreadable, binary, undecodable or empty."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"the {role} path is a directory, not a Python file", where=str(path))
    if path.exists() and not path.is_file():
        raise InputFileError(f"the {role} path is not a regular file", where=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {role} file: {exc.strerror or exc}", where=str(path)) from None
    if b"\0" in data:
        raise InputFileError(f"{role} file is not Python source text: it contains a NUL byte (a binary file?)",
                             where=location(path, data.count(b"\n", 0, data.index(b"\0")) + 1))
    text = _decode_source(data, path, role)
    if not text.strip():
        raise InputFileError(f"{role} file is empty", where=str(path))
    return text


def _decode_source(data: bytes, path: Path, role: FileRole) -> str:
    try:
        return importlib.util.decode_source(data)
    except UnicodeDecodeError as exc:
        bad = exc
    except SyntaxError as exc:  # an unknown coding line, or first lines that are not UTF-8 (then name the byte)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as utf8_exc:
            bad = utf8_exc
        else:
            raise InputFileError(f"{role} file has an unusable coding line: {exc.msg}",
                                 where=location(path, exc.lineno)) from None
    raise InputFileError(f"{role} file is not {bad.encoding.upper()} text: byte 0x{data[bad.start]:02x} cannot be "
                         "decoded (a binary file, or text saved in another encoding without a coding line?)",
                         where=location(path, data.count(b"\n", 0, bad.start) + 1)) from None


def _assigned_at_top(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == name for a in node.names):
            return True
    return False


def _has_method(cls: ast.ClassDef, name: str) -> bool:
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in cls.body)


def _forward_params(cls: ast.ClassDef) -> tuple[str, ...] | None:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "forward":
            args = node.args
            if args.vararg is not None:
                return None  # *args: arity not statically known
            names = [a.arg for a in (*args.posonlyargs, *args.args)]
            return tuple(names[1:])
    return None


# ---------------------------------------------------------------- runtime (worker side)

def import_file(source: SourceFile, module_name: str) -> ModuleType:
    """Import a checked file as a fresh module; errors name the file and line that raised."""
    spec = importlib.util.spec_from_file_location(module_name, source.path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {source.role} file", where=str(source.path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        if hasattr(exc, "to_dict") and hasattr(exc, "kind"):
            raise  # a CompileError from building the candidate's CUDA stays typed
        raise LoadError(f"importing the {source.role} file raised {type(exc).__name__}: {exc}",
                        where=_user_frame(exc, source.path), details={"traceback": _tb(exc)}) from None
    return module


def call_user(fn: Any, what: str, source: SourceFile, *args: Any) -> Any:
    """Call problem/candidate code, turning any exception into a LoadError that names it."""
    try:
        return fn(*args)
    except Exception as exc:
        if _device_failure(exc):
            raise  # out of GPU memory (does_not_fit) or a sticky CUDA error (the worker must exit): not the file's bug
        raise LoadError(f"{what} raised {type(exc).__name__}: {exc}", where=_user_frame(exc, source.path),
                        details={"traceback": _tb(exc)}) from None


def check_arity(module_cls: type[Any], n_inputs: int, source: SourceFile, cls_name: str) -> None:
    """forward must accept as many positional inputs as get_inputs() returns."""
    try:
        sig = inspect.signature(module_cls.forward)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    if not (len(required) <= n_inputs <= len(positional)):
        line = getattr(getattr(module_cls.forward, "__code__", None), "co_firstlineno", None)
        raise ProblemError(
            f"{cls_name}.forward takes {len(required)}" + (f"-{len(positional)}" if len(positional) != len(required) else "")
            + f" inputs but get_inputs() returns {n_inputs}",
            where=location(source.path, line))


def _device_failure(exc: BaseException) -> bool:
    text = str(exc)
    return (type(exc).__name__ in ("OutOfMemoryError", "AcceleratorError") or "CUDA error" in text
            or "cudaError" in text)


def _user_frame(exc: BaseException, path: Path) -> str:
    """file:line of the deepest traceback frame inside the user's file."""
    where = str(path)
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            where = location(path, frame.lineno)
    return where


def _tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-6000:]

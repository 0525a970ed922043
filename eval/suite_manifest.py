"""kernelwright's own benchmark suite: the problem files under eval/suite/ and their manifest.

The suite is package data (like eval/problems/), not importable modules: problem files are loaded by
path, in sandbox workers, like any user problem. The manifest says what each file exercises so runs
can be sliced by category or dtype.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from kernelwright.tools.errors import ProblemError

Category = Literal["single_op", "fused_chain", "norm_reduction", "attention", "model"]
SuiteDtype = Literal["float32", "bfloat16"]
SUITE_DIR = Path(__file__).resolve().parent / "suite"
MANIFEST = SUITE_DIR / "manifest.json"


@dataclass(frozen=True, slots=True)
class SuiteProblem:
    """One manifest entry; `path` is the problem file next to the manifest."""

    name: str  # the file's stem, e.g. 01_gelu_tanh
    path: Path
    category: Category
    dtype: SuiteDtype  # the dtype of the main inputs and outputs (a cast chain may use others inside)
    description: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def load_suite(manifest: Path = MANIFEST, *, category: Category | None = None,
               dtype: SuiteDtype | None = None) -> tuple[SuiteProblem, ...]:
    """The manifest's problems in file order, optionally only one category or dtype.

    Raises ProblemError naming the manifest and the entry when an entry is malformed or its file is missing.
    """
    try:
        raw = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProblemError(f"cannot read the suite manifest: {exc}", where=str(manifest)) from None
    entries = raw.get("problems") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise ProblemError("suite manifest has no `problems` list", where=str(manifest))
    problems = tuple(_entry(manifest, i, e) for i, e in enumerate(entries))
    return tuple(p for p in problems
                 if (category is None or p.category == category) and (dtype is None or p.dtype == dtype))


def _entry(manifest: Path, index: int, entry: Any) -> SuiteProblem:
    where = f"{manifest}: problems[{index}]"
    if not isinstance(entry, dict):
        raise ProblemError("manifest entry is not an object", where=where)
    missing = [k for k in ("file", "category", "dtype", "description") if not isinstance(entry.get(k), str)]
    if missing:
        raise ProblemError(f"manifest entry lacks string field(s) {missing}", where=where)
    if entry["category"] not in get_args(Category):
        raise ProblemError(f"unknown category {entry['category']!r} (one of {get_args(Category)})", where=where)
    if entry["dtype"] not in get_args(SuiteDtype):
        raise ProblemError(f"unknown dtype {entry['dtype']!r} (one of {get_args(SuiteDtype)})", where=where)
    path = manifest.parent / entry["file"]
    if not path.is_file():
        raise ProblemError(f"manifest lists {entry['file']!r} but there is no such file", where=where)
    return SuiteProblem(path.stem, path, entry["category"], entry["dtype"], entry["description"])

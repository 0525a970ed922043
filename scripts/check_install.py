"""Check that a package's own dependency tree is installed and satisfied; nothing else.

    python scripts/check_install.py 'kernelwright[dev]'

setup.sh installs with `pip install --no-warn-conflicts` because the venv sees the system's
packages (--system-site-packages, to reuse a system torch) and pip would otherwise report every
conflict among those unrelated packages as an ERROR after a good install. This check takes the
place of pip's for what we install: each requirement reachable from the named package (markers
and extras applied) must be installed at a version its specifier allows. Exit 1 listing each
unmet requirement, exit 0 silently.
"""

from __future__ import annotations

import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # packaging comes with our dependencies; pip's copy serves a tree missing it
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]


def unmet_requirements(root: str) -> list[str]:
    """Each requirement in `root`'s dependency tree (e.g. 'kernelwright[dev]') that is missing or at a version
    its specifier excludes, as one line."""
    problems: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    start = Requirement(root)
    todo: list[tuple[str, frozenset[str], str]] = [(start.name, frozenset(start.extras), "setup")]
    while todo:
        name, extras, wanted_by = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{wanted_by} requires {name}, which is not installed")
            continue
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (*extras, "")):
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{dist.metadata['Name']} requires {req}, which is not installed")
                continue
            if not req.specifier.contains(have, prereleases=True):
                problems.append(f"{dist.metadata['Name']} requires {req}, but {req.name} {have} is installed")
                continue
            todo.append((req.name, frozenset(req.extras), dist.metadata["Name"]))
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_install.py 'PACKAGE[EXTRAS]'", file=sys.stderr)
        return 2
    problems = unmet_requirements(argv[0])
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"error: {argv[0]} is installed with {len(problems)} unmet requirement(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Where the archive lives by default. Its own module, free of chromadb, so code that only needs the path
(the jail hides it from candidates) runs where chromadb is not installed, e.g. a GPU machine without the archive."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "KERNELWRIGHT_ARCHIVE"


def default_archive_path(env: Mapping[str, str] | None = None) -> Path:
    """$KERNELWRIGHT_ARCHIVE, else the user cache dir (~/.cache/kernelwright/archive on Linux)."""
    env = os.environ if env is None else env
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("kernelwright")) / "archive"

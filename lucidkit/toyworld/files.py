"""Atomic folder writes: build a folder under a temporary sibling name, then rename it into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def staging_folder(folder: str | Path) -> Path:
    """A fresh empty sibling of ``folder`` (same file system, so the final rename is atomic)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)
    return tmp


def publish(tmp: Path, folder: str | Path) -> Path:
    """Make ``tmp``'s files world-readable and move ``tmp`` to ``folder``, replacing what was there."""
    folder = Path(folder)
    for path in tmp.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        shutil.rmtree(old)
    else:
        os.replace(tmp, folder)
    return folder

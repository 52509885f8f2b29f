"""File operations with the guarantees envplane's recovery relies on: atomic replace, atomic
link switch, removal that tolerates what is already gone."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def point_link(link: Path, target: Path) -> None:
    """Atomically (re)point a relative symlink at ``target``."""
    relative = os.path.relpath(target, link.parent)
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(relative, tmp)
    os.replace(tmp, link)


def remove_tree(path: Path) -> None:
    """Remove a file, a link (not what it points at) or a folder; nothing there is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def prune_empty_parents(path: Path, stop: Path) -> None:
    """Remove empty folders from ``path`` up to (not including) ``stop``."""
    current = path
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent

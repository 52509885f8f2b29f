"""Where things live under the data directory. Nothing else builds these paths.

::

    <data_dir>/
      envplane.db                       metadata, audit, events (default SQLite)
      projects/<wf>/<node>/<ver|_>/     one folder per env: pyproject.toml, uv.lock,
                                        .venv -> ../../../../builds/<build_id>  (relative link)
      builds/<build_id>/                an immutable venv, content-addressed by lock + interpreter;
                                        complete only once it holds COMPLETE_MARKER
      tmp/                              staging for in-flight operations and each uv process's
                                        private TMPDIR (see uv.py), wiped at start-up
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from envplane.environments.identity import EnvId

COMPLETE_MARKER = ".envplane-build-complete"
PYPROJECT = "pyproject.toml"
LOCKFILE = "uv.lock"
VENV_LINK = ".venv"


class Layout:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.resolve()
        self.projects = self.root / "projects"
        self.builds = self.root / "builds"
        self.tmp = self.root / "tmp"

    def create_dirs(self) -> None:
        for path in (self.root, self.projects, self.builds, self.tmp):
            path.mkdir(parents=True, exist_ok=True)

    def project_dir(self, env: EnvId) -> Path:
        return self.projects.joinpath(*env.folder_parts)

    def venv_link(self, env: EnvId) -> Path:
        return self.project_dir(env) / VENV_LINK

    def python_executable(self, env: EnvId) -> Path:
        return self.venv_link(env) / "bin" / "python"

    def build_dir(self, build_id: str) -> Path:
        return self.builds / build_id

    def is_complete(self, build_id: str) -> bool:
        return (self.build_dir(build_id) / COMPLETE_MARKER).exists()

    def staging_dir(self, purpose: str) -> Path:
        path = self.tmp / f"{purpose}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def project_dirs_on_disk(self) -> list[EnvId]:
        """Every ``projects/<wf>/<node>/<ver>`` folder (ids are not validated here)."""
        found: list[EnvId] = []
        if not self.projects.is_dir():
            return found
        for wf in self.projects.iterdir():
            for node in wf.iterdir() if wf.is_dir() else ():
                for ver in node.iterdir() if node.is_dir() else ():
                    version = "" if ver.name == "_" else ver.name
                    found.append(EnvId(wf.name, node.name, version))
        return found


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

"""Where environments live in the data dir (the shared part, ``tmp/`` and ``run/``, is
``core.datadir``)::

    <data_dir>/
      projects/<wf>/<node>/<ver|_>/     one folder per env: pyproject.toml, uv.lock,
                                        .venv -> ../../../../builds/<build_id>  (relative link)
      builds/<build_id>/                an immutable venv, content-addressed by lock + interpreter;
                                        complete only once it holds COMPLETE_MARKER
"""

from __future__ import annotations

import os
from pathlib import Path

from envplane.core.datadir import DataDir
from envplane.environments.identity import NO_VERSION_FOLDER, EnvId

COMPLETE_MARKER = ".envplane-build-complete"
PYPROJECT = "pyproject.toml"
LOCKFILE = "uv.lock"
VENV_LINK = ".venv"


class Layout:
    def __init__(self, data_dir: DataDir) -> None:
        self.data_dir = data_dir
        self.root = data_dir.root
        self.projects = self.root / "projects"
        self.builds = self.root / "builds"
        self._projects = str(self.projects)

    def create_dirs(self) -> None:
        self.data_dir.create()
        for path in (self.projects, self.builds):
            path.mkdir(parents=True, exist_ok=True)

    def project_dir(self, env: EnvId) -> Path:
        return self.projects.joinpath(*env.folder_parts)

    def project_path(self, env: EnvId) -> str:
        """:meth:`project_dir` as a string, for the paths every answer renders."""
        return os.path.join(self._projects, *env.folder_parts)

    def venv_link(self, env: EnvId) -> Path:
        return self.project_dir(env) / VENV_LINK

    def python_executable(self, env: EnvId) -> Path:
        return self.venv_link(env) / "bin" / "python"

    def build_dir(self, build_id: str) -> Path:
        return self.builds / build_id

    def is_complete(self, build_id: str) -> bool:
        return (self.build_dir(build_id) / COMPLETE_MARKER).exists()

    def staging_dir(self, purpose: str) -> Path:
        return self.data_dir.staging_dir(purpose)

    def project_dirs_on_disk(self) -> list[EnvId]:
        """Every ``projects/<wf>/<node>/<ver>`` folder (ids are not validated here)."""
        found: list[EnvId] = []
        if not self.projects.is_dir():
            return found
        for wf in self.projects.iterdir():
            for node in wf.iterdir() if wf.is_dir() else ():
                for ver in node.iterdir() if node.is_dir() else ():
                    version = "" if ver.name == NO_VERSION_FOLDER else ver.name
                    found.append(EnvId(wf.name, node.name, version))
        return found

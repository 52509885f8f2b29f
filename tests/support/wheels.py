"""Build tiny, valid wheels on the fly so tests never need the live package index.

A wheel is a zip with a module, ``METADATA``, ``WHEEL`` and a ``RECORD`` listing every
file with its sha256; nothing else is needed for uv (or pip) to install it.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WheelSpec:
    """One distribution release: ``name==version`` with optional requirements."""

    name: str
    version: str
    requires: tuple[str, ...] = ()
    module_source: str | None = None
    console_scripts: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(spec: WheelSpec, out_dir: Path) -> Path:
    """Write ``spec`` as a pure-Python wheel into ``out_dir`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = f"{spec.module}-{spec.version}"
    source = spec.module_source or f'__version__ = "{spec.version}"\n'
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {spec.name}",
        f"Version: {spec.version}",
        *(f"Requires-Dist: {req}" for req in spec.requires),
    ]
    files: dict[str, bytes] = {
        f"{spec.module}/__init__.py": source.encode(),
        f"{dist}.dist-info/METADATA": ("\n".join(metadata) + "\n").encode(),
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: envplane-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ).encode(),
    }
    if spec.console_scripts:
        lines = ["[console_scripts]", *(f"{k} = {v}" for k, v in spec.console_scripts.items())]
        files[f"{dist}.dist-info/entry_points.txt"] = ("\n".join(lines) + "\n").encode()
    record_name = f"{dist}.dist-info/RECORD"
    record = [_record_line(p, d) for p, d in files.items()] + [f"{record_name},,"]
    files[record_name] = ("\n".join(record) + "\n").encode()
    wheel_path = out_dir / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel_path

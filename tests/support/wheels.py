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
            b"Wheel-Version: 1.0\nGenerator: envplane-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
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


_SLOW_BACKEND = '''
"""A PEP 517 backend that sleeps before building: makes an operation slow on purpose."""
import base64, hashlib, os, time, zipfile

NAME, VERSION, SECONDS, SPANS = {name!r}, {version!r}, {seconds!r}, {spans!r}
MODULE = NAME.replace("-", "_")
DIST = f"{{MODULE}}-{{VERSION}}"


def _pause(step):
    """Sleep, and append "<step> <start> <end>" (wall clock) to SPANS: when the builds ran."""
    start = time.time()
    time.sleep(SECONDS)
    with open(SPANS, "a") as handle:
        handle.write(f"{{step}} {{start}} {{time.time()}}\\n")


def _metadata():
    return f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _pause("metadata")
    info = os.path.join(metadata_directory, f"{{DIST}}.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as handle:
        handle.write(_metadata())
    return f"{{DIST}}.dist-info"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _pause("wheel")
    files = {{
        f"{{MODULE}}/__init__.py": f"__version__ = {{VERSION!r}}\\n".encode(),
        f"{{DIST}}.dist-info/METADATA": _metadata().encode(),
        f"{{DIST}}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\\nGenerator: slow\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        ),
    }}
    lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{{path}},sha256={{digest}},{{len(data)}}")
    lines.append(f"{{DIST}}.dist-info/RECORD,,")
    files[f"{{DIST}}.dist-info/RECORD"] = ("\\n".join(lines) + "\\n").encode()
    name = f"{{DIST}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return name
'''


_NOISY_BACKEND = '''
"""A PEP 517 backend whose build fails after printing a lot: uv's error output gets long."""
import sys

NOISE = {noise!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    for i in range(NOISE // 100):
        print(f"noise line {{i:06d}} ".ljust(99, "."), file=sys.stderr)
    raise RuntimeError("this package never builds (a test's failing sdist)")


build_wheel = prepare_metadata_for_build_wheel
'''


def _write_sdist(name: str, version: str, backend_name: str, backend: str, out_dir: Path) -> Path:
    import io
    import tarfile

    out_dir.mkdir(parents=True, exist_ok=True)
    root = f"{name.replace('-', '_')}-{version}"
    files = {
        "pyproject.toml": f'[build-system]\nrequires = []\nbuild-backend = "{backend_name}"\nbackend-path = ["."]\n',
        f"{backend_name}.py": backend,
        "PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\nDynamic: Requires-Dist\n",
    }
    path = out_dir / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{rel}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def build_noisy_failing_sdist(name: str, version: str, noise_bytes: int, out_dir: Path) -> Path:
    """An sdist whose build prints ``noise_bytes`` to stderr, then fails: uv reports all of it."""
    return _write_sdist(name, version, "noisy_backend", _NOISY_BACKEND.format(noise=noise_bytes), out_dir)


def build_slow_sdist(name: str, version: str, seconds: float, out_dir: Path, spans: Path) -> Path:
    """An sdist whose build (metadata and wheel) sleeps ``seconds``: uv must build it to use it.

    Metadata is declared dynamic, so uv cannot read it from PKG-INFO and has to run the
    backend while resolving too. Each (name, version) is built once per uv cache. Each
    sleep is logged to ``spans`` (see :func:`read_spans`), so tests can tell which builds
    overlapped without timing the whole operation.
    """
    spans.parent.mkdir(parents=True, exist_ok=True)
    backend = _SLOW_BACKEND.format(name=name, version=version, seconds=seconds, spans=str(spans))
    return _write_sdist(name, version, "slow_backend", backend, out_dir)


def slow_spans_file(wheelhouse: Path, name: str) -> Path:
    """Where the slow package ``name`` logs its builds (outside the find-links folder)."""
    return wheelhouse.parent / "slow-spans" / f"{name}.txt"


def read_spans(spans: Path) -> list[tuple[str, float, float]]:
    """The (step, start, end) sleeps a slow sdist's backend logged, in the order they ended."""
    if not spans.exists():
        return []
    rows = [line.split() for line in spans.read_text().splitlines() if line]
    return [(step, float(start), float(end)) for step, start, end in rows]

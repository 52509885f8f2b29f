"""Generate the blocking client (src/envplane/client/_sync/) from the asyncio one (_async/).

Every client method is written once, in _async/; this rewrites the source token by token
(``async def`` -> ``def``, ``await`` dropped, ``AsyncX`` -> ``X``, ``grpc.aio`` -> ``grpc``, ...),
the approach httpcore takes with its own unasync script, then formats it with ruff.

    python scripts/unasync.py           # write _sync/
    python scripts/unasync.py --check   # exit 1 if _sync/ is not what _async/ gives (the test does this)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "envplane" / "client" / "_async"
TARGET = ROOT / "src" / "envplane" / "client" / "_sync"

SUBSTITUTIONS = [
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\bgrpc\.aio\.insecure_channel\b", "grpc.insecure_channel"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"^import asyncio$", "import time"),
    (r"\benvplane\.client\._async\b", "envplane.client._sync"),
    (r"\basyncio client\b", "blocking client"),
]


def unasync(text: str, name: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    header = f"# Generated from client/_async/{name} by scripts/unasync.py (make client): DO NOT EDIT.\n"
    return header + text


def formatted(text: str, name: str) -> str:
    """Imports sorted and the code formatted as ruff would (names change length)."""
    ruff = str(Path(sys.executable).parent / "ruff")
    stdin = ["--stdin-filename", str(TARGET / name), "-"]
    sort_imports = [ruff, "check", "--select", "I", "--fix", "--exit-zero", "--quiet", *stdin]
    for command in (sort_imports, [ruff, "format", *stdin]):
        text = subprocess.run(command, input=text, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return text


def generated() -> dict[str, str]:
    sources = sorted(SOURCE.glob("*.py"))
    return {path.name: formatted(unasync(path.read_text(), path.name), path.name) for path in sources}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    files = generated()
    if args.check:
        stale = sorted(
            name for name, text in files.items() if not (TARGET / name).is_file() or (TARGET / name).read_text() != text
        )
        extra = sorted(p.name for p in TARGET.glob("*.py") if p.name not in files)
        for name in stale + extra:
            print(f"client/_sync/{name} is stale: run `make client` and commit the result", file=sys.stderr)
        return 1 if stale or extra else 0
    TARGET.mkdir(exist_ok=True)
    for name, text in files.items():
        (TARGET / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

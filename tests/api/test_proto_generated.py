"""The committed generated code is exactly what `make proto` produces from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        cwd=ROOT,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        capture_output=True,
    )
    generated = sorted(p.name for p in (tmp_path / "envplane" / "v1").glob("*_pb2*"))
    assert generated == [
        "environments_pb2.py",
        "environments_pb2.pyi",
        "environments_pb2_grpc.py",
        "environments_pb2_grpc.pyi",
    ]
    for name in generated:
        fresh = (tmp_path / "envplane" / "v1" / name).read_text()
        committed = (ROOT / "src" / "envplane" / "v1" / name).read_text()
        assert fresh == committed, f"{name} is stale: run `make proto` and commit the result"

"""The committed generated code is exactly what `make proto` produces from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(out)],
        check=True,
        cwd=ROOT,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        capture_output=True,
    )
    return out


@pytest.mark.parametrize(
    ("package", "stem"),
    [
        ("v1", "common"),
        ("v1", "environments"),
        ("v1", "events"),
        ("v1", "operations"),
        ("v1", "workers"),
        ("v1", "services"),
        ("v1", "observations"),
        ("envmanager", "env_manager"),
        ("env_manager/v1", "env_manager"),
        ("nf_ai_comms", "nf_ai_comms"),
    ],
)
def test_generated_code_is_up_to_date(fresh: Path, package: str, stem: str) -> None:
    generated = sorted(p.name for p in (fresh / "envplane" / package).glob(f"{stem}_pb2*"))
    assert generated == [f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py", f"{stem}_pb2_grpc.pyi"]
    for name in generated:
        committed = (ROOT / "src" / "envplane" / package / name).read_text()
        assert (fresh / "envplane" / package / name).read_text() == committed, (
            f"{name} is stale: run `make proto` and commit the result"
        )

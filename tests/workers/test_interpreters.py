"""Workers run with the env's interpreter, which need not be the daemon's nor have envplane."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from envplane import errors
from envplane.workers import Pool, PoolConfig
from envplane.workers.service import bootstrap


def test_bootstrap_is_python_3_9_and_stdlib_only() -> None:
    source = Path(bootstrap.__file__).read_text()
    ast.parse(source, feature_version=(3, 9))  # no match, no 3.10+ syntax
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - {"grpc"} <= set(sys.stdlib_module_names)  # grpc: only for its transport
    assert "envplane" not in imported


async def test_pool_on_a_foreign_interpreter(foreign_python: str, handler: Path) -> None:
    async with Pool(PoolConfig(str(handler), min_size=2), python=foreign_python) as pool:
        assert await pool.execute("echo", [b"\x00bytes"]) == b"\x00bytes"
        assert await pool.execute("environment", ["VIRTUAL_ENV"]) == str(Path(foreign_python).parent.parent)
        assert [c async for c in pool.execute_stream("acount", [2])] == [{"i": 0}, {"i": 1}]
        info = pool.info()
        assert all(w.state == "idle" for w in info.workers)


async def test_grpc_transport_without_grpcio_names_the_fix(foreign_python: str, handler: Path) -> None:
    pool = Pool(PoolConfig(str(handler), transport="grpc"), python=foreign_python)
    await pool.start()
    with pytest.raises(errors.PoolFailed, match="needs grpcio in the environment") as caught:
        await pool.wait_ready(30)
    assert isinstance(caught.value, errors.FailedPrecondition)
    assert "add_grpcio=true" in caught.value.message
    await pool.close()


async def test_handler_as_module_and_as_package(tmp_path: Path, foreign_python: str) -> None:
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .impl import double\n__all__ = ['double']\n")
    (package / "impl.py").write_text("def double(x):\n    return 2 * x\n")
    async with Pool(PoolConfig(str(package)), python=foreign_python) as pool:
        assert await pool.execute("double", [21]) == 42
    async with Pool(PoolConfig("json", init=""), python=foreign_python) as pool:  # an importable module
        assert await pool.execute("dumps", [[1, 2]]) == "[1, 2]"

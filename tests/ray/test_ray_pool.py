"""RayPool on the real local Ray cluster: the workers' handler as Ray actors inside an env."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane import errors
from envplane.providers import GrpcEnvironmentProvider
from envplane.ray import RayPool
from tests.support.daemons import ThreadDaemon
from tests.workers.handlers import write_handler

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

HANDLER = """
import asyncio, os, sys

STATE = {}

def init(label="plain"):
    STATE["label"] = label

def where():
    import alpha
    return {"python": sys.executable, "pid": os.getpid(), "alpha": alpha.__version__, "label": STATE["label"]}

def add(a, b=0):
    return a + b

def count(n):
    for i in range(n):
        yield i

async def slow_echo(value):
    await asyncio.sleep(0.01)
    return value

async def acount(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield {"i": i}

def counter(session):
    session["n"] = session.get("n", 0) + 1
    return session["n"]

def fail():
    raise KeyError("missing thing")

def die():
    os._exit(1)
"""


@pytest.fixture
def provider(plane_daemon: ThreadDaemon) -> Iterator[GrpcEnvironmentProvider]:
    with GrpcEnvironmentProvider(plane_daemon.grpc_addr, timeout=300) as made:
        yield made


@pytest.fixture
def env(provider: GrpcEnvironmentProvider, wf: str) -> str:
    provider.create_environment(
        "pool", {"workflow_id": wf, "node_id": "actors", "packages": ["alpha==1.1.0"], "ray": True}
    )
    return "pool"


def test_ray_pool_runs_the_handler_in_the_env(provider: GrpcEnvironmentProvider, env: str, tmp_path: Path) -> None:
    assert importlib.util.find_spec("alpha") is None, "the driver must not have the env's packages"
    handler = write_handler(tmp_path, "actors", HANDLER)
    info = provider.get_environment(env)
    with RayPool(str(handler), provider=provider, variant_id=env, size=2, init_args={"label": "ray"}) as pool:
        where = pool.execute("where")
        assert where["python"] == info.python_executable != sys.executable
        assert (where["alpha"], where["label"]) == ("1.1.0", "ray")
        assert pool.execute("add", {"a": 2, "b": 3}) == 5
        assert pool.execute("add", [1, 2]) == 3
        assert list(pool.execute_stream("count", [4])) == [0, 1, 2, 3]
        assert pool.execute("slow_echo", [b"raw"]) == b"raw"
        assert list(pool.execute_stream("acount", [2])) == [{"i": 0}, {"i": 1}]
        assert [pool.execute("counter", session="s") for _ in range(3)] == [1, 2, 3]
        assert pool.end_session("s") and pool.execute("counter", session="s") == 1
        with pytest.raises(errors.CommandError) as caught:
            pool.execute("fail")
        assert caught.value.error_type == "KeyError" and "missing thing" in caught.value.traceback
        with pytest.raises(errors.NotFound, match="no command 'nope'"):
            pool.execute("nope")
        with pytest.raises(errors.InvalidArgument, match="execute_stream"):
            pool.execute("count", [1])


def test_actor_restart_loses_sessions_loudly(provider: GrpcEnvironmentProvider, env: str, tmp_path: Path) -> None:
    handler = write_handler(tmp_path, "actors", HANDLER)
    options = {"max_restarts": 1, "max_task_retries": 0}
    with RayPool(str(handler), provider=provider, variant_id=env, size=1, actor_options=options) as pool:
        assert pool.execute("counter", session="s") == 1
        first = pool.execute("where")["pid"]
        with pytest.raises(errors.SessionLost, match="its Ray actor died"):
            pool.execute("die", session="s")
        # Ray restarts the actor (max_restarts=1): a new process, the handler loaded again
        [hello] = pool.wait_ready(120)
        assert hello["pid"] != first and pool.execute("where")["pid"] == hello["pid"]
        assert pool.execute("counter", session="t") == 1


def test_ray_pool_refuses_bad_arguments(provider: GrpcEnvironmentProvider) -> None:
    with pytest.raises(errors.InvalidArgument, match="either provider"):
        RayPool("h.py")
    with pytest.raises(errors.InvalidArgument, match="size"):
        RayPool("h.py", runtime_env={}, size=0)

"""A real local Ray cluster for the session (2 CPUs), started once with `ray start --head`.

The cluster runs in processes of its own, and the tests connect to it as a driver. Letting
``ray.init()`` start the cluster from inside pytest is not safe here: the test process already
runs daemons with gRPC threads, and Ray starts its raylet with a ``preexec_fn``, i.e. Python
code in a child forked from a multi-threaded process. Now and then that child deadlocked before
it could exec, and ``ray.init`` timed out waiting for a raylet that never started.

The cluster keeps its files in a temp dir of its own (``--temp-dir``): by default ``ray start``
records its address in ``/tmp/ray/ray_current_cluster``, the file stays after the cluster is
stopped, and every later ``ray.init()`` on the machine (``make example``, say) then tries to join
the dead cluster and hangs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from tests.support.processes import free_port
from tests.support.waiting import eventually

RAY_CLI = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The cluster's GCS address; the test process is connected to it as a driver."""
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("ray") / "ray-start.log"
    # Short: Ray puts unix sockets under it (a socket path is limited to 107 bytes).
    temp_dir = tempfile.mkdtemp(prefix="ray-test-")
    command = [
        RAY_CLI, "start", "--head", "--block", "--num-cpus=2", "--include-dashboard=false",
        "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--port={address.rpartition(':')[2]}",
        f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    with log.open("wb") as out:
        # A throwaway cluster on loopback: no auth token (a driver joining an address does not
        # use one by default, and the token file would land in the user's home).
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        head = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:

        def started() -> bool:
            if head.poll() is not None:
                raise AssertionError(f"`ray start --head` exited:\n{log.read_text(errors='replace')}")
            return b"Ray runtime started" in log.read_bytes()

        eventually(started, timeout=120, interval=0.2, what="`ray start --head` to come up")
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        yield address
    finally:
        ray.shutdown()
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)  # --block: the head stops the cluster on SIGTERM
            try:
                head.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait(10)
        shutil.rmtree(temp_dir, ignore_errors=True)

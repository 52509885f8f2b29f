"""Services benchmark: envplane's orchestration side by side with the plain alternative, in one run.

    make bench-services     # or: .venv/bin/python benchmarks/bench_services.py [--runs 5]

Needs redis-server and PostgreSQL's server binaries (Debian: redis-server, postgresql); no network.

(a) up -> all healthy, the chain redis <- postgres (healthy) <- a Python HTTP service (healthy),
    through a real daemon (gRPC ``StartServices`` with wait) vs a shell script that starts the same
    services one after another and polls the same probes (redis-cli PING, pg_isready, curl) every
    10 ms: the chain's own critical path, plus a script's small overhead. Both start PostgreSQL on a
    cluster made beforehand (initdb is not part of either). Prints the ratio and envplane's
    overhead per edge of the chain (target: <= 100 ms per edge, within 1.1x).
(b) time to see a service killed (SIGKILL): from the kill to the daemon's health stream saying so
    (target: <= one probe interval + 100 ms; the probe interval here is 500 ms).
(c) ``up --wait`` of a set already running (adopted by a restarted daemon, or started by this one):
    target <= 200 ms; and how long a restarted daemon takes to adopt the chain.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envplane.client import EnvplaneClient
from tests.support.daemons import ProcessDaemon
from tests.support.settings import offline_settings

PG_BIN = (
    sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1] if list(Path("/usr/lib/postgresql").glob("*/bin")) else None
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chain(redis: int, pg: int, api: int, pgdata: Path) -> str:
    user = 'user = "postgres"' if os.geteuid() == 0 else ""
    return f"""
[services.redis]
ports = [{redis}]
probe = {{ interval = "500ms" }}

[services.pg]
runtime = "process"
command = ["{PG_BIN}/postgres", "-D", "{pgdata}", "-p", "{pg}", "-h", "127.0.0.1", "-k", ""]
ports = [{pg}]
{user}
stop_signal = "SIGINT"
depends_on = {{ redis = "healthy" }}
probe = {{ kind = "postgres", interval = "500ms" }}

[services.api]
command = ["python3", "-m", "http.server", "{api}", "--bind", "127.0.0.1"]
ports = [{api}]
depends_on = {{ pg = "healthy" }}
probe = {{ kind = "http", url = "http://127.0.0.1:{api}/", interval = "500ms" }}
"""


SCRIPT = r"""
set -e
started=$(date +%s.%N)
redis-server --port {redis} --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
until redis-cli -p {redis} ping 2>/dev/null | grep -q PONG; do sleep 0.01; done
{as_pg} {pg_bin}/postgres -D {pgdata} -p {pg} -h 127.0.0.1 -k '' >/dev/null 2>&1 &
until {pg_bin}/pg_isready -q -h 127.0.0.1 -p {pg}; do sleep 0.01; done
python3 -m http.server {api} --bind 127.0.0.1 >/dev/null 2>&1 &
until curl -fs -o /dev/null http://127.0.0.1:{api}/; do sleep 0.01; done
echo "$started $(date +%s.%N)"
"""


def make_cluster(root: Path) -> Path:
    """An initdb'd cluster the postgres user can reach (both sides reuse it)."""
    pgdata = root / "pgdata"
    root.mkdir(parents=True, exist_ok=True)
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run([*run_as, f"{PG_BIN}/initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)  # fmt: skip
    return pgdata


def script_run(ports: tuple[int, int, int], pgdata: Path) -> float:
    as_pg = "runuser -u postgres --" if os.geteuid() == 0 else ""
    text = SCRIPT.format(redis=ports[0], pg=ports[1], api=ports[2], pgdata=pgdata, pg_bin=PG_BIN, as_pg=as_pg)
    proc = subprocess.Popen(["bash", "-c", text], stdout=subprocess.PIPE, start_new_session=True)
    out, _ = proc.communicate(timeout=60)
    began, ended = map(float, out.split())
    # stop them: redis, postgres (fast), the http server
    for port in ports:
        subprocess.run(["fuser", "-k", "-INT", f"{port}/tcp"], capture_output=True, check=False)
    time.sleep(0.5)
    for port in ports:
        subprocess.run(["fuser", "-k", f"{port}/tcp"], capture_output=True, check=False)
    _wait_free(ports)
    return ended - began


def _wait_free(ports: tuple[int, ...]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        busy = []
        for port in ports:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    busy.append(port)
        if not busy:
            return
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if PG_BIN is None or shutil.which("redis-server") is None or shutil.which("curl") is None:
        sys.exit("needs redis-server, curl and PostgreSQL's server binaries")
    root = Path(tempfile.mkdtemp(prefix="bench-services-"))
    os.chmod(root, 0o755)
    ports = (free_port(), free_port(), free_port())
    pgdata = make_cluster(root / "pg")
    config = root / "services.toml"
    config.write_text(chain(*ports, pgdata))
    settings = offline_settings(root / "data", [], None, services_config=config, log_level="warning")
    daemon = ProcessDaemon.of(settings).start()
    try:
        with EnvplaneClient(daemon.grpc_addr, timeout=120) as client:
            ours, theirs = [], []
            for _ in range(args.runs):
                theirs.append(script_run(ports, pgdata))
                began = time.perf_counter()
                list(client.services.up(["api"], wait=True))
                ours.append(time.perf_counter() - began)
                client.services.down()
                _wait_free(ports)
            env_med, sh_med = statistics.median(ours), statistics.median(theirs)
            print("(a) up -> all healthy, chain redis <- postgres <- http (median of", args.runs, "runs)")
            print(f"    shell script, same probes polled every 10 ms : {sh_med * 1000:7.1f} ms")
            print(f"    envplane StartServices(wait)                 : {env_med * 1000:7.1f} ms")
            print(
                f"    ratio {env_med / sh_med:.2f}x; overhead per edge (3 edges) {(env_med - sh_med) / 3 * 1000:.0f} ms"
            )

            list(client.services.up(["api"], wait=True))
            detect = []
            for _ in range(args.runs):
                pid = client.services.status(["api"])[0].pid
                stream = client.services.health(["api"], heartbeat=30)
                next(stream)
                killed = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                update = next(u for u in stream if not u.heartbeat)
                detect.append(time.perf_counter() - killed)
                assert not update.healthy, update
                stream.close()  # type: ignore[attr-defined]
                list(client.services.up(["api"], wait=True))
            print("(b) a killed service seen (SIGKILL -> the health stream says so), probe interval 500 ms")
            print(f"    median {statistics.median(detect) * 1000:.1f} ms, worst {max(detect) * 1000:.1f} ms "
                  f"(target <= 600 ms)")  # fmt: skip

            again = []
            for _ in range(args.runs):
                began = time.perf_counter()
                list(client.services.up(["api"], wait=True))
                again.append(time.perf_counter() - began)
        daemon.kill9()
        began = time.perf_counter()
        daemon.start()
        with EnvplaneClient(daemon.grpc_addr, timeout=120) as client:
            restarted = time.perf_counter() - began
            first = time.perf_counter()
            progress = list(client.services.up(["api"], wait=True))
            adopted_up = time.perf_counter() - first
            assert all(p.state == "healthy" for p in progress), progress
            assert client.services.status(["api"])[0].adopted
            client.services.down()
        print("(c) up --wait of a running set")
        print(f"    this daemon's own: median {statistics.median(again) * 1000:.1f} ms (target <= 200 ms)")
        print(f"    after kill -9 and a new daemon (adopted): {adopted_up * 1000:.1f} ms; "
              f"the new daemon served (adoption included) in {restarted * 1000:.0f} ms")  # fmt: skip
    finally:
        daemon.stop_if_running()
        for port in ports:
            subprocess.run(["fuser", "-k", f"{port}/tcp"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

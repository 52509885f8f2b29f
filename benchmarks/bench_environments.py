"""Environments benchmark: envplane (daemon over gRPC) vs raw uv, side by side in one run.

    make bench            # or: uv run python benchmarks/bench_environments.py --repeat 5

(a) CreateEnv vs `uv venv` + `uv pip install` of the same packages (target: <= 1.10x)
(b) a second env with an identical spec (target: <= 30 ms)
(c) 20 concurrent creates of different specs vs the same 20 with raw uv, one after another
    (target: envplane >= 1.5x faster) and as 20 concurrent raw uv processes (the fair peer:
    it shows whether envplane or the network sets the pace)
(d) identical-spec creates from 8 concurrent clients: creates/s and latency percentiles
    (target: >= 500/s), beside the daemon's gRPC floor (a Health.Check round trip)

Both sides use the same uv binary and the same warm uv cache (a warm-up installs every
package once first; that warm-up needs the package index, the timed part does not).
Each (a) repetition starts a fresh daemon, so envplane cannot reuse a lock it made before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from _common import PYTHON, UV, Daemon, raw_uv_create, timed
from grpc_health.v1 import health_pb2, health_pb2_grpc

from envplane.client import EnvplaneClient

PACKAGES_A = ["httpx", "rich", "pydantic"]
POOL = [
    "six", "attrs", "idna", "certifi", "packaging", "click", "colorama", "tomli", "wcwidth",
    "pyparsing", "markupsafe", "jinja2", "itsdangerous", "python-dateutil", "pytz", "urllib3",
    "charset-normalizer", "requests", "pygments", "typing-extensions",
]  # fmt: skip
SPECS_C = [[POOL[i], POOL[(i + 7) % len(POOL)]] for i in range(20)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--throughput-creates", type=int, default=2000, help="(d): creates in all")
    parser.add_argument("--clients", type=int, default=8, help="(d): concurrent clients")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="envplane-bench-"))
    cache = root / "uv-cache"
    results: dict[str, float] = {}
    try:
        print(
            f"uv {subprocess.check_output([UV, '--version'], text=True).split()[1]}, python {PYTHON}, "
            f"{os.cpu_count()} cores; warming the uv cache...",
            flush=True,
        )
        raw_uv_create(root / "warm", PACKAGES_A + POOL, cache)

        # (a) one create, median of --repeat, alternating sides
        ours, theirs = [], []
        for i in range(args.repeat):
            daemon = Daemon(root, cache)
            try:
                with EnvplaneClient(daemon.addr, timeout=600) as client:
                    ours.append(timed(lambda: client.environments.create("bench", "a", packages=PACKAGES_A)))
            finally:
                daemon.stop()
            theirs.append(timed(lambda i=i: raw_uv_create(root / f"raw-a{i}", PACKAGES_A, cache)))
        results["a_envplane_s"] = statistics.median(ours)
        results["a_raw_uv_s"] = statistics.median(theirs)
        results["a_ratio"] = results["a_envplane_s"] / results["a_raw_uv_s"]

        daemon = Daemon(root, cache)
        try:
            with EnvplaneClient(daemon.addr, timeout=600) as client:
                # (b) identical spec: the lock and the build are reused
                client.environments.create("bench", "b0", packages=PACKAGES_A)
                create = client.environments.create
                second = [timed(lambda n=n: create("bench", f"b{n}", packages=PACKAGES_A)) for n in range(1, 11)]
                results["b_identical_spec_ms"] = statistics.median(second) * 1000
                results["grpc_floor_ms"] = grpc_floor_ms(daemon.addr)

                # (c) 20 different specs at once vs one after another with raw uv
                with ThreadPoolExecutor(max_workers=20) as pool:
                    start = time.perf_counter()
                    envs = list(pool.map(lambda i: create("bench", f"c{i}", packages=SPECS_C[i]), range(20)))
                    results["c_envplane_concurrent_s"] = time.perf_counter() - start
                assert all(e.status == 2 for e in envs)
        finally:
            daemon.stop()
        results["c_raw_uv_sequential_s"] = timed(
            lambda: [raw_uv_create(root / f"raw-c{i}", SPECS_C[i], cache) for i in range(20)]
        )
        results["c_speedup"] = results["c_raw_uv_sequential_s"] / results["c_envplane_concurrent_s"]
        with ThreadPoolExecutor(max_workers=20) as pool:
            start = time.perf_counter()
            list(pool.map(lambda i: raw_uv_create(root / f"raw-cc{i}", SPECS_C[i], cache), range(20)))
            results["c_raw_uv_concurrent_s"] = time.perf_counter() - start
        results["c_vs_concurrent_raw"] = results["c_raw_uv_concurrent_s"] / results["c_envplane_concurrent_s"]

        daemon = Daemon(root, cache)
        try:
            results.update(identical_spec_throughput(daemon.addr, args.throughput_creates, args.clients))
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print()
    print(
        f"(a) create {', '.join(PACKAGES_A)}: envplane {results['a_envplane_s'] * 1000:.0f} ms, "
        f"raw uv {results['a_raw_uv_s'] * 1000:.0f} ms, ratio {results['a_ratio']:.2f}x (target <= 1.10x)"
    )
    print(f"(b) second env, identical spec: {results['b_identical_spec_ms']:.1f} ms (target <= 30 ms)")
    print(
        f"(c) 20 different specs: envplane concurrent {results['c_envplane_concurrent_s']:.2f} s, "
        f"raw uv sequential {results['c_raw_uv_sequential_s']:.2f} s, "
        f"envplane {results['c_speedup']:.2f}x faster (target >= 1.5x)"
    )
    print(
        f"    the same 20 as concurrent raw uv processes: {results['c_raw_uv_concurrent_s']:.2f} s "
        f"(envplane takes {1 / results['c_vs_concurrent_raw']:.2f}x their time)"
    )
    print(
        f"(d) {args.throughput_creates} identical-spec creates from {args.clients} clients: "
        f"{results['d_creates_per_s']:.0f}/s (target >= 500/s), p50 {results['d_p50_ms']:.1f} ms, "
        f"p99 {results['d_p99_ms']:.1f} ms; gRPC floor (Health.Check) {results['grpc_floor_ms']:.2f} ms"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


def grpc_floor_ms(address: str, calls: int = 200) -> float:
    """The daemon's own gRPC round trip with no work behind it: what no RPC can beat."""
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        health.Check(request, timeout=10)
        return statistics.median(timed(lambda: health.Check(request, timeout=10)) for _ in range(calls)) * 1000


def identical_spec_throughput(address: str, creates: int, clients: int) -> dict[str, float]:
    """``creates`` new envs with one spec, from ``clients`` threads each with its own channel."""
    with EnvplaneClient(address, timeout=600) as client:
        client.environments.create("bench", "d-seed", packages=PACKAGES_A)  # the one resolution and build
    latencies: list[float] = []

    def run(worker: int) -> None:
        with EnvplaneClient(address, timeout=600) as client:
            for n in range(worker, creates, clients):
                latencies.append(timed(lambda n=n: client.environments.create("bench", f"d{n}", packages=PACKAGES_A)))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(run, range(clients)))
    elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return {"d_creates_per_s": creates / elapsed, "d_p50_ms": cuts[49] * 1000, "d_p99_ms": cuts[98] * 1000}


if __name__ == "__main__":
    main()

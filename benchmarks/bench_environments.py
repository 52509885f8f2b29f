"""Environments benchmark: envplane (daemon over gRPC) vs raw uv, side by side in one run.

    make bench            # or: uv run python benchmarks/bench_environments.py --repeat 5

(a) CreateEnv vs `uv venv` + `uv pip install` of the same packages (target: <= 1.10x)
(b) a second env with an identical spec (target: <= 30 ms)
(c) 20 concurrent creates of different specs vs the same 20 one after another with raw uv
    (target: envplane >= 1.5x faster)

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

from _common import PYTHON, UV, Daemon, raw_uv_create, timed

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
                    ours.append(timed(lambda: client.create_env("bench", "a", packages=PACKAGES_A)))
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
                client.create_env("bench", "b0", packages=PACKAGES_A)
                second = [
                    timed(lambda n=n: client.create_env("bench", f"b{n}", packages=PACKAGES_A)) for n in range(1, 11)
                ]
                results["b_identical_spec_ms"] = statistics.median(second) * 1000

                # (c) 20 different specs at once vs one after another with raw uv
                with ThreadPoolExecutor(max_workers=20) as pool:
                    start = time.perf_counter()
                    envs = list(pool.map(lambda i: client.create_env("bench", f"c{i}", packages=SPECS_C[i]), range(20)))
                    results["c_envplane_concurrent_s"] = time.perf_counter() - start
                assert all(e.status == 2 for e in envs)
        finally:
            daemon.stop()
        results["c_raw_uv_sequential_s"] = timed(
            lambda: [raw_uv_create(root / f"raw-c{i}", SPECS_C[i], cache) for i in range(20)]
        )
        results["c_speedup"] = results["c_raw_uv_sequential_s"] / results["c_envplane_concurrent_s"]
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
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

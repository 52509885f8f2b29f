"""Ray benchmark: one trivial task in a fresh env with 3 packages, envplane vs Ray's own uv env.

    make bench-ray          # or: .venv/bin/python benchmarks/bench_ray.py --repeat 3

envplane: GrpcEnvironmentProvider (a real daemon subprocess) creates a Ray-ready env, and the
          task runs with runtime_env={"py_executable": <the env's python>}.
Ray:      the task runs with runtime_env={"uv": [the same packages]}; Ray builds a virtualenv
          on the node and `uv pip install`s into it. Shown twice: with Ray's default options
          (`--no-cache`: every new env downloads its packages) and with the uv cache allowed.

"first run" is a fresh env and a fresh worker; "repeat run" runs the same task again with the
same spec (envplane: create_environment again, reused; Ray: the same runtime_env, cached).
Each repetition starts a new Ray cluster and a new daemon, so nothing carries over between
repetitions; both sides share one warm uv cache. The packages come from PyPI, so the index
must be reachable. Start it with python, not `uv run` (Ray replays `uv run` on workers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from _common import PYTHON, Daemon, raw_uv_create

from envplane.providers import GrpcEnvironmentProvider

PACKAGES = ["six==1.17.0", "tabulate==0.9.0", "toolz==1.0.0"]


def trivial() -> str:
    import six  # noqa: F401
    import tabulate  # noqa: F401
    import toolz

    return str(toolz.__version__)


def run_task(runtime_env: dict[str, Any]) -> None:
    assert ray.get(ray.remote(trivial).options(runtime_env=runtime_env).remote(), timeout=900) == "1.0.0"


def envplane_side(provider: GrpcEnvironmentProvider, workflow: str) -> Callable[[], None]:
    def once() -> None:
        provider.create_environment(
            "bench", {"workflow_id": workflow, "node_id": "n", "packages": PACKAGES, "ray": True}
        )
        run_task(provider.get_runtime_env("bench"))

    return once


def ray_side(uv: dict[str, Any]) -> Callable[[], None]:
    return lambda: run_task({"uv": uv})


def first_and_repeat(fn: Callable[[], None]) -> tuple[float, float]:
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    start = time.perf_counter()
    fn()
    return first, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if os.environ.get("UV_RUN_RECURSION_DEPTH") or os.environ.get("UV"):
        print("note: started under `uv run`; Ray's uv runtime_env refuses that, start with python", file=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="envplane-bench-ray-"))
    cache = root / "uv-cache"
    os.environ["UV_CACHE_DIR"] = str(cache)  # inherited by the Ray cluster: both sides share it
    sides = {"envplane": [], "ray_default": [], "ray_cached": []}  # type: dict[str, list[tuple[float, float]]]
    try:
        print(f"ray {ray.__version__}, python {PYTHON}, {os.cpu_count()} cores; warming the uv cache...", flush=True)
        raw_uv_create(root / "warm", [*PACKAGES, f"ray=={ray.__version__}", "virtualenv"], cache)
        for rep in range(args.repeat):
            daemon = Daemon(root, cache)
            # "local": a fresh instance each time, never a cluster a stale /tmp/ray file names
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                with GrpcEnvironmentProvider(daemon.addr, timeout=900) as provider:
                    runs = {
                        "envplane": envplane_side(provider, f"bench-{uuid.uuid4().hex[:8]}"),
                        "ray_default": ray_side({"packages": PACKAGES}),
                        "ray_cached": ray_side({"packages": PACKAGES, "uv_pip_install_options": []}),
                    }
                    order = list(runs) if rep % 2 == 0 else list(reversed(runs))
                    for name in order:
                        sides[name].append(first_and_repeat(runs[name]))
                        print(f"  rep {rep + 1} {name:12} first {sides[name][-1][0]:6.2f} s  "
                              f"repeat {sides[name][-1][1] * 1000:7.1f} ms", flush=True)  # fmt: skip
            finally:
                ray.shutdown()
                daemon.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    results: dict[str, float] = {}
    for name, runs in sides.items():
        results[f"{name}_first_s"] = statistics.median(r[0] for r in runs)
        results[f"{name}_repeat_s"] = statistics.median(r[1] for r in runs)
    print()
    print(f"one trivial task, fresh env with {', '.join(PACKAGES)} (median of {args.repeat}):")
    print(f"{'':28}{'first run':>12}{'repeat run':>14}")
    for name, label in [
        ("envplane", "envplane + py_executable"),
        ("ray_default", 'ray {"uv": [...]} default'),
        ("ray_cached", 'ray {"uv": ...} + uv cache'),
    ]:
        print(f"{label:28}{results[f'{name}_first_s']:>10.2f} s{results[f'{name}_repeat_s'] * 1000:>11.1f} ms")
    for other in ("ray_default", "ray_cached"):
        for run in ("first", "repeat"):
            ratio = results[f"envplane_{run}_s"] / results[f"{other}_{run}_s"]
            results[f"ratio_{run}_vs_{other}"] = ratio
            print(f"envplane / {other:12} {run:6} run: {ratio:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

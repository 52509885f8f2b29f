"""Observations benchmark: the daemon's ObservationService vs a bare gRPC echo, in one run.

    make bench-observations     # or: .venv/bin/python benchmarks/bench_observations.py [--n 20000]

(a) observations per second, unary (32 calls in flight) and over one bidirectional stream,
    against a bare grpc.aio echo server (a subprocess, like the daemon) answering the same
    message (TaskObservation -> ObserveReply) with a reply built once: the echo is the floor of
    what gRPC costs here. The daemon checks, decides, stores (SQLite in its data dir, one commit
    per batch) and answers each. Prints the cost per message of each and the ratio (targets:
    <= 1.3x the echo's; >= 5,000/s on the stream on 2 cores).
(b) decision latency: p50/p99 of one unary round trip (one call at a time) on both servers, and
    of the decision alone (``Decider.decide`` in-process, over the sizey/ observations).
(c) replay speed: tasks/s of ``envplane observe replay`` on the full sizey/ set (rightsizer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from envplane.v1 import observations_pb2 as pb
from envplane.v1 import observations_pb2_grpc as pb_grpc
from tests.support.daemons import ProcessDaemon
from tests.support.processes import free_port
from tests.support.settings import offline_settings

ECHO = """
import asyncio, sys
import grpc
from envplane.v1 import observations_pb2 as pb

REPLY = pb.ObserveReply(observation_id=1, event_id="x", action=pb.Action(kind=pb.Action.RIGHT_SIZE,
    memory_bytes=1 << 30, reason="next ALIGN: from 100 completed task(s)", action_id="0" * 36,
    evidence=pb.Evidence(policy="rightsizer", tasks_seen=100, max_peak_rss_bytes=1 << 30)))

async def unary(request, context):
    return REPLY

async def stream(requests, context):
    async for _ in requests:
        yield REPLY

async def main(port):
    server = grpc.aio.server()
    read, write = pb.TaskObservation.FromString, pb.ObserveReply.SerializeToString
    handlers = {
        "Observe": grpc.unary_unary_rpc_method_handler(unary, read, write),
        "ObserveStream": grpc.stream_stream_rpc_method_handler(stream, read, write),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("envplane.v1.ObservationService", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()

asyncio.run(main(int(sys.argv[1])))
"""


def message(n: int) -> pb.TaskObservation:
    return pb.TaskObservation(
        pipeline="bench", process=f"P{n % 20}", task_id=str(n), status="COMPLETED", exit_code=0,
        requested_memory_bytes=4 << 30, realtime_ms=60_000 + n, cpu_percent=95.5, peak_rss_bytes=(200 + n % 97) << 20,
        peak_vmem_bytes=1 << 31, read_bytes=(1 + n % 50) << 24, write_bytes=1 << 20, event_id=f"bench-{n}",
    )  # fmt: skip


async def unary_rate(address: str, messages: list[pb.TaskObservation], in_flight: int = 32) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ObservationServiceStub(channel)
        await stub.Observe(message(10**9), timeout=30)  # connected, warm
        queue = iter(messages)

        async def worker() -> None:
            for item in queue:
                await stub.Observe(item, timeout=30)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return len(messages) / (time.perf_counter() - started)


async def stream_rate(address: str, messages: list[pb.TaskObservation]) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ObservationServiceStub(channel)
        await stub.Observe(message(10**9 + 1), timeout=30)
        started = time.perf_counter()
        count = 0
        async for _ in stub.ObserveStream(iter(messages), timeout=600):
            count += 1
        assert count == len(messages)
        return count / (time.perf_counter() - started)


async def latencies(address: str, messages: list[pb.TaskObservation]) -> list[float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ObservationServiceStub(channel)
        await stub.Observe(message(10**9 + 2), timeout=30)
        taken = []
        for item in messages:
            started = time.perf_counter()
            await stub.Observe(item, timeout=30)
            taken.append(time.perf_counter() - started)
        return taken


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def decision_latency() -> tuple[float, float, int]:
    from envplane.observations.service import traces
    from envplane.observations.service.decisions import Decider, Observation

    tasks = [t for path in sorted(traces.shipped().glob("sizey/*")) for t in traces.read(path)]
    tasks.sort(key=lambda t: t.complete)
    decider = Decider()
    taken = []
    for t in tasks:
        o = Observation(
            "", "", t.workflow, t.process, t.task_id, t.status, t.exit or 0, int(t.realtime), t.peak_rss,
            t.input_size, requested_memory=t.request,
        )  # fmt: skip
        started = time.perf_counter()
        decider.decide(o)
        taken.append(time.perf_counter() - started)
    return pct(taken, 0.5), pct(taken, 0.99), len(taken)


def replay_speed() -> tuple[float, int]:
    from envplane.observations.service import evaluation, policies, traces

    files = sorted(traces.shipped().glob("sizey/*"))
    count = sum(len(traces.read(f)) for f in files)
    started = time.perf_counter()
    evaluation.evaluate(files, policies.RightSizer(), [])
    return count / (time.perf_counter() - started), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="observations per rate measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each (the median is printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envplane-bench-obs-") as tmp:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        echo = subprocess.Popen([sys.executable, "-c", ECHO, str(port)], stdout=subprocess.PIPE, env=env, text=True)
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        daemon = ProcessDaemon.of(offline_settings(Path(tmp) / "data", [], Path(tmp) / "uv-cache")).start()
        try:
            echo_addr, plane_addr = f"127.0.0.1:{port}", daemon.grpc_addr
            n = args.n
            runs: dict[str, tuple[list[float], list[float]]] = {}
            offset = 0
            for _ in range(args.repeat):  # alternating, so drift on a shared machine hits both
                for label, run in (("unary, 32 in flight", unary_rate), ("stream", stream_rate)):
                    base, plane = runs.setdefault(label, ([], []))
                    base.append(asyncio.run(run(echo_addr, [message(i) for i in range(n)])))
                    plane.append(asyncio.run(run(plane_addr, [message(offset + i) for i in range(n)])))
                    offset += n
            rows = [(label, statistics.median(b), statistics.median(p)) for label, (b, p) in runs.items()]
            spread = {label: (b, p) for label, (b, p) in runs.items()}
            lat_echo = asyncio.run(latencies(echo_addr, [message(i) for i in range(2000)]))
            lat_plane = asyncio.run(latencies(plane_addr, [message(offset + i) for i in range(2000)]))
        finally:
            daemon.stop_if_running()
            echo.terminate()
            echo.wait(10)
    print(
        f"(a) observations per second, the median of {args.repeat} runs of {args.n:,} each (the daemon checks, decides"
    )
    print("    and stores every one; the 20 processes' evidence grows as the runs go on)")
    print(f"    {'':22} {'bare echo':>12} {'envplane':>12} {'µs/msg echo':>12} {'µs/msg envplane':>16} {'ratio':>7}")
    for label, base, plane in rows:
        print(
            f"    {label:22} {base:12,.0f} {plane:12,.0f} {1e6 / base:12.1f} {1e6 / plane:16.1f} {base / plane:6.2f}x"
        )
    for label, (b, p) in spread.items():
        shown = ", ".join(f"{x:,.0f}" for x in b), ", ".join(f"{x:,.0f}" for x in p)
        print(f"    {label}: each run, echo {shown[0]} / envplane {shown[1]}")
    print("    targets: ratio <= 1.3x; the stream >= 5,000/s")
    print("(b) latency of one observation, one call at a time (2,000 calls)")
    print(f"    bare echo  p50 {pct(lat_echo, 0.5) * 1e3:.3f} ms  p99 {pct(lat_echo, 0.99) * 1e3:.3f} ms")
    print(f"    envplane   p50 {pct(lat_plane, 0.5) * 1e3:.3f} ms  p99 {pct(lat_plane, 0.99) * 1e3:.3f} ms")
    p50, p99, count = decision_latency()
    print(
        f"    the decision alone (Decider.decide over {count:,} sizey/ observations): "
        f"p50 {p50 * 1e6:.0f} µs  p99 {p99 * 1e6:.0f} µs"
    )
    speed, tasks = replay_speed()
    print(f"(c) replay of the full sizey/ set ({tasks:,} tasks, rightsizer): {speed:,.0f} tasks/s")


if __name__ == "__main__":
    main()

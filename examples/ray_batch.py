"""Run one workflow node in several variants on Ray, each variant in its own environment.

Two variants need conflicting versions of the same package, a third one a package the driver
does not have; each runs as a Ray task in an envplane environment built for it.

    .venv/bin/python examples/ray_batch.py                     # in-process, PyPI, local Ray
    .venv/bin/python examples/ray_batch.py --daemon 127.0.0.1:50051   # a running `envplane serve`
    .venv/bin/python examples/ray_batch.py --variant a=six==1.16.0 --variant b=six==1.17.0 --cleanup

Start it with python directly: Ray replays `uv run` on its workers when the driver runs under it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import ray
from rich.console import Console
from rich.table import Table

from envplane.providers import EnvironmentProvider, GrpcEnvironmentProvider, LocalEnvironmentProvider
from envplane.ray import RayBatchRunner, Variant

DEFAULT_VARIANTS = ["six-old=six==1.16.0", "six-new=six==1.17.0", "tabulate=tabulate==0.9.0"]


def node(distributions: list[str]) -> dict[str, Any]:
    """The workflow node: reports where it runs and which versions it sees.

    It runs in the variant's interpreter, so it imports what it needs here, not at the top."""
    import importlib.metadata
    import platform
    import sys

    versions = {}
    for name in distributions:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.executable, "python_version": platform.python_version(), "versions": versions}


def parse_variant(text: str) -> Variant:
    name, sep, specs = text.partition("=")
    if not sep or not name or not specs:
        raise argparse.ArgumentTypeError(f"expected NAME=SPEC[,SPEC...], got {text!r}")
    packages = [s.strip() for s in specs.split(",") if s.strip()]
    names = sorted({p.split("=")[0].split("<")[0].split(">")[0].split("[")[0].strip() for p in packages})
    return Variant(name, packages=packages, args=(names,))


def make_provider(args: argparse.Namespace) -> EnvironmentProvider:
    if args.daemon:
        return GrpcEnvironmentProvider(args.daemon)
    index: dict[str, Any] = {"find_links": args.find_links, "no_index": args.no_index}
    return LocalEnvironmentProvider(args.data_dir, **index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", type=parse_variant, help="NAME=SPEC[,SPEC...] (repeatable)")
    parser.add_argument("--workflow", default="example", help="workflow id of the envs (default: example)")
    parser.add_argument("--node", default="versions", help="node id of the envs (default: versions)")
    parser.add_argument("--daemon", help="host:port of a running envplane daemon (default: in-process)")
    parser.add_argument("--data-dir", help="in-process only: where envs live (default: ENVPLANE_DATA_DIR)")
    parser.add_argument("--find-links", action="append", default=[], help="in-process only: a wheel folder")
    parser.add_argument("--no-index", action="store_true", help="in-process only: no package index")
    parser.add_argument(
        "--ray-address",
        default="local",
        help="join this Ray cluster: host:port, or 'auto' for the one `ray start` made (default: start a local one)",
    )
    parser.add_argument("--cleanup", action="store_true", help="delete the envs afterwards")
    args = parser.parse_args(argv)
    variants = args.variant or [parse_variant(v) for v in DEFAULT_VARIANTS]

    console = Console()
    ray.init(address=args.ray_address, log_to_driver=False)
    with make_provider(args) as provider:
        runner = RayBatchRunner(provider, workflow_id=args.workflow, node_id=args.node)
        with console.status(f"creating {len(variants)} environments and running the node on Ray..."):
            batch = runner.run(node, variants, timeout=1800)
        table = Table(title=f"{len(variants)} variants in {batch.seconds:.1f} s")
        for column in ("variant", "result", "python", "env s", "task s"):
            table.add_column(column, overflow="fold")
        for result in batch:
            if result.ok:
                seen = ", ".join(f"{k}=={v}" for k, v in result.value["versions"].items())
                where = result.value["python"]
            else:
                seen, where = f"[red]{result.stage} failed:[/] {result.error}", ""
            table.add_row(result.variant_id, seen, where, f"{result.env_seconds:.2f}", f"{result.task_seconds:.2f}")
        console.print(table)
        console.print(f"driver python: {sys.executable}")
        if args.cleanup:
            removed = runner.cleanup()
            console.print(f"removed {sum(removed.values())} environment(s)")
    ray.shutdown()
    return 0 if batch.ok else 1


if __name__ == "__main__":
    sys.exit(main())

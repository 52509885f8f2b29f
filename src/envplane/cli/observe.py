"""``envplane observe ...``: task observations and what envplane decides from them.

``observe replay``: Nextflow trace files replayed through a memory policy and the published
baselines, online, scored as Sizey scores it (GB·h wasted, failed attempts, MAQ), with the
issue's targets checked per workflow. It runs here, not in the daemon: it needs only the
files. The commands that talk to the daemon (send, import, wrap, list, stats, recommend,
export, report, pipelines, policy) are in ``observe_daemon.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envplane.cli import observe_daemon
from envplane.cli.output import console

app = typer.Typer(help="Task observations in, actions out (memory right-sizing).", no_args_is_help=True)
observe_daemon.register(app)


@app.command()
def replay(
    traces: Annotated[
        list[Path], typer.Argument(help="Nextflow trace files (trace.txt, raw, CSV, .gz), or folders of them.")
    ],
    policy: Annotated[str, typer.Option("--policy", "-p", help="The policy judged.")] = "rightsizer",
    baseline: Annotated[
        list[str] | None, typer.Option("--baseline", "-b", help="Baselines beside it (default: all four; 'none').")
    ] = None,
    split: Annotated[float, typer.Option("--split", help="History: the first fraction of each process's tasks.")] = 0.3,
    allocations: Annotated[
        Path | None, typer.Option("--allocations", help="Write every attempt the policy allocated, a JSON line each.")
    ] = None,
) -> None:
    """Replay traces through a policy and the baselines; print waste, failures and MAQ."""
    from envplane.observations.service import baselines, evaluation

    files = observe_daemon.trace_files(traces)
    chosen = evaluation.policy_named(policy)
    names = baseline or [b.name for b in baselines.BASELINES]
    compared = [] if names == ["none"] else [evaluation.policy_named(n) for n in names if n != chosen.name]
    out = allocations.open("w") if allocations else None
    try:
        table = evaluation.evaluate(files, chosen, compared, history=split, allocations=out)
    finally:
        if out is not None:
            out.close()
    console.print(evaluation.render(table), highlight=False, soft_wrap=True)
    if allocations:
        console.print(f"allocations: {allocations}")

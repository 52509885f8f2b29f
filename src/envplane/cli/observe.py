"""``envplane observe ...``: task observations and what envplane decides from them.

So far ``observe replay``: Nextflow trace files replayed through a memory policy and the
published baselines, online, scored as Sizey scores it (GB·h wasted, failed attempts, MAQ),
with the issue's targets checked per workflow. It runs here, not in the daemon: it needs only
the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envplane.cli.output import console

app = typer.Typer(help="Task observations in, actions out (memory right-sizing).", no_args_is_help=True)


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
    from envplane.errors import InvalidArgument
    from envplane.observations.service import baselines, evaluation

    files: list[Path] = []
    for path in traces:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(("README", ".")))
            files += [p for p in found if "timeseries" not in p.name]
        else:
            files.append(path)
    if not files:
        raise InvalidArgument("no trace files given")
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

"""The ``envplane`` console script: ``serve``, one command group per capability (``env``), and
the verbs that span capabilities (``ops``, ``events``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from envplane import __version__
from envplane.cli import activity, environments, observe, services, workers
from envplane.cli.output import err_console
from envplane.errors import EnvplaneError

app = typer.Typer(
    help="envplane: environments for workflow engines (daemon and client).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(environments.app, name="env")
app.add_typer(activity.ops_app, name="ops")
app.add_typer(activity.events_app, name="events")
app.add_typer(workers.app, name="pool")
app.add_typer(services.app, name="services")
app.add_typer(observe.app, name="observe")

# Exit codes a script can branch on, by error class.
EXIT_CODES = {
    "InvalidArgument": 2,
    "ResolutionFailed": 2,
    "NotFound": 3,
    "AlreadyExists": 4,
    "FailedPrecondition": 5,
    "EnvBusy": 5,
    "DeadlineExceeded": 6,
    "Unavailable": 7,
    "Unauthenticated": 8,
    "OutOfRange": 9,
    "EventsPruned": 9,
    "ResourceExhausted": 11,
    "PoolFailed": 5,
    "SessionLost": 5,
    "ServiceFailed": 5,
    "EngineUnavailable": 7,
    "WorkerCrashed": 12,
    "WorkerOutOfMemory": 13,
}


@app.command()
def serve(
    data_dir: Annotated[Path | None, typer.Option(help="Overrides ENVPLANE_DATA_DIR.")] = None,
    grpc_addr: Annotated[str | None, typer.Option(help="Overrides ENVPLANE_GRPC_ADDR.")] = None,
    http_addr: Annotated[str | None, typer.Option(help="Overrides ENVPLANE_HTTP_ADDR.")] = None,
) -> None:
    """Run the daemon: gRPC and REST on the configured addresses."""
    from envplane.config import Settings
    from envplane.server import serve as run

    overrides = {k: v for k, v in {"data_dir": data_dir, "grpc_addr": grpc_addr, "http_addr": http_addr}.items() if v}
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        run(settings)
    except (OSError, ValueError) as exc:
        err_console.print(Text(f"envplane serve: {exc}", style="red"), highlight=False)
        raise typer.Exit(1) from exc


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    try:
        app()
    except EnvplaneError as exc:
        err_console.print(Text.assemble(("error: ", "red"), exc.message), highlight=False)
        if exc.detail:
            err_console.print(exc.detail, markup=False, highlight=False)
        if exc.operation_id:
            err_console.print(
                f"(the whole output is in the audit record: envplane ops show {exc.operation_id})", highlight=False
            )
        sys.exit(EXIT_CODES.get(type(exc).__name__, 1))


if __name__ == "__main__":
    main()

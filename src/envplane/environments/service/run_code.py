"""Running users' code with an env's interpreter (``RunCode`` of the UV Venv Manager protocol).

The code runs in the env folder, in a process group of its own, recorded under ``run/`` like
uv (a restart after ``kill -9`` kills it), one at a time per env like other operations.
"""

from __future__ import annotations

import asyncio
import os
import time

from envplane.core.audit import OperationRecord, OpStatus
from envplane.core.capability import Tx
from envplane.core.files import write_atomic
from envplane.core.processes import ProcessResult, run_group, venv_environment
from envplane.environments.identity import EnvId
from envplane.environments.service import queries
from envplane.environments.service.engine import OperationEngine
from envplane.environments.service.views import RunOutcome
from envplane.errors import DeadlineExceeded, InvalidArgument, Unimplemented


async def run_code(
    engine: OperationEngine,
    env: EnvId,
    code: str,
    *,
    timeout: float = 0,
    deadline: float | None = None,
    fail_if_busy: bool = False,
) -> RunOutcome:
    """Run Python ``code`` with the env's interpreter, in the env folder, in a process group
    of its own: killed with its children when ``timeout`` (default: the setting) or the call's
    deadline passes. Audited as operation ``run``; a non-zero exit is a FAILED run, not an error."""
    settings = engine.settings
    if not settings.run_code_enabled:
        raise Unimplemented("RunCode is disabled on this daemon (ENVPLANE_RUN_CODE_ENABLED=false)")
    if not code.strip():
        raise InvalidArgument("code is empty")
    if not timeout >= 0:  # also refuses NaN
        raise InvalidArgument(f"timeout must be >= 0 seconds (0 = the default), got {timeout}")
    limit = timeout or settings.run_code_timeout_seconds
    by_deadline = False  # which limit stops the code, for the message
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("the call's deadline passed before the code could start")
        by_deadline = remaining < limit
        limit = min(limit, remaining)
    async with engine.env_locks.hold(env, holder="run", deadline=deadline, fail_if_busy=fail_if_busy):
        await engine.ready_record(env, "run code in")
        details = {"timeout_s": round(limit, 3), "code_bytes": len(code.encode())}
        op_id = await engine.start_operation(env, "run", details)
        result: ProcessResult | None = None
        try:
            result = await _run_python(engine, env, code, op_id, limit)
            if result.timed_out:
                why = (
                    "the call's deadline passed while the code ran"
                    if by_deadline
                    else f"the code ran longer than its timeout of {limit:g} s"
                )
                raise DeadlineExceeded(f"{why}; its process group was killed", detail=result.stderr[-4000:])
            done = result

            def finish(tx: Tx) -> OperationRecord:
                queries.touch_env(tx.db, env.key, time.time())
                return tx.finish(
                    op_id,
                    status=OpStatus.SUCCEEDED if done.exit_code == 0 else OpStatus.FAILED,
                    stdout=done.stdout,
                    stderr=done.stderr,
                    exit_code=done.exit_code,
                    error="" if done.exit_code == 0 else f"the code exited with code {done.exit_code}",
                )

            op = await engine.core.commit(finish)
        except BaseException as exc:
            await engine.fail_operation(op_id, exc, [result] if result else [])
            raise
    engine.core.observe(op)
    return RunOutcome(env, op, done.exit_code, done.stdout, done.stderr)


async def _run_python(engine: OperationEngine, env: EnvId, code: str, op_id: int, timeout: float) -> ProcessResult:
    """The code goes in a file (argv has a size limit); the env's venv is activated for it."""
    layout = engine.layout
    script = layout.data_dir.tmp / f"run-{op_id}.py"
    await asyncio.to_thread(write_atomic, script, code)
    venv = layout.venv_link(env)
    variables = venv_environment(os.environ, venv, venv / "bin")
    try:
        return await run_group(
            [str(layout.python_executable(env)), str(script)],
            label="code",
            run_dir=layout.data_dir.run,
            timeout=timeout,
            cwd=layout.project_dir(env),
            env=variables,
        )
    finally:
        script.unlink(missing_ok=True)

# envplane: two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
# A pinned uv of our own, so the lock file is read by the version that wrote it.
UV := .tools/bin/uv
RUN := $(UV) run --frozen
# The locked ray and its dependencies as wheels: test envs install them without an index.
RAY_WHEELS := .cache/ray-wheels
export ENVPLANE_TEST_RAY_WHEELS := $(abspath $(RAY_WHEELS))

.PHONY: run test test-fast test-all lint proto client bench bench-ray bench-workers bench-services bench-replay bench-observations example clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --python $(PYTHON)
	@touch $@

$(RAY_WHEELS)/.complete: uv.lock | $(UV)
	bash scripts/fetch_ray_wheels.sh $(UV) .tools/bin/pip $(RAY_WHEELS)
	@touch $@

run: .venv/.synced  ## start the daemon on defaults (gRPC 127.0.0.1:50051, REST 127.0.0.1:8000)
	$(RUN) envplane serve

# pytest and the Ray benchmark run from .venv directly, not under `uv run`: Ray notices a
# driver started by `uv run` and replays `uv run` on its workers (see README, Ray section).
test: .venv/.synced $(RAY_WHEELS)/.complete  ## the whole hermetic suite (real uv, gRPC, HTTP, SQLite, subprocesses)
	.venv/bin/python -m pytest

test-fast: .venv/.synced  ## the inner loop: everything but the `slow` (daemon subprocesses) and `ray` tests
	.venv/bin/python -m pytest -m "not slow and not ray and not network"

test-all: .venv/.synced $(RAY_WHEELS)/.complete  ## also the few tests that need the live package index
	.venv/bin/python -m pytest -m ""

lint: .venv/.synced  ## ruff, mypy --strict, the layer contracts (import-linter)
	$(RUN) ruff check src tests benchmarks examples scripts
	$(RUN) ruff format --check src tests benchmarks examples scripts
	$(RUN) mypy
	$(RUN) lint-imports

proto: .venv/.synced  ## regenerate src/envplane/v1 (and the compat protocol) from proto/
	$(RUN) bash scripts/gen_proto.sh

client: .venv/.synced  ## regenerate the blocking client (client/_sync) from the asyncio one (client/_async)
	.venv/bin/python scripts/unasync.py

bench: .venv/.synced  ## side-by-side benchmarks against raw uv (see benchmarks/README.md)
	$(RUN) python benchmarks/bench_environments.py

bench-ray: .venv/.synced  ## one task in a fresh env: envplane provider vs Ray's own uv runtime_env
	.venv/bin/python benchmarks/bench_ray.py

bench-workers: .venv/.synced  ## pools vs raw pipes, a bare grpc.aio echo, Ray actors, multiprocessing (offline)
	.venv/bin/python benchmarks/bench_workers.py

bench-replay: .venv/.synced  ## memory policies vs the published baselines on the real Nextflow traces
	.venv/bin/python benchmarks/bench_replay.py

bench-observations: .venv/.synced  ## observations/s (unary, stream) vs a bare gRPC echo; decision latency; replay speed
	.venv/bin/python benchmarks/bench_observations.py

bench-services: .venv/.synced  ## up -> healthy vs a shell script, kill detection, adoption (redis-server, postgresql)
	.venv/bin/python benchmarks/bench_services.py

example: .venv/.synced  ## examples/ray_batch.py: node variants with conflicting packages on local Ray
	.venv/bin/python examples/ray_batch.py --cleanup

clean:
	rm -rf .venv .tools .cache .pytest_cache .mypy_cache .ruff_cache

"""The REST contract, checked by schemathesis against a live daemon: every answer is documented
(status code, content type, body schema) and nothing is a server error. Also: the docs work
without a network (Swagger UI comes from the installed package)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.daemons import ThreadDaemon
from tests.support.settings import offline_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 15  # per operation


@pytest.fixture(scope="module")
def fuzzed_daemon(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, uv_cache: Path) -> Iterator[ThreadDaemon]:
    """A daemon of its own: the fuzzer deletes audit records and cleans envs up."""
    daemon = ThreadDaemon(offline_settings(tmp_path_factory.mktemp("fuzzed") / "data", [wheelhouse], uv_cache)).start()
    yield daemon
    daemon.stop()


def test_every_route_keeps_its_documented_contract(fuzzed_daemon: ThreadDaemon) -> None:
    """Each operation gets a bounded number of generated requests. (Driven from here rather than
    through schemathesis' pytest plugin, which does not run on pytest 9.)"""
    schema = schemathesis.openapi.from_url(f"{fuzzed_daemon.http_url}/openapi.json")
    failures: dict[str, str] = {}
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tried.append(operation.label)

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            if case.path in ("/v1/events", "/v1/services/{name}/logs"):
                case.query = {**(case.query or {}), "follow": "false"}  # a followed stream never ends
            if case.path == "/v1/services:health":
                case.query = {**(case.query or {}), "once": "true"}
            # No Docker engine here: a pull is UNAVAILABLE (503, documented), which is right.
            checks = CHECKS[1:] if case.path == "/v1/images:pull" else CHECKS
            case.call_and_validate(checks=checks, timeout=60)

        try:
            run()
        except Exception as exc:  # collect every operation's failures, then report them all
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    assert len(tried) >= 15, tried
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def test_the_docs_need_no_network(fuzzed_daemon: ThreadDaemon) -> None:
    page = httpx.get(f"{fuzzed_daemon.http_url}/docs", timeout=30)
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]]
    styles = [part.split('"')[0] for part in page.text.split('href="')[1:] if ".css" in part.split('"')[0]]
    assets = scripts + styles
    assert scripts and styles and all(a.startswith("/") for a in assets), assets
    for path in assets:
        asset = httpx.get(f"{fuzzed_daemon.http_url}{path}", timeout=30)
        assert asset.status_code == 200 and len(asset.content) > 10_000, path


def test_the_schema_documents_errors_and_real_content_types(fuzzed_daemon: ThreadDaemon) -> None:
    spec = httpx.get(f"{fuzzed_daemon.http_url}/openapi.json", timeout=30).json()
    paths = spec["paths"]
    assert set(paths["/v1/events"]["get"]["responses"]["200"]["content"]) == {"text/event-stream"}
    assert set(paths["/v1/environments:stream"]["post"]["responses"]["200"]["content"]) == {"application/x-ndjson"}
    assert next(iter(paths["/metrics"]["get"]["responses"]["200"]["content"])).startswith("text/plain")
    for path, operations in paths.items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert {"404", "409", "422", "500", "501", "504"} <= documented, (method, path)
            error = operation["responses"]["404"]["content"]["application/json"]["schema"]
            assert error["properties"]["error"]["required"] == ["code", "message", "detail"]

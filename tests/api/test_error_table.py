"""One table of bad requests, run against BOTH faces: each case must give the same gRPC code
(through the typed client) and the matching HTTP status and error body (over REST), with a
message that names the problem."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest

from envplane import errors
from envplane.client import EnvplaneClient
from tests.support.daemons import ThreadDaemon

BIG = 2**63  # one past what a database integer holds
HUGE_TOKEN = "A" * 100_000
TOKEN_PAST_INT64 = base64.urlsafe_b64encode(f"o:{BIG}".encode()).decode().rstrip("=")  # the server's format


@dataclass(frozen=True)
class Case:
    name: str
    error: type[errors.EnvplaneError]
    code: grpc.StatusCode
    http: int
    fragment: str
    grpc_call: Callable[[EnvplaneClient, str], Any] | None = None
    # (method, url with {wf}, json body or None, query params, headers)
    rest: tuple[str, str, Any, dict[str, Any], dict[str, str]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def rest(method: str, url: str, body: Any = None, params: dict[str, Any] | None = None, **headers: str) -> Any:
    return (method, url, body, params or {}, {k.replace("_", "-"): v for k, v in headers.items()})


INVALID = (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, 422)
NOT_FOUND = (errors.NotFound, grpc.StatusCode.NOT_FOUND, 404)

CASES = [
    Case(
        "bad workflow id",
        *INVALID,
        "workflow_id",
        lambda c, wf: c.environments.get("bad id!", "n"),
        rest("GET", "/v1/environments/bad id!/n"),
    ),
    Case(
        "option as a package",
        *INVALID,
        "packages[0]",
        lambda c, wf: c.environments.create(wf, "n", packages=["--index-url=x"]),
        rest("POST", "/v1/environments", {"workflow_id": "{wf}", "node_id": "n", "packages": ["--index-url=x"]}),
    ),
    Case(
        "python that is not installed",
        *INVALID,
        "python_version '3.4'",
        lambda c, wf: c.environments.create(wf, "n", python_version="3.4"),
        rest("POST", "/v1/environments", {"workflow_id": "{wf}", "node_id": "n", "python_version": "3.4"}),
    ),
    Case(
        "unresolvable package",
        *INVALID,
        "does-not-exist",
        lambda c, wf: c.environments.create(wf, "n", packages=["broken"]),
        rest("POST", "/v1/environments", {"workflow_id": "{wf}", "node_id": "n", "packages": ["broken"]}),
    ),
    Case(
        "missing env",
        *NOT_FOUND,
        "does not exist",
        lambda c, wf: c.environments.get(wf, "missing"),
        rest("GET", "/v1/environments/{wf}/missing"),
    ),
    Case(
        "delete of a missing env",
        *NOT_FOUND,
        "does not exist",
        lambda c, wf: c.environments.delete(wf, "missing"),
        rest("DELETE", "/v1/environments/{wf}/missing"),
    ),
    Case(
        "deps of a missing env",
        *NOT_FOUND,
        "does not exist",
        lambda c, wf: c.environments.add_deps(wf, "missing", ["alpha"]),
        rest("POST", "/v1/environments/{wf}/missing/dependencies", {"packages": ["alpha"]}),
    ),
    Case(
        "cleanup of everything",
        *INVALID,
        "idle_hours",
        lambda c, wf: c.environments.cleanup(0),
        rest("POST", "/v1/cleanup", {"idle_hours": 0}),
    ),
    Case(
        "page token not issued",
        *INVALID,
        "page_token",
        lambda c, wf: c.environments.list(page_token="zzz"),
        rest("GET", "/v1/environments", params={"page_token": "zzz"}),
    ),
    Case(
        "100 KB page token",
        *INVALID,
        "page_token 'AAAA",
        lambda c, wf: c.operations.list(page_token=HUGE_TOKEN),
        rest("GET", "/v1/operations", params={"page_token": HUGE_TOKEN[:8000]}),  # uvicorn takes 16 KB of URL
    ),
    Case(
        "page token past 2^63",
        *INVALID,
        "page_token",
        lambda c, wf: c.environments.list(page_token=TOKEN_PAST_INT64),
        rest("GET", "/v1/environments", params={"page_token": TOKEN_PAST_INT64}),
    ),
    Case(
        "page size too large",
        *INVALID,
        "page_size must be <= 500",
        lambda c, wf: c.operations.list(page_size=100_000),
        rest("GET", "/v1/operations", params={"page_size": 100_000}),
    ),
    Case(
        "page size past int32",
        *INVALID,
        "page_size",
        None,
        rest("GET", "/v1/environments", params={"page_size": 2**40}),
    ),
    Case(
        "operation status",
        *INVALID,
        "status 'WEIRD'",
        lambda c, wf: c.operations.list(status="weird"),
        rest("GET", "/v1/operations", params={"status": "weird"}),
    ),
    Case(
        "env status by name",
        *INVALID,
        "status 'bogus'",
        None,  # statuses are numbers on the gRPC wire (see the test below); the client checks names itself
        rest("GET", "/v1/environments", params={"status": "bogus"}),
    ),
    Case(
        "unknown event type",
        *INVALID,
        "unknown event type",
        lambda c, wf: list(c.events.watch(types=["Bogus"], follow=False)),
        rest("GET", "/v1/events", params={"types": "Bogus", "follow": "false"}),
    ),
    Case(
        "unknown subject kind",
        *INVALID,
        "unknown subject kind",
        lambda c, wf: list(c.events.watch(kinds=["planet"], follow=False)),
        rest("GET", "/v1/events", params={"kinds": "planet", "follow": "false"}),
    ),
    Case(
        "event cursor below 0",
        *INVALID,
        "after_cursor",
        lambda c, wf: list(c.events.watch(-1, follow=False)),
        rest("GET", "/v1/events", params={"after_cursor": -1, "follow": "false"}),
    ),
    Case(
        "event cursor past 2^63",
        *INVALID,
        "after_cursor must be an event cursor",
        None,  # int64 on the wire: gRPC cannot carry it
        rest("GET", "/v1/events", params={"after_cursor": BIG, "follow": "false"}),
    ),
    Case(
        "Last-Event-ID past 2^63",
        *INVALID,
        "Last-Event-ID must be an event cursor",
        None,
        rest("GET", "/v1/events", params={"follow": "false"}, Last_Event_ID=str(BIG)),
    ),
    Case(
        "Last-Event-ID that is not a number",
        *INVALID,
        "Last-Event-ID 'yesterday'",
        None,
        rest("GET", "/v1/events", params={"follow": "false"}, Last_Event_ID="yesterday"),
    ),
    Case(
        "deadline that is NaN",
        *INVALID,
        "X-Request-Timeout",
        None,  # a gRPC deadline is always a number of seconds
        rest("POST", "/v1/environments/{wf}/n/sync", X_Request_Timeout="nan"),
    ),
    Case(
        "deadline of 0",
        *INVALID,
        "X-Request-Timeout",
        None,
        rest("POST", "/v1/environments/{wf}/n/sync", X_Request_Timeout="0"),
    ),
    Case(
        "operation id of 0",
        *INVALID,
        "must be a positive operation id, got 0",
        lambda c, wf: c.operations.get(0),
        rest("GET", "/v1/operations/0"),
    ),
    Case(
        "operation id past 2^63",
        *INVALID,
        "operation id must be a positive operation id",
        None,  # int64 on the wire: gRPC cannot carry it
        rest("GET", f"/v1/operations/{BIG}"),
    ),
    Case(
        "operation that does not exist",
        *NOT_FOUND,
        "operation 99999999 does not exist",
        lambda c, wf: c.operations.get(99999999),
        rest("GET", "/v1/operations/99999999"),
    ),
    Case(
        "delete operations before NaN",
        *INVALID,
        "before",
        lambda c, wf: c.operations.delete(before=float("nan")),
        rest("DELETE", "/v1/operations", params={"before": "nan"}),
    ),
    Case(
        "unknown route",
        *NOT_FOUND,
        "no route GET /v1/nope",
        None,
        rest("GET", "/v1/nope"),
    ),
    Case(
        "wrong method",
        errors.Unimplemented,
        grpc.StatusCode.UNIMPLEMENTED,
        405,
        "PUT is not allowed on /v1/environments",
        None,
        rest("PUT", "/v1/environments", {}),
    ),
    Case(
        "body that is not JSON",
        *INVALID,
        "body: not valid JSON",
        None,
        rest("POST", "/v1/cleanup", b"{idle_hours: 1", Content_Type="application/json"),
    ),
    Case(
        "unknown body field",
        *INVALID,
        "package: Extra inputs are not permitted",
        None,  # a protobuf message has no unknown fields to set
        rest("POST", "/v1/environments", {"workflow_id": "{wf}", "node_id": "n", "package": ["alpha"]}),
    ),
    Case(
        "missing pool",
        *NOT_FOUND,
        "no pool named",
        lambda c, wf: c.workers.get_pool(f"{wf}-none"),
        rest("GET", "/v1/pools/{wf}-none"),
    ),
    Case(
        "bad pool name",
        *INVALID,
        "pool name",
        lambda c, wf: c.workers.execute("bad name!", "echo"),
        rest("POST", "/v1/pools/bad name!/execute", {"command": "echo"}),
    ),
    Case(
        "pool definition without an env",
        *INVALID,
        "spec.env is required",
        lambda c, wf: c.workers.create_pool(f"{wf}-p", "", "", "handler.py"),
        rest("POST", "/v1/pools", {"name": "p-err", "spec": {"handler": "handler.py"}}),
    ),
    Case(
        "pool in a missing env",
        *NOT_FOUND,
        "does not exist",
        lambda c, wf: c.workers.create_pool(f"{wf}-p", wf, "missing", "handler.py"),
        rest(
            "POST",
            "/v1/pools",
            {
                "name": "p-err",
                "spec": {"env": {"workflow_id": "wf-err", "node_id": "missing"}, "handler": "handler.py"},
            },
        ),
    ),
    Case(
        "args that are not JSON",
        *INVALID,
        "args_json is not JSON",
        None,
        rest("POST", "/v1/pools/{wf}-p/execute", {"command": "echo", "args_json": "{oops"}),
    ),
    Case(
        "negative call timeout",
        *INVALID,
        "timeout_seconds must be",
        lambda c, wf: c.workers.execute(f"{wf}-p", "echo", timeout=-1),
        rest("POST", "/v1/pools/{wf}-p/execute", {"command": "echo", "timeout_seconds": -1}),
    ),
    Case(
        "unknown field in a pool body",
        *INVALID,
        "min_sise",
        None,
        rest("POST", "/v1/pools", {"name": "p-err", "spec": {"min_sise": 2}}),
    ),
    Case(
        "observation without a process",
        *INVALID,
        "process is empty",
        lambda c, wf: c.observations.observe(pipeline=wf, status="COMPLETED"),
        rest("POST", "/v1/observations", {"pipeline": "p", "status": "COMPLETED"}),
    ),
    Case(
        "observation with a negative size",
        *INVALID,
        "peak_rss must be >= 0, got -1",
        lambda c, wf: c.observations.observe(process="P", status="COMPLETED", peak_rss_bytes=-1),
        rest("POST", "/v1/observations", {"process": "P", "status": "COMPLETED", "peak_rss_bytes": -1}),
    ),
    Case(
        "observation with an unknown status",
        *INVALID,
        "status 'FINISHED' is not one of",
        lambda c, wf: c.observations.observe(process="P", status="FINISHED"),
        rest("POST", "/v1/observations", {"process": "P", "status": "FINISHED"}),
    ),
    Case(
        "report of a pipeline never seen",
        *NOT_FOUND,
        "no observations of pipeline",
        lambda c, wf: c.observations.report(f"{wf}-none"),
        rest("GET", "/v1/observations:report", params={"pipeline": "never-seen"}),
    ),
    Case(
        "export in an unknown format",
        *INVALID,
        "format 'yaml' is not one of nextflow, json",
        lambda c, wf: c.observations.export(wf, format="yaml"),
        rest("GET", "/v1/observations:config", params={"pipeline": "p", "format": "yaml"}),
    ),
    Case(
        "unknown policy for a pipeline",
        *INVALID,
        "no policy named 'magic'",
        lambda c, wf: c.observations.set_pipeline(wf, policy="magic"),
        rest("PATCH", "/v1/pipelines/{wf}", {"policy": "magic"}),
    ),
    Case(
        "forget without a pipeline",
        *INVALID,
        "name the pipeline whose observations to forget",
        lambda c, wf: c.observations.forget(""),
        rest("DELETE", "/v1/observations"),
    ),
    Case(
        "forget a pipeline never seen",
        *NOT_FOUND,
        "no observations of pipeline",
        lambda c, wf: c.observations.forget(f"{wf}-none"),
        rest("DELETE", "/v1/observations", params={"pipeline": "never-seen"}),
    ),
    Case(
        "weblog event that is not Nextflow's",
        *INVALID,
        "is not a Nextflow weblog event",
        None,
        rest("POST", "/v1/observations:weblog", {"runName": "r", "runId": "1", "event": "bogus"}),
    ),
]


@pytest.fixture
def client(daemon: ThreadDaemon) -> Iterator[EnvplaneClient]:
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as c:
        yield c


@pytest.fixture
def http(daemon: ThreadDaemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=daemon.http_url, timeout=60) as c:
        yield c


@pytest.mark.parametrize("case", [c for c in CASES if c.grpc_call], ids=lambda c: c.name)
def test_grpc_face(case: Case, client: EnvplaneClient, wf: str) -> None:
    assert case.grpc_call is not None
    with pytest.raises(case.error) as info:
        case.grpc_call(client, wf)
    assert case.fragment in info.value.message
    assert info.value.__cause__.code() == case.code  # type: ignore[union-attr]
    assert len(info.value.message) < 2000, "messages echo input cut short"


@pytest.mark.parametrize("case", [c for c in CASES if c.rest], ids=lambda c: c.name)
def test_rest_face(case: Case, http: httpx.Client, wf: str) -> None:
    assert case.rest is not None
    method, url, body, params, headers = case.rest
    if isinstance(body, dict) and body.get("workflow_id") == "{wf}":
        body = {**body, "workflow_id": wf}
    content = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = http.request(method, url.replace("{wf}", wf), params=params, headers=headers, **content)
    assert response.status_code == case.http, response.text
    error = response.json()["error"]
    assert error["code"] == case.code.name
    assert case.fragment in error["message"]
    assert len(error["message"]) < 2000


def test_list_envs_with_a_status_number_the_enum_lacks(daemon: ThreadDaemon) -> None:
    """proto3 keeps unknown enum numbers: ListEnvs(status=99) must be refused, not INTERNAL."""
    from envplane.v1 import environments_pb2 as pb
    from envplane.v1 import environments_pb2_grpc as pb_grpc

    with grpc.insecure_channel(daemon.grpc_addr) as channel:
        stub = pb_grpc.EnvironmentServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListEnvs(pb.ListEnvsRequest(status=99), timeout=10)  # type: ignore[arg-type]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "status 99 is not an environment status" in info.value.details()


def test_every_error_class_has_the_same_code_on_both_faces_and_back() -> None:
    """The two server tables and the client's agree for the whole tree (WatcherOverflow
    included: ABORTED, not INTERNAL)."""
    import inspect

    from envplane.api.grpc_errors import status_for
    from envplane.api.rest_errors import http_status_for
    from envplane.client._errors import EXCEPTION_TABLE

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.EnvplaneError)]
    assert len(classes) >= 17
    for cls in classes:
        code = status_for(cls("x"))
        _, name = http_status_for(cls("x"))
        assert name == code.name, cls
        if cls is not errors.EnvplaneError and code != grpc.StatusCode.INTERNAL:
            assert issubclass(cls, EXCEPTION_TABLE[code]), (cls, code)
    assert status_for(errors.WatcherOverflow("x")) == grpc.StatusCode.ABORTED
    assert http_status_for(errors.EventsPruned("x")) == (410, "OUT_OF_RANGE")

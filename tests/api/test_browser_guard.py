"""A web page the user opens must not drive the daemon on loopback: rebinding Host names,
cross-site Origins and "simple" non-JSON POSTs are refused before any route runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.daemons import ThreadDaemon
from tests.support.settings import offline_settings


@pytest.fixture
def http(daemon: ThreadDaemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=daemon.http_url, timeout=30) as client:
        yield client


def _port(daemon: ThreadDaemon) -> int:
    return int(daemon.http_url.rpartition(":")[2])


def test_a_rebinding_host_name_is_refused(http: httpx.Client, daemon: ThreadDaemon) -> None:
    port = _port(daemon)
    refused = http.get("/v1/environments", headers={"Host": f"attacker.example:{port}"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        f"this daemon does not answer to Host 'attacker.example:{port}' (ENVPLANE_ALLOWED_HOSTS)"
    )
    for name in ("127.0.0.1", "localhost"):
        assert http.get("/v1/environments", headers={"Host": f"{name}:{port}"}).status_code == 200


def test_cross_site_requests_are_refused(http: httpx.Client, daemon: ThreadDaemon, wf: str) -> None:
    page = http.get("/v1/environments", headers={"Origin": "http://attacker.example"})
    assert page.status_code == 403 and page.json()["error"]["code"] == "PERMISSION_DENIED"
    assert "access-control-allow-origin" not in page.headers, "CORS stays closed"
    fetch = http.post(f"/v1/environments/{wf}/n/sync", headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch.status_code == 403
    own = http.get("/v1/environments", headers={"Origin": f"http://127.0.0.1:{_port(daemon)}"})
    assert own.status_code == 200, "the daemon's own origin (its docs page) is fine"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", b""), ("text/plain", b'{"packages": ["alpha"]}'), ("application/x-www-form-urlencoded", b"a=b")],
)
def test_simple_non_json_posts_never_reach_a_route(http: httpx.Client, wf: str, content_type: str, body: bytes) -> None:
    response = http.post(f"/v1/environments/{wf}/n/sync", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert "takes a JSON body (Content-Type: application/json)" in response.json()["error"]["message"]


def test_a_bodyless_post_without_content_type_is_fine(http: httpx.Client, wf: str) -> None:
    response = http.post(f"/v1/environments/{wf}/n/sync")  # curl -X POST …/sync
    assert response.status_code == 404, "it reached the route (no such env)"


def test_configured_origins_and_hosts_are_let_through(tmp_path: Path, wheelhouse: Path, uv_cache: Path) -> None:
    settings = offline_settings(
        tmp_path / "data",
        [wheelhouse],
        uv_cache,
        cors_origins=["http://app.example"],
        allowed_hosts=["envplane.internal"],
    )
    daemon = ThreadDaemon(settings).start()
    try:
        port = _port(daemon)
        with httpx.Client(base_url=daemon.http_url, timeout=30) as http:
            preflight = http.options(
                "/v1/environments",
                headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "http://app.example"
            listed = http.get("/v1/environments", headers={"Origin": "http://app.example"})
            assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == "http://app.example"
            assert http.get("/health", headers={"Host": f"envplane.internal:{port}"}).status_code == 200
            assert http.get("/health", headers={"Origin": "http://attacker.example"}).status_code == 403
    finally:
        daemon.stop()

"""The one server client against a real misbehaving HTTP server on loopback:
deadlines, size caps, errors that name the URL and the limit, SSE framing."""

from __future__ import annotations

import dataclasses
import time

import pytest

from console import server_client as sc
from console.server_client import (
    HEALTH,
    METRICS,
    Limits,
    ServerClient,
    ServerError,
    StreamLimits,
    SyncServerClient,
    normalize_url,
)
from tests.fixtures.hostile_server import PAGE, HostileServer

SHORT = Limits(deadline_s=2.0, max_bytes=METRICS.max_bytes)


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://h:1/", "http://h:1"),
        ("http://h:1/v1", "http://h:1"),
        ("http://h:1/v1/", "http://h:1"),
        ("http://h:1/metrics", "http://h:1"),
        ("https://h/x/health", "https://h/x"),
        ("  http://h:1  ", "http://h:1"),
    ],
)
def test_normalize_url(given: str, base: str) -> None:
    assert normalize_url(given) == base


def test_sync_get_page_and_health(hostile_server: HostileServer) -> None:
    with SyncServerClient(hostile_server.url("plain")) as client:
        assert client.metrics_page() == PAGE
        health = client.health()
        assert health.ok and health.detail == ""
        assert client.models() == ["gemma3-270m"]
        missing = client.get("/nope", HEALTH)
        assert missing.status == 404 and missing.error_message() == "Not Found"


async def test_async_get_page_and_health(hostile_server: HostileServer) -> None:
    async with ServerClient(hostile_server.url("plain")) as client:
        assert await client.metrics_page() == PAGE
        assert (await client.health()).ok
        assert await client.models() == ["gemma3-270m"]
        assert (await client.version_json()) == {"version": "0.0-hostile"}


def test_sync_drip_hits_the_deadline(hostile_server: HostileServer) -> None:
    url = hostile_server.url("drip")
    t0 = time.monotonic()
    with SyncServerClient(url) as client, pytest.raises(ServerError) as info:
        client.metrics_page(SHORT)
    elapsed = time.monotonic() - t0
    err = info.value
    assert err.kind == "deadline"
    assert f"{url}/metrics" in err.message and "2 s deadline" in err.message
    assert elapsed < 2.0 + 1.5 + 1.0  # deadline + at most one drip interval + slack


async def test_async_drip_hits_the_deadline(hostile_server: HostileServer) -> None:
    url = hostile_server.url("drip")
    async with ServerClient(url) as client:
        with pytest.raises(ServerError) as info:
            await client.metrics_page(SHORT)
        assert info.value.kind == "deadline" and "2 s deadline" in info.value.message
        health = await client.health(dataclasses.replace(HEALTH, deadline_s=1.5))
        assert not health.ok and not health.answered and "1.5 s deadline" in health.detail


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_big_page_stops_at_the_cap(hostile_server: HostileServer, mode: str) -> None:
    url = hostile_server.url("big")
    if mode == "sync":
        with SyncServerClient(url) as client, pytest.raises(ServerError) as info:
            client.metrics_page()
    else:
        async with ServerClient(url) as client:
            with pytest.raises(ServerError) as info:
                await client.metrics_page()
    assert info.value.kind == "too_large"
    assert f"{url}/metrics" in info.value.message and "8 MiB size cap" in info.value.message


def test_unreachable_names_the_url() -> None:
    with SyncServerClient("http://127.0.0.1:9") as client, pytest.raises(ServerError) as info:
        client.metrics_page()
    assert info.value.kind == "unreachable" and "http://127.0.0.1:9/metrics" in info.value.message
    assert not check_health_ok("http://127.0.0.1:9")


def check_health_ok(url: str) -> bool:
    return sc.check_health(url).ok


async def test_sse_yields_every_payload(hostile_server: HostileServer) -> None:
    async with ServerClient(hostile_server.url("escape")) as client:
        payloads = [p async for p in client.sse("/v1/chat/completions", {"stream": True})]
    assert payloads[-1] == "[DONE]"
    assert len(payloads) == 1 + 2 + 11 + 1 + 1


@pytest.mark.parametrize(
    ("limits", "cap"),
    [(StreamLimits(max_line_bytes=100), "100 bytes"), (StreamLimits(max_bytes=1024), "1 KiB")],
    ids=["line", "stream"],
)
async def test_sse_caps(hostile_server: HostileServer, limits: StreamLimits, cap: str) -> None:
    async with ServerClient(hostile_server.url("escape")) as client:
        with pytest.raises(ServerError) as info:
            async for _ in client.sse("/v1/chat/completions", {}, limits):
                pass
    assert info.value.kind == "too_large" and f"{cap} size cap" in info.value.message


async def test_sse_http_error_carries_the_servers_message(hostile_server: HostileServer) -> None:
    async with ServerClient(hostile_server.url("plain")) as client:
        with pytest.raises(ServerError) as info:
            async for _ in client.sse("/v1/other", {}):
                pass
    assert info.value.status == 404 and "Not Found" in info.value.message


def test_bearer_header_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "k-1")
    assert SyncServerClient("http://x")._headers["Authorization"] == "Bearer k-1"
    assert SyncServerClient("http://x", api_key="k-2")._headers["Authorization"] == "Bearer k-2"
    monkeypatch.delenv("VLLM_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert "Authorization" not in SyncServerClient("http://x")._headers

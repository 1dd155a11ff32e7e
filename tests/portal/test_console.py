"""The console over HTTP: access, sessions, scopes, actions, payload safety, the event tail,
panels, the live stream, the sampler's lifetime and the assets shipped in the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from portfolio_core.boundary.panels import Panel, register_panel, unregister_panel
from portfolio_core.boundary.timeline import default_timeline
from portfolio_core.portal import PortalConfig
from portfolio_core.portal._console import COOKIE
from portfolio_core.portal._console_events import (
    MASK,
    head_position,
    latest_events,
    render_event,
)
from portfolio_core.ports.event_store import RecordedEvent
from tests.portal.console_site import Site

READ_KEY = "viewer-key-0123456789"
WRITE_KEY = "operator-key-0123456789"
EVENTS_KEY = "events-only-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    config = PortalConfig(
        auth={
            "keys": [
                {"name": "viewer", "secret": READ_KEY, "scopes": [{"access": "read"}]},
                {"name": "operator", "secret": WRITE_KEY},
                {"name": "events-only", "secret": EVENTS_KEY, "scopes": [{"entries": ["events"]}]},
            ]
        },
        console={"interval": 0.05, "tail": 5},
    )
    site = Site(tmp_path_factory.mktemp("console-http"), config, key=WRITE_KEY)
    yield site
    site.close()


def client(site: Site, key: str | None = None) -> httpx.Client:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=site.served.base, headers=headers, timeout=10)


def login(site: Site, key: str) -> httpx.Client:
    http = client(site)
    reply = http.post("/console/login", data={"key": key})
    assert reply.status_code == 303
    return http


def test_without_credentials_every_console_route_is_refused_with_no_data(site: Site) -> None:
    http = client(site)
    page = http.get("/console")
    assert page.status_code == 401
    assert 'name="key"' in page.text  # the login form
    for name in site.registry.names():
        assert name not in page.text
    for method, path in [
        ("GET", "/console/api/state"),
        ("GET", "/console/api/live"),
        ("GET", "/console/api/events?entry=events"),
        ("POST", "/console/api/reload"),
        ("POST", "/console/api/breakers/flaky/reset"),
    ]:
        reply = http.request(method, path)
        assert reply.status_code == 401, path
        assert reply.headers["content-type"] == "application/problem+json"
        assert "flaky" not in reply.text
    assert (
        http.get("/console", headers={"authorization": "Bearer wrong-key-0000000000"}).status_code
        == 401
    )


def test_a_login_gives_a_signed_cookie_that_tampering_or_expiry_voids(site: Site) -> None:
    wrong = client(site).post("/console/login", data={"key": "not-the-key-0000000000"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    http = login(site, READ_KEY)
    cookie = http.cookies[COOKIE]
    header = http.post("/console/login", data={"key": READ_KEY}).headers["set-cookie"].lower()
    for part in ("httponly", "samesite=strict", "path=/console"):
        assert part in header
    state = http.get("/console/api/state")
    assert state.status_code == 200
    assert state.json()["who"] == {"name": "viewer", "auth": True, "can_reload": False}
    assert http.get("/console").status_code == 200

    name, expires, mac = cookie.split(".")
    forged = f"{name.replace('dmlld2Vy', 'b3BlcmF0b3I')}.{expires}.{mac}"  # viewer -> operator
    later = f"{name}.{int(expires) + 3600}.{mac}"
    console = site.served.portal.console
    assert console is not None
    expired = console._sign("viewer", int(time.time()) - 1)
    for token in (forged, later, expired, "garbage", ""):
        other = client(site)
        other.cookies.set(COOKIE, token)
        assert other.get("/console/api/state").status_code == 401, token
    logout = http.post("/console/logout")
    assert logout.status_code == 303
    assert "max-age=0" in logout.headers["set-cookie"].lower()


def test_a_key_sees_only_the_entries_its_scopes_name(site: Site) -> None:
    site.call_flaky()
    state = client(site, EVENTS_KEY).get("/console/api/state").json()
    assert [e["name"] for e in state["entries"]] == ["events"]
    assert {m["entry"] for m in state["methods"]} == {"events"}
    assert all(e["entry"] in (None, "events") for e in state["timeline"])
    assert set(state["tails"]) == {"events"}
    every = client(site, READ_KEY).get("/console/api/state").json()
    assert [e["name"] for e in every["entries"]] == site.registry.names()
    flaky = next(e for e in every["entries"] if e["name"] == "flaky")
    assert flaky["location"].endswith("manifest.yaml:16:3")
    assert flaky["boundary"] == ["metrics", "circuit breaker"]
    assert "llm.streaming" in flaky["capabilities"]


def test_a_reload_diff_shows_a_scoped_key_its_own_entries_only(site: Site) -> None:
    text = site.manifest.read_text()
    site.manifest.write_text(
        text.replace("reset_timeout: 60", "reset_timeout: 50").replace(
            "max_event_bytes: 8000000", "max_event_bytes: 7000000"
        )
    )
    try:
        reply = login(site, WRITE_KEY).post("/console/api/reload", json={"confirm": True})
        assert reply.status_code == 200
        timeline = client(site, EVENTS_KEY).get("/console/api/state").json()["timeline"]
        scoped = [e for e in timeline if e["kind"] == "reload"][-1]
        assert [c["entry"] for c in scoped["data"]["changed"]] == ["events"]
        assert "flaky" not in json.dumps(scoped)
        every = client(site, READ_KEY).get("/console/api/state").json()["timeline"]
        full = [e for e in every if e["kind"] == "reload"][-1]
        assert [c["entry"] for c in full["data"]["changed"]] == ["flaky", "events"]
        assert "flaky: protection.circuit_breaker.reset_timeout" in full["detail"]
    finally:
        site.manifest.write_text(text)


def test_actions_need_a_write_scope_a_confirmation_and_the_same_origin(site: Site) -> None:
    while site.call_flaky() != 503 or site.registry_breaker_state() != "open":
        pass
    url = "/console/api/breakers/flaky/reset"
    confirm = {"confirm": True}
    assert client(site, READ_KEY).post(url, json=confirm).status_code == 403
    assert client(site, EVENTS_KEY).post(url, json=confirm).status_code == 403
    operator = login(site, WRITE_KEY)
    assert operator.post(url, json={}).status_code == 400
    assert operator.post(url, json={"confirm": "yes"}).status_code == 400
    assert operator.post(url, data={"confirm": "true"}).status_code == 400  # a plain form
    assert (
        operator.post(url, json=confirm, headers={"origin": "http://evil.example"}).status_code
        == 403
    )
    assert site.registry_breaker_state() == "open"
    last = default_timeline().last_id
    reply = operator.post(url, json=confirm, headers={"origin": site.served.base})
    assert reply.status_code == 200
    assert reply.json() == {"entry": "flaky", "state": "closed"}
    assert site.registry_breaker_state() == "closed"
    titles = [e.title for e in default_timeline().since(last)]
    assert "operator reset the circuit breaker of 'flaky'" in titles
    assert operator.post("/console/api/breakers/events/reset", json=confirm).status_code == 400
    assert client(site, READ_KEY).post("/console/api/reload", json=confirm).status_code == 403


def test_payloads_are_masked_capped_and_cut_past_the_secrets_they_hold() -> None:
    secret = "s3cr3t-value-from-the-manifest"
    data = {
        "html": "<script>alert(1)</script>",
        "nested": {"Api_Key": "k-123", "list": [{"password": "p"}, {"ok": 1}]},
        "note": f"connect with {secret}",
    }
    event = _event(data, metadata={"authorization": "Bearer x"})
    shown = render_event(event, max_bytes=10_000, redact=lambda t: t.replace(secret, MASK))
    payload = json.loads(shown["payload"])
    assert payload["data"]["html"] == "<script>alert(1)</script>"  # text, escaped by the page
    assert payload["data"]["nested"]["Api_Key"] == MASK
    assert payload["data"]["nested"]["list"][0]["password"] == MASK
    assert payload["data"]["nested"]["list"][1] == {"ok": 1}
    assert payload["metadata"]["authorization"] == MASK
    assert secret not in shown["payload"]
    assert shown["truncated"] is False
    assert event.data["nested"]["Api_Key"] == "k-123"  # the stored event is untouched

    big = _event({"blob": "x" * 5_000_000})
    cut = render_event(big, max_bytes=16_384, redact=lambda t: t)
    assert cut["truncated"] is True
    assert cut["size"] > 5_000_000
    assert len(cut["payload"].encode()) <= 16_384

    # a secret the cut would halve is masked before the cut, not after
    edge = _event({"blob": "x" * 16_350 + secret})
    shown = render_event(edge, max_bytes=16_384, redact=lambda t: t.replace(secret, MASK))
    assert secret[:10] not in shown["payload"]


class GappyStore:
    """read_all over fixed positions with gaps (what a SQL store may have)."""

    capabilities = frozenset[str]()

    def __init__(self, positions: list[int]) -> None:
        self.events = [_event({"n": p}, position=p, type="T" if p % 2 else "U") for p in positions]
        self.reads = 0

    async def read_all(self, from_position: int = 1, limit: int | None = None) -> list[Any]:
        self.reads += 1
        found = [e for e in self.events if e.position >= from_position]
        return found[:limit] if limit is not None else found


async def test_the_latest_events_are_found_over_gaps_and_filters() -> None:
    positions = [1, 2, 5, 9, 10, 40, 41, 1000, 1003]
    store = GappyStore(positions)
    assert await head_position(store) == 1003  # type: ignore[arg-type]
    assert store.reads < 30
    assert await head_position(GappyStore([])) == 0  # type: ignore[arg-type]
    found, head, partial = await latest_events(store, limit=3)  # type: ignore[arg-type]
    assert [e.position for e in found] == [41, 1000, 1003]
    assert (head, partial) == (1003, False)
    odd, _, _ = await latest_events(store, limit=3, type="T")  # type: ignore[arg-type]
    assert [e.position for e in odd] == [9, 41, 1003]
    few, _, _ = await latest_events(store, limit=50, stream="s-2")  # type: ignore[arg-type]
    assert [e.position for e in few] == [2]


def test_the_events_endpoint_filters_by_stream_and_type(site: Site) -> None:
    for i in range(8):
        site.append(f"cart-{i % 2}", "Added" if i % 3 else "Removed", {"i": i})
    http = client(site, READ_KEY)
    reply = http.get("/console/api/events", params={"entry": "events", "stream": "cart-1"})
    assert reply.status_code == 200
    body = reply.json()
    assert {e["stream"] for e in body["events"]} == {"cart-1"}
    assert [json.loads(e["payload"])["data"]["i"] for e in body["events"]] == [1, 3, 5, 7]
    typed = http.get("/console/api/events", params={"entry": "events", "type": "Removed"}).json()
    assert [json.loads(e["payload"])["data"]["i"] for e in typed["events"]] == [0, 3, 6]
    assert http.get("/console/api/events", params={"entry": "flaky"}).status_code == 400
    assert (
        http.get("/console/api/events", params={"entry": "events", "limit": "x"}).status_code == 400
    )
    assert (
        client(site, EVENTS_KEY).get("/console/api/events", params={"entry": "nope"}).status_code
        == 403
    )


def test_panels_are_shown_and_a_failing_source_is_flagged(site: Site) -> None:
    async def jobs(registry: object) -> Panel:
        assert registry is site.registry
        return Panel("Jobs", ("state", "jobs"), [("ready", 3), ("dead", 1)], status="warning")

    def broken(_registry: object) -> Panel:
        raise RuntimeError("queue unreachable")

    register_panel("test-jobs", jobs)
    register_panel("test-broken", broken)
    register_panel("test-hidden", lambda _r: Panel("Flaky only", entry="flaky"))
    try:
        state = client(site, READ_KEY).get("/console/api/state").json()
        panels = {p["name"]: p for p in state["panels"]}
        assert panels["test-jobs"]["rows"] == [["ready", 3], ["dead", 1]]
        assert panels["test-jobs"]["status"] == "warning"
        assert panels["test-broken"]["status"] == "error"
        assert "RuntimeError: queue unreachable" in panels["test-broken"]["note"]
        assert "test-hidden" in panels
        scoped = client(site, EVENTS_KEY).get("/console/api/state").json()
        assert "test-hidden" not in {p["name"] for p in scoped["panels"]}
    finally:
        for name in ("test-jobs", "test-broken", "test-hidden"):
            unregister_panel(name)


def test_the_live_stream_sends_the_state_then_updates_and_stops_sampling_when_closed(
    site: Site,
) -> None:
    console = site.served.portal.console
    assert console is not None
    assert console.sampler.task is None  # nobody watches: nothing runs
    frames: list[tuple[str, Any]] = []
    http = client(site, READ_KEY)
    with http.stream("GET", "/console/api/live") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                frames.append((kind, json.loads(line[6:])))
                if len(frames) == 1:
                    assert console.sampler.task is not None
                    default_timeline().publish("test.live", "published while watched")
                if any(
                    t["title"] == "published while watched"
                    for k, f in frames
                    if k == "tick"
                    for t in f["timeline"]
                ):
                    break
    assert frames[0][0] == "hello"
    assert {e["name"] for e in frames[0][1]["entries"]} == set(site.registry.names())
    deadline = time.monotonic() + 5
    while console.sampler.task is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert console.sampler.task is None
    assert console.sampler.watchers == 0


def test_the_page_and_assets_carry_a_strict_content_security_policy(site: Site) -> None:
    http = login(site, READ_KEY)
    page = http.get("/console")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert '<script src="/console/static/console.js"' in page.text
    script = http.get("/console/static/console.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text  # everything received goes in as text
    assert http.get("/console/static/../_console.py").status_code == 404
    assert http.get("/console/static/secret.txt").status_code == 404


def test_the_console_can_be_turned_off() -> None:
    from portfolio_core.portal import Portal
    from portfolio_core.registry import Registry

    portal = Portal(Registry(), PortalConfig(console={"enabled": False}))
    assert portal.console is None
    assert all(not getattr(r, "path", "").startswith("/console") for r in portal.routes())


@pytest.mark.skipif(
    os.environ.get("PORTFOLIO_CORE_SKIP_WHEEL") == "1", reason="PORTFOLIO_CORE_SKIP_WHEEL=1"
)
def test_the_wheel_ships_the_console_assets(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (dev extra)")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("portfolio_core-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ("console.html", "login.html", "console.js", "console.css", "favicon.svg"):
        assert f"portfolio_core/portal/static/{asset}" in names


def _event(
    data: dict[str, Any],
    *,
    metadata: dict[str, Any] | None = None,
    position: int = 1,
    type: str = "T",
) -> RecordedEvent:
    return RecordedEvent(
        id=f"id-{position}",
        stream=f"s-{position}",
        type=type,
        data=data,
        metadata=metadata or {},
        version=1,
        position=position,
        recorded_at=datetime.now(UTC),
    )

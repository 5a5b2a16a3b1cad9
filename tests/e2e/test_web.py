"""The web page in a real headless browser (Playwright driving Debian's Chromium) against a served process.

The browser never downloads anything: it is /usr/bin/chromium (`.ci/run` installs Debian's
`chromium`). Every test records the page's console errors and the host of every request it makes:
there must be no error and no host but the service's.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.support.process import create_key, log_lines, start_server, stop_server

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
NEGOTIATION = "us-china-trade-2025"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SVG = "{http://www.w3.org/2000/svg}"


def _need(reason: str) -> None:
    # CI installs the browser; a developer machine without it skips, CI fails loudly.
    if os.environ.get("CI") or os.environ.get("PARLEY_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]


@dataclass
class Service:
    base_url: str
    database_url: str
    key: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    log: Path | None = None

    @property
    def host(self) -> str:
        return urlparse(self.base_url).netloc


def _demo(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "service", "demo", "load", "--database", database_url], check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The shipped dataset, served with public reads (as `make run` users would open it)."""
    folder = tmp_path_factory.mktemp("web-public")
    database = str(folder / "parley.db")
    _demo(database)
    process, base_url = start_server(
        database, folder / "server.log",
        env={"PARLEY_PUBLIC_READ": "1", "PARLEY_SIGNING_KEY_FILE": str(folder / "signing.key")},
    )
    yield Service(base_url, database, log=folder / "server.log")
    stop_server(process)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Reads need a key; one statement carries a source link and was later corrected."""
    folder = tmp_path_factory.mktemp("web-keyed")
    database = str(folder / "parley.db")
    _demo(database)
    admin = create_key(database, "web-editor", "admin")
    reader = create_key(database, "web-reader", "reader")
    process, base_url = start_server(
        database, folder / "server.log", env={"PARLEY_SIGNING_KEY_FILE": str(folder / "signing.key")}
    )
    source = {
        "name": "Reuters", "kind": "wire", "title": "Example report", "url": "https://www.reuters.com/world/example",
        "published_at": "2025-06-02", "reliability": "B", "credibility": 2,
    }
    statement = {
        "type": "statement_made", "occurred_on": "2025-06-02", "source": source, "topics": ["exit-bans"],
        "summary": "A spokesperson comments on the exit bans.",
        "speaker": {"name": "A. Spokesperson", "role": "Spokesperson", "party": "CN"},
        "paraphrase": "Says the cases are handled according to law.",
    }
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as client:
        first = client.post(f"/v1/negotiations/{NEGOTIATION}/events", json=statement)
        assert first.status_code == 201, first.text
        corrected = {**statement, "summary": "A foreign-ministry spokesperson comments on the exit bans."}
        fix = client.post(
            f"/v1/negotiations/{NEGOTIATION}/events",
            json={
                "type": "event_corrected", "occurred_on": "2025-06-03", "target": first.json()["events"][0]["event_id"],
                "replacement": corrected, "reason": "the speaker's office was wrong",
            },
        )
        assert fix.status_code == 201, fix.text
    ids = {"statement": first.json()["events"][0]["event_id"], "correction": fix.json()["events"][0]["event_id"]}
    yield Service(base_url, database, reader, ids)
    stop_server(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        _need("the playwright package is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        _need(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        # launch() gives every run a fresh temporary profile; the browser is never downloaded
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Watched:
    """A page whose console errors and request hosts are recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.hosts: set[str] = set()
        self.requests: list[tuple[str, dict[str, str]]] = []
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("request", self._request)

    def _request(self, request) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss"):
            self.hosts.add(url.netloc)
        elif url.scheme not in ("data", "blob", "about"):
            self.hosts.add(f"{url.scheme}:")
        self.requests.append((request.url, request.headers))

    def check(self, service: Service) -> None:
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.hosts <= {service.host}, f"requests to other hosts: {self.hosts - {service.host}}"


@pytest.fixture
def open_page(browser: Browser) -> Iterator:
    contexts = []

    def opener(width: int = 1366, height: int = 900, **options: object) -> Watched:
        context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block", **options)
        contexts.append(context)
        return Watched(context.new_page())

    yield opener
    for context in contexts:
        context.close()


def total(page: Page, direction: str) -> str:
    return page.locator(f'#state [data-direction="{direction}"] .total-value').inner_text()


def wait_state(page: Page, as_of: str) -> None:
    page.wait_for_selector(f'#state[data-as-of="{as_of}"][aria-busy="false"]')


# --- the page --------------------------------------------------------------------------------


def test_slider_moves_the_state_and_the_url_carries_the_date(shipped: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    started = time.perf_counter()
    page.goto(f"{shipped.base_url}/")
    page.wait_for_selector('#state [data-direction="US->CN"] .total-value')
    wall = time.perf_counter() - started
    first_state = page.evaluate("window.parleyTimings.firstState")
    print(f"\nweb page: first state panel {first_state:.0f} ms after navigation start ({wall * 1000:.0f} ms wall)")
    assert "US–China trade talks 2025" in page.title() and "Parley" in page.title()
    page.wait_for_selector("#timeline .ev")
    page.wait_for_selector("#chart svg .step")

    page.fill("#as-of-date", "2025-05-13")
    wait_state(page, "2025-05-13")
    assert total(page, "US->CN") == "145"
    assert total(page, "CN->US") == "125"
    assert page.locator("#as-of-slider").get_attribute("aria-valuetext") == "13 May 2025"

    page.focus("#as-of-slider")
    page.keyboard.press("ArrowRight")  # one day on
    wait_state(page, "2025-05-14")
    assert total(page, "US->CN") == "30"
    assert total(page, "CN->US") == "10"
    assert page.locator("#as-of-date").input_value() == "2025-05-14"
    truce = page.locator("#context .truce").inner_text()
    assert "active" in truce.lower() and "expires 12 Aug 2025" in truce and "90 days left" in truce
    query = parse_qs(urlparse(page.url).query)
    assert query["as_of"] == ["2025-05-14"] and query["negotiation"] == [NEGOTIATION]
    assert "known_at" not in query

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#as-of-slider").blur()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True)

    # The shared URL opens the same view.
    again = open_page()
    again.page.goto(page.url)
    wait_state(again.page, "2025-05-14")
    assert again.page.locator("#as-of-date").input_value() == "2025-05-14"
    assert total(again.page, "US->CN") == "30"

    # known_at joins the URL when set, and round-trips too.
    page.fill("#known-at", "2030-01-01T00:00")
    page.wait_for_url(lambda url: "known_at=" in url)
    assert parse_qs(urlparse(page.url).query)["known_at"] == ["2030-01-01T00:00:00Z"]
    third = open_page()
    third.page.goto(page.url)
    wait_state(third.page, "2025-05-14")
    assert third.page.locator("#known-at").input_value().startswith("2030-01-01T00:00")
    assert total(third.page, "US->CN") == "30"
    for each in (watched, again, third):
        each.check(shipped)


def test_legal_basis_control_filters_the_totals(shipped: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{shipped.base_url}/?as_of=2025-05-14")
    wait_state(page, "2025-05-14")
    page.wait_for_selector("#timeline .ev")
    page.select_option("#legal-basis", "Section 301, Trade Act of 1974")
    expect(page.locator("#state")).to_contain_text("Legal basis: Section 301")
    assert total(page, "US->CN") == "0"  # Section 301 lines are product-specific: listed, not added
    assert "Section 301 tariff on Chinese semiconductors" in page.locator('#state [data-direction="US->CN"]').inner_text()
    assert parse_qs(urlparse(page.url).query)["legal_basis"] == ["Section 301, Trade Act of 1974"]
    page.select_option("#legal-basis", "IEEPA")
    expect(page.locator("#state")).to_contain_text("Legal basis: IEEPA")
    assert total(page, "US->CN") == "30"
    watched.check(shipped)


def test_an_event_opens_with_its_source_and_record(shipped: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{shipped.base_url}/?as_of=2025-05-14")
    page.wait_for_selector("#timeline .ev")
    marker = page.locator("#timeline .ev.type-truce_agreed").first
    marker.focus()
    page.keyboard.press("Enter")  # markers are buttons: the keyboard opens them too
    detail = page.locator("#detail")
    page.wait_for_selector("#detail .source-name")
    assert detail.is_visible()
    assert "truce agreed" in page.locator("#detail-title").inner_text().lower()
    assert "The White House" in page.locator("#detail .source-name").inner_text()
    assert page.locator("#detail .source-grade").inner_text().startswith("A1")
    assert page.locator("#detail .recorded-by").inner_text() == "parley-demo"
    recorded_at = page.locator("#detail .recorded-at").inner_text()
    assert dt.datetime.fromisoformat(recorded_at).year >= 2025
    assert "geneva-truce" in page.locator("#detail .payload").inner_text()
    page.keyboard.press("Escape")
    assert not detail.is_visible()
    watched.check(shipped)


def test_the_timeline_has_lanes_spans_deadlines_and_filters(shipped: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{shipped.base_url}/?as_of=2025-08-12")
    page.wait_for_selector("#timeline .ev")
    for lane in ("rounds", "truces", "statements", "measures", "deadlines", "issues"):
        assert page.locator(f"#timeline .lane-{lane}").count() == 1
    # the truce as spans: the first 90 days, then its three extensions (Stockholm, Busan, September 2026)
    assert page.locator("#timeline .ev.span").count() == 4
    assert page.locator("#timeline .ev.span.extension").count() == 3
    # the truce deadline: first due 12 Aug (moved), then 10 Nov
    titles = page.locator("#timeline .ev.due").evaluate_all("els => els.map(e => e.title)")
    assert any("12 Aug 2025 (moved later)" in t for t in titles) and any("10 Nov 2025" in t for t in titles)
    measures = page.locator("#timeline .ev.type-measure_changed").count()
    page.select_option("#filter-party", "CN")
    cn = page.locator("#timeline .ev.type-measure_changed")
    assert 0 < cn.count() < measures
    assert all("party-CN" in c for c in cn.evaluate_all("els => els.map(e => e.className)"))
    page.select_option("#filter-topic", "exit-bans")
    topics = page.locator("#timeline .ev").evaluate_all("els => els.map(e => e.dataset.topics)")
    assert topics and all("exit-bans" in t.split() for t in topics)
    page.locator("#filter-kinds input[value=statements]").uncheck()
    assert page.locator("#timeline .lane-statements").count() == 0
    query = parse_qs(urlparse(page.url).query)
    assert query["party"] == ["CN"] and query["topic"] == ["exit-bans"] and "statements" not in query["kinds"][0]
    watched.check(shipped)


def test_chart_steps_show_the_measures_behind_them(shipped: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{shipped.base_url}/?as_of=2025-05-13")
    page.wait_for_selector("#chart svg .step")
    page.wait_for_selector("#timeline .ev")
    # from 11 Apr (the electronics exemption, retroactive to 5 Apr) to the Geneva cut
    step = page.locator('#chart .step[data-direction="US->CN"][data-total="145"][data-from="2025-04-11"]')
    step.hover()
    tip = page.locator("#chart-tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "US → CN: 145%" in text and "IEEPA reciprocal tariff on China" in text and "125%" in text
    assert "listed products, not in total" in text  # the Section 301 lines
    assert page.locator("#chart svg .as-of-line").get_attribute("visibility") == "visible"
    chart_text = page.locator("#chart svg").inner_html()
    assert "Geneva" in chart_text and "Stockholm" in chart_text and "extended to" in chart_text
    watched.check(shipped)


def test_phone_width_and_keyboard(shipped: Service, open_page) -> None:
    watched = open_page(390, 844)
    page = watched.page
    page.goto(f"{shipped.base_url}/?as_of=2025-05-14")
    wait_state(page, "2025-05-14")
    page.wait_for_selector("#timeline .ev")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391  # the timeline scrolls inside its box
    assert page.locator('#state [data-direction="US->CN"] .total-value').is_visible()
    reached = []
    for _ in range(30):  # a date input is three fields and a button
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert {"as-of-date", "as-of-slider", "known-at", "legal-basis"} <= set(reached), reached
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-phone.png"))
    watched.check(shipped)


def test_a_key_entered_once_is_used_for_every_read(keyed: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{keyed.base_url}/?as_of=2025-06-05")
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", keyed.key or "")
    page.click("#key-save")
    wait_state(page, "2025-06-05")
    assert total(page, "US->CN") == "30"
    page.wait_for_selector("#timeline .ev")
    page.wait_for_selector("#chart svg")
    assert page.evaluate("localStorage.getItem('parley.key')") == keyed.key
    api_requests = [(url, headers) for url, headers in watched.requests if "/v1/" in url]
    assert api_requests and all(h.get("authorization") == f"Bearer {keyed.key}" for _, h in api_requests[-3:])

    # The corrected statement: its link, and the correction with who made it.
    page.locator(f'#timeline .ev[data-event-id="{keyed.extra["statement"]}"]').click()
    page.wait_for_selector("#detail .source-name")
    link = page.locator("#detail a.source-link")
    assert link.get_attribute("href") == "https://www.reuters.com/world/example"
    assert page.locator("#detail .source-grade").inner_text().startswith("B2")
    page.wait_for_selector("#detail .amendments")
    amendments = page.locator("#detail .amendments").inner_text()
    assert "event corrected" in amendments and "web-editor" in amendments and "the speaker's office was wrong" in amendments
    page.keyboard.press("Escape")

    # A reload reads with the stored key: no prompt.
    page.reload()
    wait_state(page, "2025-06-05")
    assert not page.locator("#key-dialog").is_visible()
    # 401s are answered by the key prompt; the browser logs each as a failed resource load.
    watched.errors = [e for e in watched.errors if not ("Failed to load resource" in e and "401" in e)]
    watched.check(keyed)


# --- the chart as a file ---------------------------------------------------------------------


def _steps(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{SVG}g"))


def test_tariff_chart_svg_and_png(shipped: Service, keyed: Service) -> None:
    chart = f"{shipped.base_url}/v1/negotiations/{NEGOTIATION}/charts/tariffs"
    answer = httpx.get(f"{chart}.svg", timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/svg+xml")
    steps = [g for g in _steps(answer.text) if g.get("class") == "step"]
    us = [(g.get("data-from"), g.get("data-total")) for g in steps if g.get("data-direction") == "US->CN"]
    assert ("2025-04-10", "145") in us and ("2025-05-14", "30") in us
    geneva = next(g for g in steps if g.get("data-direction") == "US->CN" and g.get("data-total") == "145")
    tooltip = geneva.find(f"{SVG}title").text or ""
    assert "IEEPA reciprocal tariff on China: 125%" in tooltip and "not in the total" in tooltip
    assert "style=" not in answer.text  # presentation attributes only: safe to inline under the page's CSP

    ieepa = httpx.get(f"{chart}.svg", params={"legal_basis": "IEEPA", "from": "2025-05-01", "to": "2025-06-30"}, timeout=30)
    first = [g for g in _steps(ieepa.text) if g.get("data-direction") == "US->CN"]
    assert [(g.get("data-from"), g.get("data-total")) for g in first] == [("2025-05-01", "145"), ("2025-05-14", "30")]

    assert httpx.get(f"{chart}.svg", params={"from": "2025-06-01", "to": "2025-05-01"}, timeout=30).status_code == 400
    missing = httpx.get(f"{shipped.base_url}/v1/negotiations/nope/charts/tariffs.svg", timeout=30)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    keyed_chart = f"{keyed.base_url}/v1/negotiations/{NEGOTIATION}/charts/tariffs.svg"
    assert httpx.get(keyed_chart, timeout=30).status_code == 401
    assert httpx.get(keyed_chart, headers={"Authorization": f"Bearer {keyed.key}"}, timeout=30).status_code == 200

    png = httpx.get(f"{chart}.png", timeout=30)
    try:
        import PIL  # noqa: F401
    except ImportError:
        assert png.status_code == 501
    else:
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")

    operations = httpx.get(f"{shipped.base_url}/schema/openapi.json", timeout=30).json()["paths"]
    svg_route = operations["/v1/negotiations/{negotiation_id}/charts/tariffs.svg"]["get"]
    assert svg_route["operationId"] == "getTariffChartSvg" and {"200", "401", "404"} <= set(svg_route["responses"])
    assert "/" not in operations  # the page is not part of the API


def test_page_headers_keep_it_on_this_origin(shipped: Service) -> None:
    page = httpx.get(f"{shipped.base_url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<title>" in page.text and "http://" not in page.text and "https://" not in page.text
    for asset in ("parley.js", "parley.css", "favicon.svg"):
        assert httpx.get(f"{shipped.base_url}/static/web/{asset}", timeout=30).status_code == 200


def _record_through(service: Service) -> dt.date:
    state = httpx.get(f"{service.base_url}/v1/negotiations/{NEGOTIATION}/state/truce", timeout=30).json()
    return dt.date.fromisoformat(state["coverage"]["record_through"])


def test_a_date_past_the_record_shows_a_banner_and_a_date_within_it_none(shipped: Service, open_page) -> None:
    through = _record_through(shipped)
    watched = open_page()
    page = watched.page
    later = (through + dt.timedelta(days=120)).isoformat()

    page.goto(f"{shipped.base_url}/?as_of={later}")
    wait_state(page, later)
    banner = page.locator("#beyond-record")
    expect(banner).to_be_visible()
    assert "Past the end of the record" in banner.inner_text()

    page.goto(f"{shipped.base_url}/?as_of={through.isoformat()}")
    wait_state(page, through.isoformat())
    expect(banner).to_be_hidden()
    watched.check(shipped)


def test_the_chart_draws_nothing_solid_past_the_record_in_svg_and_png(shipped: Service) -> None:
    through = _record_through(shipped)
    chart = f"{shipped.base_url}/v1/negotiations/{NEGOTIATION}/charts/tariffs"
    params = {"from": (through - dt.timedelta(days=60)).isoformat(), "to": (through + dt.timedelta(days=60)).isoformat()}
    svg = ET.fromstring(httpx.get(f"{chart}.svg", params=params, timeout=30).text)
    left, right = float(svg.get("data-x0")), float(svg.get("data-x1"))
    span = 121
    boundary = left + (right - left) * 61 / span  # the start of the day after record_through
    us = [p for p in svg.iter(f"{SVG}polyline") if p.get("stroke") == "#c62828"]
    solid = [p for p in us if not p.get("stroke-dasharray")]
    dashed = [p for p in us if p.get("stroke-dasharray")]
    xs = lambda line: [float(point.split(",")[0]) for point in line.get("points").split()]  # noqa: E731
    assert solid and dashed
    assert max(max(xs(line)) for line in solid) <= boundary + 0.1
    assert min(min(xs(line)) for line in dashed) >= boundary - 0.1
    labels = [t.text or "" for t in svg.iter(f"{SVG}text")]
    assert f"projection: the record ends {through.isoformat()}" in labels

    try:
        from PIL import Image
    except ImportError:
        return
    import io

    image = Image.open(io.BytesIO(httpx.get(f"{chart}.png", params=params, timeout=30).content)).convert("RGB")
    scale = image.width / float(svg.get("width"))
    # the last flat piece of the projected line (where no other direction's line lies on top of it)
    (x0, y0), (x1, _) = [tuple(float(v) for v in point.split(",")) for point in dashed[-1].get("points").split()][-2:]
    row = round(y0 * scale)
    red = [image.getpixel((x, row))[0] > 150 and image.getpixel((x, row))[1] < 90
           for x in range(round(x0 * scale) + 4, round(x1 * scale) - 4)]
    # the projected line is dashed: red and not red alternate along it
    assert any(red) and not all(red)
    assert sum(1 for a, b in zip(red, red[1:]) if a != b) > 10


def test_one_far_off_date_cannot_stretch_the_pages_range_and_a_retracted_one_counts_for_nothing(shipped: Service, open_page) -> None:
    """A deadline due 2999-12-31 leaves the as-of range within five years of the record; retracted, it is gone from it."""
    reporter = create_key(shipped.database_url, "web-far-reporter", "reporter")
    headers = {"Authorization": f"Bearer {reporter}"}
    with httpx.Client(base_url=shipped.base_url, headers=headers, timeout=30) as client:
        assert client.post("/v1/negotiations", json={"id": "far-off", "title": "Far off", "parties": ["US", "CN"]}).status_code == 201
        deadline = {"type": "deadline_set", "occurred_on": "2025-03-01", "deadline_id": "far", "title": "Far off", "due_on": "2999-12-31"}
        appended = client.post("/v1/negotiations/far-off/events", json=deadline)
        assert appended.status_code == 201, appended.text
        near = {"type": "deadline_set", "occurred_on": "2025-03-02", "deadline_id": "near", "title": "Near", "due_on": "2025-04-01"}
        assert client.post("/v1/negotiations/far-off/events", json=near).status_code == 201

    def range_of_page() -> tuple[str, str]:
        watched = open_page()
        watched.page.goto(f"{shipped.base_url}/?negotiation=far-off&as_of=2025-03-15")
        watched.page.wait_for_selector("#timeline .ev")
        bounds = watched.page.locator("#as-of-date")
        watched.check(shipped)
        return bounds.get_attribute("min"), bounds.get_attribute("max")

    # negotiation_opened occurred today (the day the test opened it): the latest event, so the cap runs from today
    today = dt.date.today()
    start, end = range_of_page()
    assert start == "2025-03-01"
    assert end <= (today + dt.timedelta(days=1826)).isoformat(), end
    with httpx.Client(base_url=shipped.base_url, headers=headers, timeout=30) as client:
        retract = {"type": "event_retracted", "occurred_on": "2025-03-03", "target": appended.json()["events"][0]["event_id"],
                   "reason": "entered by mistake"}
        assert client.post("/v1/negotiations/far-off/events", json=retract).status_code == 201, "retraction refused"
    start, end = range_of_page()
    assert (start, end) == ("2025-03-02", (today + dt.timedelta(days=30)).isoformat())


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
def test_the_api_docs_list_the_operations_with_no_network(shipped: Service, open_page, path: str) -> None:
    """Everything the documentation page loads comes from the server itself: cut every other host off."""
    watched = open_page()
    cut_off: list[str] = []

    def only_this_server(route) -> None:  # noqa: ANN001 - playwright's Route
        if urlparse(route.request.url).netloc == shipped.host:
            route.continue_()
        else:
            cut_off.append(route.request.url)
            route.abort("internetdisconnected")

    watched.page.route("**/*", only_this_server)
    watched.page.goto(f"{shipped.base_url}{path}")
    watched.page.wait_for_selector(".opblock-summary-operation-id, .opblock-summary-path", timeout=20_000)
    operations = watched.page.locator(".opblock").count()
    assert operations >= 40, operations
    assert watched.page.get_by_text("listNegotiationEvents").count() + watched.page.locator('[data-path="/v1/negotiations/{negotiation_id}/events"]').count() >= 1
    assert cut_off == [], f"the docs page asked for other hosts: {cut_off}"
    assert not [e for e in watched.errors if "Failed to load resource" not in e], watched.errors


# --- the page without dead ends --------------------------------------------------------------


def _without_refusals(watched: Watched, *statuses: int) -> None:
    """The browser logs each refused fetch as a failed resource load; the page answered it, so it is no error."""
    watched.errors = [e for e in watched.errors if not ("Failed to load resource" in e and any(str(s) in e for s in statuses))]


def test_the_chart_downloads_carry_the_stored_key_and_the_svg_parses(keyed: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{keyed.base_url}/?as_of=2025-06-05")
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", keyed.key or "")
    page.click("#key-save")
    page.wait_for_selector("#chart svg")

    with page.expect_download(timeout=10_000) as caught:
        page.click("#chart-svg")
    svg = caught.value
    assert svg.suggested_filename == f"{NEGOTIATION}-tariffs.svg"
    root = ET.parse(svg.path()).getroot()
    assert root.tag == f"{SVG}svg"
    steps = [g for g in root.iter(f"{SVG}g") if g.get("class") == "step"]
    assert ("2025-05-14", "30") in [(g.get("data-from"), g.get("data-total")) for g in steps if g.get("data-direction") == "US->CN"]

    with page.expect_download(timeout=10_000) as caught:
        page.click("#chart-png")
    png = Path(caught.value.path()).read_bytes()
    try:
        import PIL  # noqa: F401
    except ImportError:
        expect(page.locator("#message")).to_contain_text("PNG")
    else:
        assert caught.value.suggested_filename == f"{NEGOTIATION}-tariffs.png" and png.startswith(b"\x89PNG\r\n\x1a\n")
    charts = [headers for url, headers in watched.requests if "/charts/tariffs." in url]
    assert len(charts) >= 3 and all(h.get("authorization") == f"Bearer {keyed.key}" for h in charts)
    _without_refusals(watched, 401)
    watched.check(keyed)


def _luminance(css: str) -> float:
    channels = [float(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")]
    assert len(channels) == 3 or channels[3] == 1, f"not opaque: {css}"
    linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in channels[:3]]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(color: str, background: str) -> float:
    lighter, darker = sorted((_luminance(color), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_negotiation_picker_is_readable_in_both_colour_schemes(shipped: Service, open_page, scheme: str) -> None:
    watched = open_page(color_scheme=scheme)
    page = watched.page
    page.goto(f"{shipped.base_url}/?as_of=2025-05-14")
    wait_state(page, "2025-05-14")
    picker = page.locator("#negotiation")
    expect(picker).to_be_visible()
    assert picker.locator("option").count() >= 2
    for element in (picker, picker.locator("option").first):
        color, background = element.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
        assert _contrast(color, background) >= 4.5, (scheme, color, background)  # WCAG AA for text
    watched.check(shipped)


def test_the_picker_lists_every_negotiation_past_the_first_page(shipped: Service, open_page) -> None:
    reporter = create_key(shipped.database_url, "web-picker-reporter", "reporter")
    with httpx.Client(base_url=shipped.base_url, headers={"Authorization": f"Bearer {reporter}"}, timeout=30) as client:
        for n in range(101):
            made = client.post("/v1/negotiations", json={"id": f"picker-{n:03}", "title": f"Picker {n:03}", "parties": ["US", "CN"]})
            assert made.status_code == 201, made.text
        listed, cursor = [], None
        while True:
            page_of = client.get("/v1/negotiations", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
            listed += [item["id"] for item in page_of["items"]]
            if not (cursor := page_of["next"]):
                break
    assert len(listed) > 100
    watched = open_page()
    page = watched.page
    page.goto(f"{shipped.base_url}/?as_of=2025-05-14")
    wait_state(page, "2025-05-14")
    options = page.locator("#negotiation option")
    expect(options).to_have_count(len(listed))
    assert options.evaluate_all("os => os.map(o => o.value)") == listed
    page.select_option("#negotiation", "picker-100")
    expect(page.locator("#negotiation-title")).to_have_text("Picker 100")
    page.wait_for_url(lambda url: parse_qs(urlparse(url).query).get("negotiation") == ["picker-100"])
    watched.check(shipped)


def test_the_as_of_range_runs_from_the_start_of_the_record_to_today(shipped: Service, open_page) -> None:
    """On a day long after the record ends, the slider still reaches it: End on the slider is today."""
    info = httpx.get(f"{shipped.base_url}/v1/negotiations/{NEGOTIATION}", timeout=30).json()
    today = dt.date.today() + dt.timedelta(days=1000)  # the browser's today: past everything the record names
    watched = open_page()
    page = watched.page
    page.clock.set_fixed_time(dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC))
    page.goto(f"{shipped.base_url}/?as_of=2025-05-14")
    wait_state(page, "2025-05-14")
    page.wait_for_selector("#timeline .ev")
    date = page.locator("#as-of-date")
    assert (date.get_attribute("min"), date.get_attribute("max")) == (info["first_occurred_on"], today.isoformat())
    page.focus("#as-of-slider")
    page.keyboard.press("End")
    wait_state(page, today.isoformat())
    assert date.input_value() == today.isoformat()
    assert parse_qs(urlparse(page.url).query)["as_of"] == [today.isoformat()]
    expect(page.locator("#beyond-record")).to_be_visible()
    watched.check(shipped)


def _panels_are_empty(page: Page) -> None:
    for body in ("#state-body", "#context-body", "#chart", "#timeline", "#disputes-body"):
        assert page.locator(body).inner_text().strip() == "", body
    assert "Loading" not in page.locator("main").inner_text()


def test_a_bad_as_of_or_an_unknown_negotiation_shows_one_message_and_empty_panels(shipped: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{shipped.base_url}/?negotiation={NEGOTIATION}&as_of=2025-13-45")
    message = page.locator("#message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("as_of=2025-13-45 is not a date")
    _panels_are_empty(page)
    assert parse_qs(urlparse(page.url).query)["as_of"] == ["2025-13-45"]  # not silently replaced
    page.fill("#as-of-date", "2025-05-14")  # a date picked: everything is read for it
    wait_state(page, "2025-05-14")
    assert total(page, "US->CN") == "30"
    expect(message).to_be_hidden()
    page.wait_for_selector("#timeline .ev")

    page.goto(f"{shipped.base_url}/?negotiation=no-such-talks&as_of=2025-05-14")
    expect(message).to_contain_text('There is no negotiation "no-such-talks"')
    _panels_are_empty(page)
    picker = page.locator("#negotiation")
    expect(picker).to_be_visible()
    assert picker.evaluate("s => s.selectedOptions[0].textContent") == "Choose a negotiation"
    picker.select_option(NEGOTIATION)
    page.wait_for_selector('#state [data-direction="US->CN"] .total-value')
    expect(message).to_be_hidden()
    _without_refusals(watched, 404)
    watched.check(shipped)


@pytest.mark.parametrize("width", [1366, 390])
def test_long_measure_names_wrap_whole(shipped: Service, open_page, width: int) -> None:
    watched = open_page(width, 900)
    page = watched.page
    page.goto(f"{shipped.base_url}/?as_of=2025-05-14")
    wait_state(page, "2025-05-14")
    long_name = "China retaliatory tariff on US farm goods, 10% line (Announcement No. 2 of 2025)"
    item = page.locator("#state .rates li", has_text=long_name)
    expect(item).to_have_count(1)
    assert long_name in (item.get_attribute("title") or "")  # and whole on hover
    cut = page.locator("#state .rates .what").evaluate_all(
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"
    )
    assert cut == []
    watched.check(shipped)


def _tab_to(page: Page, wanted: str, limit: int = 600) -> list[str]:
    """Press Tab until the element matching `wanted` has the focus; the ids (or tags) passed on the way."""
    passed = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("w => document.activeElement.matches(w)", wanted):
            return passed
        passed.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    raise AssertionError(f"Tab never reached {wanted}: {passed[-20:]}")


def test_the_page_works_with_the_keyboard(shipped: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{shipped.base_url}/?negotiation={NEGOTIATION}&as_of=2025-08-01")
    wait_state(page, "2025-08-01")
    page.wait_for_selector("#timeline .ev")
    page.wait_for_selector("#chart svg .step")
    page.wait_for_selector('#disputes[aria-busy="false"] .dispute')

    passed = _tab_to(page, "#as-of-slider")
    assert {"negotiation", "as-of-date"} <= set(passed), passed
    page.keyboard.press("ArrowRight")
    wait_state(page, "2025-08-02")
    page.keyboard.press("PageUp")
    wait_state(page, "2025-09-01")
    page.keyboard.press("ArrowLeft")
    wait_state(page, "2025-08-31")
    assert parse_qs(urlparse(page.url).query)["as_of"] == ["2025-08-31"]

    assert {"known-at", "legal-basis"} <= set(_tab_to(page, "#context .other-measures summary"))
    page.keyboard.press("Enter")
    expect(page.locator("#context .other-measures")).to_have_attribute("open", "")
    _tab_to(page, "#disputes .dispute button.link")  # the claims open their events too
    page.keyboard.press("Enter")
    page.wait_for_selector("#detail .source-name")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()

    _tab_to(page, "#chart-svg")
    with page.expect_download(timeout=10_000) as caught:
        page.keyboard.press("Enter")
    assert caught.value.suggested_filename == f"{NEGOTIATION}-tariffs.svg"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "chart-png"

    _tab_to(page, "#filter-kinds input[value=statements]")
    page.keyboard.press("Space")
    expect(page.locator("#timeline .lane-statements")).to_have_count(0)

    page.goto(f"{shipped.base_url}/?negotiation={NEGOTIATION}&as_of=2025-08-01")
    wait_state(page, "2025-08-01")
    _tab_to(page, "#negotiation")
    following = page.evaluate("() => { const s = document.querySelector('#negotiation'); return s.options[s.selectedIndex + 1].value; }")
    page.keyboard.press("ArrowDown")
    page.wait_for_url(lambda url: parse_qs(urlparse(url).query).get("negotiation") == [following])
    watched.check(shipped)


# --- disputes on the page --------------------------------------------------------------------


def test_the_disputes_panel_shows_each_side_with_speakers_sources_and_grades(shipped: Service, open_page) -> None:
    watched = open_page()
    page = watched.page
    page.goto(f"{shipped.base_url}/?negotiation={NEGOTIATION}&as_of=2025-08-01")
    page.wait_for_selector('#disputes[data-as-of="2025-08-01"][aria-busy="false"]')
    page.wait_for_selector("#timeline .ev")
    assert "1 Aug 2025" in page.locator("#disputes-heading").inner_text()
    dispute = page.locator('#disputes .dispute[data-subject="truce.extension"]')
    assert dispute.get_attribute("data-status") == "disputed"
    agreed, denied = dispute.locator('.side[data-value="agreed"]'), dispute.locator('.side[data-value="not_agreed"]')
    agreed_text, denied_text = agreed.inner_text(), denied.inner_text()
    assert "Li Chenggang (CN)" in agreed_text and "29 Jul 2025" in agreed_text and "Anadolu Agency" in agreed_text
    assert "Scott Bessent (US)" in denied_text and "AP (via Lincoln Daily News)" in denied_text
    assert agreed.locator("abbr.grade").inner_text() == "B1" and denied.locator("abbr.grade").inner_text() == "B1"
    assert "usually reliable, confirmed by other sources" in (agreed.locator("abbr.grade").get_attribute("title") or "")
    assert "C3" in dispute.locator('.side[data-value="likely"]').inner_text()  # the weaker report, graded too
    # Both boxes in one layout pass: a panel above that finishes loading between two separate reads shifts them.
    a, d = dispute.evaluate(
        """el => ['agreed', 'not_agreed'].map(v => el.querySelector(`.side[data-value="${v}"]`).getBoundingClientRect())
                                           .map(r => ({x: r.x, y: r.y}))"""
    )
    assert abs(a["y"] - d["y"]) < 2 and a["x"] != d["x"], (a, d)  # side by side
    assert "Not settled" in dispute.locator(".settlement").inner_text()

    page.fill("#as-of-date", "2025-08-12")
    page.wait_for_selector('#disputes[data-as-of="2025-08-12"][aria-busy="false"]')
    assert dispute.get_attribute("data-status") == "confirmed"
    settled = dispute.locator(".settlement").inner_text()
    assert "Settled: agreed on 11 Aug 2025" in settled and "EO 14334" in settled
    assert agreed.locator(".verdict-confirmed").count() == 1 and denied.locator(".verdict-contradicted").count() == 1
    dispute.locator(".settlement button.link").click()
    expect(page.locator("#detail-title")).to_contain_text("11 Aug 2025")
    watched.check(shipped)


def test_the_page_revalidates_an_answer_it_has_read_and_the_server_answers_304(shipped: Service, open_page) -> None:
    """The answers' ETags let the browser's own cache ask If-None-Match: a date seen again costs a 304, no body."""
    assert shipped.log is not None
    watched = open_page()
    page = watched.page
    statuses = []
    for as_of in ("2025-06-01", "2025-09-01", "2025-06-01"):
        start = shipped.log.stat().st_size
        page.goto(f"{shipped.base_url}/?as_of={as_of}")
        wait_state(page, as_of)
        time.sleep(0.2)  # the request's log line is written after its response
        statuses.append([line["status"] for line in log_lines(shipped.log, "request", offset=start) if "/state" in str(line["path"])])
    assert total(page, "US->CN").strip()
    first, other, again = statuses
    assert first and set(first) == {200} and set(other) == {200}, statuses  # never seen: answered whole
    assert again and set(again) == {304}, statuses  # seen: the browser sent If-None-Match, the server sent no body
    watched.check(shipped)

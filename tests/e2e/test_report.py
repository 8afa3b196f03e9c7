"""The report as a person sees it: rendered from a small warehouse, opened in headless Chromium (the Debian
package; `make chromium` installs it), and checked in the DOM Chromium built and on its screenshot."""

from __future__ import annotations

import itertools
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from stripe_middleware_dev.report import (
    CAMPAIGN_COLOUR,
    MISSING,
    MISSING_COLOUR,
    MOVEMENTS,
    RISK_COLOURS,
    build_report,
    render_html,
    retention_colour,
)

CHROMIUM = Path("/usr/bin/chromium")
# Nothing but the page: no sandbox (root in CI), no GPU, and none of the browser's own network traffic.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WIDTH, HEIGHT = 1200, 2400
EVIL_CAMPAIGN = "<script>document.title='pwned'</script>"

# Three months of USD movements (every kind each month; MRR before January was 1,000.00 USD), one of EUR.
# As in the view, contraction and churned are negative: mrr = previous mrr + the five movements.
MOVEMENT_ROWS = [
    ("2026-01-01", "usd", 135000, 30000, 10000, -4000, -6000, 5000, 10),
    ("2026-02-01", "usd", 150000, 20000, 8000, -3000, -12000, 2000, 11),
    ("2026-03-01", "usd", 170000, 25000, 6000, -5000, -10000, 4000, 12),
    ("2026-03-01", "eur", 9900, 9900, 0, 0, 0, 0, 1),
]
CAMPAIGN_ROWS = [
    ("2026-02-01", "usd", "campaign", "spring-launch", 80000, 80000),
    ("2026-03-01", "usd", "campaign", "spring-launch", 90000, 100000),
    ("2026-03-01", "usd", "campaign", MISSING, 30000, 50000),
    ("2026-03-01", "usd", "campaign", EVIL_CAMPAIGN, 20000, 20000),
    ("2026-03-01", "usd", "cost_center", "CC-1", 140000, 170000),  # another dimension: not on the chart
]
COHORT_ROWS = [
    ("2026-01-01", 0, 4, 4, 1.0),
    ("2026-01-01", 1, 4, 3, 0.75),
    ("2026-01-01", 2, 4, 2, 0.5),
    ("2026-02-01", 0, 2, 2, 1.0),
    ("2026-02-01", 1, 2, 1, 0.5),
    ("2026-03-01", 0, 1, 1, 1.0),
]
RISK_ROWS = [("usd", "medium", 3, 100000), ("usd", "high", 2, 60000)]  # the view has high and medium


# Every view leads with (account, livemode): the rows above are the platform's live ones (what the report
# shows); a connected account's and test mode's rows are in the tables too and must stay off the page.
PLATFORM_LIVE, OTHERS = (None, True), ((None, False), ("acct_x", True))


def warehouse() -> duckdb.DuckDBPyConnection:
    """Tables named and shaped like the analytics views, holding the numbers above."""
    connection = duckdb.connect()
    scope = "account VARCHAR, livemode BOOLEAN, "
    tables = {
        "mrr_movements": (
            "month DATE, currency VARCHAR, mrr BIGINT, new BIGINT, expansion BIGINT, contraction BIGINT, "
            "churned BIGINT, reactivated BIGINT, customers BIGINT",
            MOVEMENT_ROWS,
        ),
        "revenue_by_metadata": (
            "month DATE, currency VARCHAR, dimension VARCHAR, value VARCHAR, revenue BIGINT, mrr BIGINT",
            CAMPAIGN_ROWS,
        ),
        "cohort_retention": (
            "cohort_month DATE, months_since INTEGER, customers BIGINT, retained BIGINT, retention DOUBLE",
            COHORT_ROWS,
        ),
        "revenue_at_risk": ("currency VARCHAR, level VARCHAR, customers BIGINT, mrr BIGINT", RISK_ROWS),
    }
    for name, (columns, rows) in tables.items():
        connection.execute(f"CREATE TABLE {name} ({scope}{columns})")
        marks = ", ".join("?" * (len(rows[0]) + 2))
        connection.executemany(
            f"INSERT INTO {name} VALUES ({marks})", [(*PLATFORM_LIVE, *row) for row in rows]
        )
        # Ten times the numbers elsewhere: were they added in, every bar and cell would change.
        others = [
            (*other, *(v * 10 if isinstance(v, int) and not isinstance(v, bool) else v for v in row))
            for other in OTHERS
            for row in rows
        ]
        connection.executemany(f"INSERT INTO {name} VALUES ({marks})", others)
    return connection


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs it (Debian package `chromium`)")
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    out.write_text(render_html(build_report(warehouse(), source="the test warehouse")), encoding="utf-8")
    return out


# -- the DOM Chromium built -------------------------------------------------------------------------------
class Charts(HTMLParser):
    """Every `<svg data-chart>` of a page with the attributes of its `<rect data-value>`; every element."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[tuple[dict[str, str], list[dict[str, str]]]] = []
        self.tags: Counter[str] = Counter()
        self.title = ""
        self._in_svg = self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        self.tags[tag] += 1
        if tag == "svg" and "data-chart" in found:
            self.charts.append((found, []))
            self._in_svg = True
        elif tag == "rect" and self._in_svg and "data-value" in found:
            self.charts[-1][1].append(found)
        self._in_title = tag == "title" and not self._in_svg

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg = False
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


@pytest.fixture(scope="module")
def dom(page: Path, tmp_path_factory: pytest.TempPathFactory) -> Charts:
    dumped = chromium(page, tmp_path_factory.mktemp("profile"), "--dump-dom")
    charts = Charts()
    charts.feed(dumped.stdout)
    return charts


def rects(dom: Charts, chart: str, currency: str | None = None) -> list[dict[str, str]]:
    (found,) = [
        bars
        for svg, bars in dom.charts
        if svg["data-chart"] == chart and svg.get("data-currency") in {currency, None}
    ]
    return found


def test_each_chart_is_an_accessible_svg_in_the_dom_chromium_built(dom: Charts) -> None:
    kinds = Counter(svg["data-chart"] for svg, _ in dom.charts)
    assert kinds == {"mrr-movements": 2, "mrr-by-campaign": 1, "cohort-retention": 1, "revenue-at-risk": 1}
    for svg, bars in dom.charts:
        assert svg["role"] == "img" and svg["aria-label"] and bars
    assert dom.tags["script"] == 0 and dom.tags["link"] == 0  # self-contained, and the campaign stayed text
    assert dom.title == "Revenue report · stripe-middleware"


def test_mrr_movements_stack_every_movement_of_every_month_with_signed_values(dom: Charts) -> None:
    drawn = {
        (r["data-month"], r["data-series"], int(r["data-value"])) for r in rects(dom, "mrr-movements", "usd")
    }
    expected = set()
    for month, currency, _mrr, *amounts, _customers in MOVEMENT_ROWS:
        if currency == "usd":
            by_column = dict(
                zip(("new", "expansion", "contraction", "churned", "reactivated"), amounts, strict=True)
            )
            for movement in MOVEMENTS:
                expected.add((month, movement.column, by_column[movement.column]))
    assert len(expected) == 15 and drawn == expected
    assert [int(r["data-value"]) for r in rects(dom, "mrr-movements", "eur")] == [9900]


def test_campaign_bars_keep_the_missing_bucket_and_the_campaign_name_as_text(dom: Charts) -> None:
    drawn = {r["data-campaign"]: int(r["data-value"]) for r in rects(dom, "mrr-by-campaign", "usd")}
    assert drawn == {"spring-launch": 100000, MISSING: 50000, EVIL_CAMPAIGN: 20000}  # March's MRR


def test_cohort_cells_and_risk_levels_carry_their_values(dom: Charts) -> None:
    cells = {
        (c["data-cohort"], int(c["data-months-since"])): float(c["data-value"])
        for c in rects(dom, "cohort-retention")
    }
    assert cells == {(cohort, since): retention for cohort, since, _, _, retention in COHORT_ROWS}
    levels = [(r["data-level"], int(r["data-value"])) for r in rects(dom, "revenue-at-risk", "usd")]
    assert levels == [("high", 60000), ("medium", 100000)]  # the riskiest first


# -- the screenshot ---------------------------------------------------------------------------------------
def png_rows(data: bytes) -> Iterator[bytes]:
    """The pixel rows (RGB or RGBA, 8 bits) of a non-interlaced PNG, with the standard library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in {2, 6} and interlace == 0
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(compressed)
    high = int.from_bytes(b"\x80" * stride, "little")
    low = int.from_bytes(b"\x7f" * stride, "little")
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # Up: byte-wise addition of the two rows, without carries between bytes
            a, b = int.from_bytes(line, "little"), int.from_bytes(previous, "little")
            line = bytearray((((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride, "little"))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        previous = line
        colours = bytearray(line)
        if bpp == 4:
            del colours[3::4]  # alpha
        yield bytes(colours)


def rgb(colour: str) -> bytes:
    return bytes.fromhex(colour.removeprefix("#"))


@pytest.fixture(scope="module")
def pixels(page: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[bytes, Counter[int]]:
    """For each colour of a series: how many pixels of it each screenshot row has."""
    shot = tmp_path_factory.mktemp("shot") / "report.png"
    chromium(
        page, tmp_path_factory.mktemp("profile"), f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}"
    )
    wanted = {rgb(c) for c in SERIES_COLOURS}
    found: dict[bytes, Counter[int]] = {colour: Counter() for colour in wanted}
    for y, row in enumerate(png_rows(shot.read_bytes())):
        assert len(row) == WIDTH * 3
        for x in range(0, len(row), 3):
            pixel = row[x : x + 3]
            if pixel in wanted:
                found[pixel][y] += 1
    return found


CHART_COLOURS = {
    "mrr-movements": [m.colour for m in MOVEMENTS],
    "mrr-by-campaign": [CAMPAIGN_COLOUR, MISSING_COLOUR],
    "cohort-retention": [retention_colour(r) for r in (1.0, 0.75, 0.5)],
    "revenue-at-risk": [RISK_COLOURS[level] for level in ("high", "medium")],
}
SERIES_COLOURS = [colour for colours in CHART_COLOURS.values() for colour in colours]


def test_the_screenshot_shows_every_series_in_its_own_chart_in_page_order(
    pixels: dict[bytes, Counter[int]],
) -> None:
    regions = []
    for chart, colours in CHART_COLOURS.items():
        rows: set[int] = set()
        for colour in colours:
            # A bar or a cell: rows with a run of that exact colour, not a few antialiased pixels of text.
            drawn = {y for y, count in pixels[rgb(colour)].items() if count >= 10}
            assert len(drawn) >= 10, f"{chart}: {colour} is not drawn ({len(drawn)} rows)"
            rows |= drawn
        regions.append((chart, min(rows), max(rows)))
    for (chart, _, bottom), (after, top, _) in itertools.pairwise(regions):
        assert bottom < top, f"{chart} overlaps {after} on the screenshot: {regions}"
    assert regions[-1][2] < HEIGHT


def area(pixels: dict[bytes, Counter[int]], colour: str) -> int:
    return sum(pixels[rgb(colour)].values())


def test_bars_are_drawn_to_scale(pixels: dict[bytes, Counter[int]]) -> None:
    # Revenue at risk: one bar per level, the same height, lengths 600.00 : 1,000.00 USD.
    high, medium = (area(pixels, RISK_COLOURS[level]) for level in ("high", "medium"))
    assert medium / high == pytest.approx(100 / 60, rel=0.05)
    # Campaigns: '(missing)' (500.00 USD) is half of spring-launch + the script-named one (1,200.00 USD).
    assert area(pixels, MISSING_COLOUR) / area(pixels, CAMPAIGN_COLOUR) == pytest.approx(500 / 1200, rel=0.05)

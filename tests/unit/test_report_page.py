"""The report page: what it reads from the analytics views and how it draws them (no browser here; the e2e
test opens it in Chromium)."""

from __future__ import annotations

import argparse
import re
import sys
import types
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stripe_middleware.export.rows import COLUMNS
from stripe_middleware_dev import report
from stripe_middleware_dev.analytics import create_views
from stripe_middleware_dev.report import (
    MISSING,
    CampaignMrr,
    CohortCell,
    MovementMonth,
    ReportData,
    RiskLevel,
    build_report,
    format_amount,
    nice_ticks,
    render_html,
    retention_colour,
)

JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)
CHARTS = ("mrr-movements", "mrr-by-campaign", "cohort-retention", "revenue-at-risk")


def movement(month: date, currency: str = "usd", **amounts: int) -> MovementMonth:
    columns = dict.fromkeys(
        ("mrr", "new", "expansion", "contraction", "churned", "reactivated", "customers"), 0
    )
    return MovementMonth(month=month, currency=currency, **{**columns, **amounts})


def charts(page: str) -> dict[str, list[ET.Element]]:
    """Every `<svg data-chart>` of the page, parsed as XML (the charts are well-formed SVG)."""
    found: dict[str, list[ET.Element]] = {}
    for svg in re.findall(r"<svg .*?</svg>", page, flags=re.DOTALL):
        element = ET.fromstring(svg)
        found.setdefault(element.attrib["data-chart"], []).append(element)
    return found


def visible(text: ET.Element) -> str:
    """What a `<text>` shows (its `<title>` is the tooltip)."""
    return (text.text or "") + "".join(child.tail or "" for child in text)


def bars(svg: ET.Element) -> list[ET.Element]:
    return [rect for rect in svg.iter("rect") if "data-value" in rect.attrib]


FULL = ReportData(
    movements=(
        movement(JAN, mrr=150000, new=150000, customers=3),
        movement(FEB, mrr=170000, new=40000, expansion=10000, contraction=5000, churned=25000, customers=4),
        movement(MAR, mrr=190000, new=20000, expansion=5000, churned=10000, reactivated=5000, customers=4),
    ),
    campaigns=(
        CampaignMrr("usd", "spring-launch", 90000, 180000, MAR),
        CampaignMrr("usd", MISSING, 45000, 60000, MAR),
    ),
    cohorts=(CohortCell(JAN, 0, 4, 4, 1.0), CohortCell(JAN, 1, 4, 3, 0.75), CohortCell(FEB, 0, 2, 2, 1.0)),
    at_risk=(RiskLevel("usd", "low", 3, 100000), RiskLevel("usd", "high", 2, 60000)),
    generated_at=datetime(2026, 4, 1, 8, 30, tzinfo=UTC),
    source="the local warehouse",
)


# -- amounts ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123456, "usd", "1,234.56 USD"),
        (-500, "eur", "-5.00 EUR"),
        (0, "gbp", "0.00 GBP"),
        (123456, "jpy", "123,456 JPY"),  # no minor unit
        (-1500, "KRW", "-1,500 KRW"),
        (12345, "kwd", "12.345 KWD"),  # three decimals
        (9_876_543_210, "usd", "98,765,432.10 USD"),
    ],
)
def test_amounts_are_written_in_the_major_unit_with_their_currency(
    minor: int, currency: str, text: str
) -> None:
    assert format_amount(minor, currency) == text


def test_the_page_writes_amounts_with_their_currency_and_never_adds_currencies() -> None:
    data = ReportData(
        movements=(movement(MAR, mrr=190000, new=190000), movement(MAR, "jpy", mrr=5000, new=5000)),
    )
    page = render_html(data)
    assert "1,900.00 USD" in page and "22,800.00 USD" in page  # MRR and ARR
    assert "5,000 JPY" in page and "60,000 JPY" in page
    assert [svg.attrib["data-currency"] for svg in charts(page)["mrr-movements"]] == ["jpy", "usd"]
    assert "Change in MRR (JPY)" in page and "Change in MRR (USD)" in page


def test_axis_ticks_are_round_and_cover_the_data_and_zero() -> None:
    assert nice_ticks(-300, 1500) == [-500, 0, 500, 1000, 1500]
    assert nice_ticks(0, 1000, 4) == [0, 250, 500, 750, 1000]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(12.5, 987.4)
    assert ticks[0] == 0 and ticks[-1] >= 987.4


# -- the charts -------------------------------------------------------------------------------------------
def test_every_chart_is_an_accessible_svg_with_a_value_on_each_bar() -> None:
    page = render_html(FULL)
    found = charts(page)
    assert set(found) == set(CHARTS)
    for chart in CHARTS:
        (svg,) = found[chart]
        assert svg.attrib["role"] == "img" and svg.attrib["aria-label"]
        assert bars(svg) and all(rect.find("title") is not None for rect in bars(svg))
    assert "Generated 2026-04-01 08:30 UTC from the local warehouse" in page
    assert "<h2>Definitions</h2>" in page and "<dt>Churned</dt>" in page


def test_the_page_is_self_contained() -> None:
    page = render_html(FULL)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"(src|href)=|url\(|https?://", page)


def test_contraction_and_churn_are_drawn_below_zero_whatever_their_sign_in_the_view() -> None:
    positive = movement(FEB, mrr=170000, new=40000, expansion=10000, contraction=5000, churned=25000)
    negative = movement(FEB, mrr=170000, new=40000, expansion=10000, contraction=-5000, churned=-25000)
    drawn = []
    for row in (positive, negative):
        (svg,) = charts(render_html(ReportData(movements=(row,))))["mrr-movements"]
        (zero_line,) = [line for line in svg.iter("line") if line.attrib.get("class") == "zero"]
        zero = float(zero_line.attrib["y1"])
        values = {}
        for rect in bars(svg):
            top, height = float(rect.attrib["y"]), float(rect.attrib["height"])
            values[rect.attrib["data-series"]] = int(rect.attrib["data-value"])
            assert height > 0
            if int(rect.attrib["data-value"]) < 0:
                assert top >= zero - 0.11
            else:
                assert top + height <= zero + 0.11
        drawn.append(values)
    assert drawn[0] == drawn[1] == {"new": 40000, "expansion": 10000, "contraction": -5000, "churned": -25000}
    page = render_html(ReportData(movements=(positive,)))
    assert "-250.00 USD" in page and "-50.00 USD" in page  # the numbers table: taken from MRR


def test_bars_stack_and_their_heights_are_to_scale() -> None:
    (svg,) = charts(render_html(FULL))["mrr-movements"]
    feb = {r.attrib["data-series"]: r for r in bars(svg) if r.attrib["data-month"] == "2026-02-01"}
    height = {series: float(rect.attrib["height"]) for series, rect in feb.items()}
    assert height["new"] / height["expansion"] == pytest.approx(4, rel=0.02)
    assert height["churned"] / height["contraction"] == pytest.approx(5, rel=0.02)
    # Expansion sits on top of new; churn hangs under contraction.
    assert float(feb["expansion"].attrib["y"]) + height["expansion"] == pytest.approx(
        float(feb["new"].attrib["y"]), abs=0.11
    )
    assert float(feb["contraction"].attrib["y"]) + height["contraction"] == pytest.approx(
        float(feb["churned"].attrib["y"]), abs=0.11
    )
    assert not any(r.attrib["data-value"] == "0" for r in bars(svg))  # a zero movement draws nothing
    # The black tick at each month's net change: Feb 400 + 100 - 50 - 250, Mar 200 + 50 + 50 - 100.
    nets = [line.attrib["data-net"] for line in svg.iter("line") if "data-net" in line.attrib]
    assert nets == ["150000", "20000", "20000"]


def test_campaign_names_are_escaped_everywhere_they_appear() -> None:
    evil = "<script>alert('x')</script>\" onmouseover=\"steal()"
    data = ReportData(
        campaigns=(CampaignMrr("usd", evil, 1000, 2000, MAR), CampaignMrr("usd", "a&b", 10, 10, MAR))
    )
    page = render_html(data)
    assert "<script" not in page and 'onmouseover="' not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot; onmouseover=&quot;steal()" in page
    (svg,) = charts(page)["mrr-by-campaign"]  # parses: the name cannot break out of an attribute
    assert {rect.attrib["data-campaign"] for rect in bars(svg)} == {evil, "a&b"}
    assert evil in svg.attrib["aria-label"]


def test_the_missing_campaign_bucket_is_drawn_grey_and_labelled() -> None:
    (svg,) = charts(render_html(replace(FULL, campaigns=FULL.campaigns[::-1])))["mrr-by-campaign"]
    fills = {rect.attrib["data-campaign"]: rect.attrib["fill"] for rect in bars(svg)}
    assert fills == {"spring-launch": report.CAMPAIGN_COLOUR, MISSING: report.MISSING_COLOUR}
    labels = [t for t in svg.iter("text") if "label" in t.attrib.get("class", "")]
    assert [visible(t) for t in labels] == ["spring-launch", MISSING]  # the largest MRR first
    assert "missing" in labels[1].attrib["class"]


def test_long_campaign_names_are_shortened_on_the_axis_but_kept_whole_in_the_tooltip() -> None:
    name = "partner-webinar-series-autumn-2026-emea-north"
    (svg,) = charts(render_html(ReportData(campaigns=(CampaignMrr("usd", name, 100, 100, MAR),))))[
        "mrr-by-campaign"
    ]
    (label,) = [t for t in svg.iter("text") if t.attrib.get("class") == "label"]
    assert label.findtext("title") == name
    assert visible(label) == name[:29] + "…"


def test_the_heat_map_colours_each_cell_by_retention_and_prints_the_percentage() -> None:
    (svg,) = charts(render_html(FULL))["cohort-retention"]
    cells = {(r.attrib["data-cohort"], r.attrib["data-months-since"]): r for r in bars(svg)}
    assert {key: cell.attrib["data-value"] for key, cell in cells.items()} == {
        ("2026-01-01", "0"): "1.0000",
        ("2026-01-01", "1"): "0.7500",
        ("2026-02-01", "0"): "1.0000",
    }
    assert cells["2026-01-01", "1"].attrib["fill"] == retention_colour(0.75)
    texts = ["".join(t.itertext()) for t in svg.iter("text") if "cell" in t.attrib.get("class", "")]
    assert sorted(texts) == ["100%", "100%", "75%"]
    assert "Jan 2026 (4)" in {"".join(t.itertext()) for t in svg.iter("text")}


def test_retention_colours_run_from_light_to_dark() -> None:
    assert retention_colour(0) == "#f7fbff" and retention_colour(1) == "#08306b"
    assert retention_colour(-0.2) == retention_colour(0) and retention_colour(1.5) == retention_colour(1)

    def lightness(colour: str) -> int:
        return sum(bytes.fromhex(colour[1:]))

    shades = [lightness(retention_colour(step / 10)) for step in range(11)]
    assert shades == sorted(shades, reverse=True) and len(set(shades)) == 11


def test_revenue_at_risk_lists_levels_from_high_to_low() -> None:
    (svg,) = charts(render_html(FULL))["revenue-at-risk"]
    assert [(r.attrib["data-level"], r.attrib["data-value"]) for r in bars(svg)] == [
        ("high", "60000"),
        ("low", "100000"),
    ]
    assert "1,000.00 USD MRR · 3 customers" in {"".join(t.itertext()) for t in svg.iter("text")}


def test_each_chart_has_an_empty_state_when_there_is_no_data() -> None:
    page = render_html(ReportData())
    found = charts(page)
    assert set(found) == set(CHARTS)
    for chart in CHARTS:
        (svg,) = found[chart]
        assert svg.attrib["data-empty"] == "true" and not bars(svg)
        assert svg.attrib["aria-label"].endswith("no data yet")
    assert "No MRR yet" in page and "No paying customer at high or medium churn risk" in page
    assert "<ul class='summary'>" not in page
    # One chart empty, the others drawn.
    partial = charts(render_html(ReportData(movements=FULL.movements)))
    assert (
        bars(partial["mrr-movements"][0]) and partial["revenue-at-risk"][0].attrib.get("data-empty") == "true"
    )


# -- reading the views ------------------------------------------------------------------------------------
def views() -> duckdb.DuckDBPyConnection:
    """Tables with the views' names and columns, in the types the SQL may produce: the platform's live rows
    (account null, livemode true), and rows of test mode and of the connected account acct_x that the
    default report must leave out."""
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE mrr_movements AS SELECT * FROM (VALUES "
        "(NULL::VARCHAR, true, TIMESTAMP '2026-02-01 00:00:00', 'usd', 170000::HUGEINT, 40000, 10000, -5000, "
        "-25000, 0, 4), "
        "(NULL, true, TIMESTAMP '2026-01-01 00:00:00', 'usd', 150000::HUGEINT, 150000, 0, 0, 0, 0, 3), "
        "(NULL, false, TIMESTAMP '2026-02-01 00:00:00', 'usd', 5000::HUGEINT, 5000, 0, 0, 0, 0, 1), "
        "('acct_x', true, TIMESTAMP '2026-02-01 00:00:00', 'usd', 7000::HUGEINT, 7000, 0, 0, 0, 0, 1)) "
        "t(account, livemode, month, currency, mrr, new, expansion, contraction, churned, reactivated, "
        "customers)"
    )
    connection.execute(
        "CREATE TABLE revenue_by_metadata AS SELECT * FROM (VALUES "
        "(NULL::VARCHAR, true, DATE '2026-01-01', 'usd', 'campaign', 'spring', 50000::DECIMAL(18,2), 50000), "
        "(NULL, true, DATE '2026-02-01', 'usd', 'campaign', 'spring', 70000::DECIMAL(18,2), 60000), "
        "(NULL, true, DATE '2026-02-01', 'usd', 'campaign', '(missing)', 10000::DECIMAL(18,2), 9000), "
        "(NULL, true, DATE '2026-01-01', 'usd', 'campaign', 'winter', 30000::DECIMAL(18,2), 30000), "
        "(NULL, true, DATE '2026-02-01', 'usd', 'crm_account_id', '001A', 999999::DECIMAL(18,2), 999999), "
        "(NULL, true, DATE '2026-02-01', 'eur', 'campaign', NULL, 900::DECIMAL(18,2), 900), "
        "(NULL, false, DATE '2026-03-01', 'usd', 'campaign', 'spring', 5000::DECIMAL(18,2), 5000), "
        "('acct_x', true, DATE '2026-02-01', 'usd', 'campaign', 'connect', 7000::DECIMAL(18,2), 7000)) "
        "t(account, livemode, month, currency, dimension, value, revenue, mrr)"
    )
    connection.execute(
        "CREATE TABLE cohort_retention AS SELECT * FROM (VALUES "
        "(NULL::VARCHAR, true, DATE '2026-01-01', 1, 4, 3, NULL::DOUBLE), "
        "(NULL, true, DATE '2026-01-01', 0, 4, 4, 1.0), "
        "(NULL, false, DATE '2026-02-01', 0, 1, 1, 1.0), "
        "('acct_x', true, DATE '2026-01-01', 0, 1, 1, 1.0)) "
        "t(account, livemode, cohort_month, months_since, customers, retained, retention)"
    )
    connection.execute(
        "CREATE TABLE revenue_at_risk AS SELECT * FROM (VALUES "
        "(NULL::VARCHAR, true, 'usd', 'high', 2, 60000.0), "
        "(NULL, false, 'usd', 'medium', 1, 5000.0), "
        "('acct_x', true, 'usd', 'high', 1, 7000.0)) "
        "t(account, livemode, currency, level, customers, mrr)"
    )
    return connection


def test_build_report_reads_the_views_in_order_and_in_plain_python_types() -> None:
    data = build_report(views(), source="a test")
    assert data.movements == (
        movement(JAN, mrr=150000, new=150000, customers=3),
        movement(FEB, mrr=170000, new=40000, expansion=10000, contraction=-5000, churned=-25000, customers=4),
    )
    assert data.cohorts == (CohortCell(JAN, 0, 4, 4, 1.0), CohortCell(JAN, 1, 4, 3, 0.75))
    assert data.at_risk == (RiskLevel("usd", "high", 2, 60000),)
    assert all(type(r.mrr) is int for r in [*data.movements, *data.at_risk, *data.campaigns])
    assert data.source == "a test"


def test_the_report_shows_one_account_in_one_mode_the_platforms_live_money_by_default() -> None:
    live = build_report(views())
    assert (live.livemode, live.account, live.scope) == (True, None, "live mode, the platform's own account")
    test = build_report(views(), livemode=False)
    assert test.movements == (movement(FEB, mrr=5000, new=5000, customers=1),)
    assert test.campaigns == (CampaignMrr("usd", "spring", 5000, 5000, MAR),)
    assert test.cohorts == (CohortCell(FEB, 0, 1, 1, 1.0),)
    assert test.at_risk == (RiskLevel("usd", "medium", 1, 5000),)
    connected = build_report(views(), account="acct_x")
    assert connected.movements == (movement(FEB, mrr=7000, new=7000, customers=1),)
    assert connected.campaigns == (CampaignMrr("usd", "connect", 7000, 7000, FEB),)
    assert connected.cohorts == (CohortCell(JAN, 0, 1, 1, 1.0),)
    assert connected.at_risk == (RiskLevel("usd", "high", 1, 7000),)
    assert build_report(views(), livemode=False, account="acct_x").movements == ()
    # The page says whose money it shows.
    assert "Data: live mode, the platform&#x27;s own account" in render_html(live)
    assert "Data: test mode, connected account acct_x" in render_html(
        replace(FULL, livemode=False, account="acct_x")
    )


def test_campaign_mrr_is_the_latest_month_and_revenue_adds_up_over_the_months() -> None:
    assert build_report(views()).campaigns == (
        CampaignMrr("eur", MISSING, 900, 900, FEB),
        CampaignMrr("usd", "spring", 60000, 120000, FEB),
        CampaignMrr("usd", MISSING, 9000, 10000, FEB),
        CampaignMrr("usd", "winter", 0, 30000, FEB),  # no MRR left, but its revenue still counts
    )


def test_the_queries_fit_the_analytics_views_over_an_empty_warehouse() -> None:
    connection = duckdb.connect()
    columns = ", ".join(f"{column.name} {column.duckdb_type}" for column in COLUMNS)
    connection.execute(f"CREATE TABLE records ({columns})")
    assert {"mrr_movements", "revenue_by_metadata", "cohort_retention", "revenue_at_risk"} <= set(
        create_views(connection)
    )
    data = build_report(connection)
    assert (data.movements, data.campaigns, data.cohorts, data.at_risk) == ((), (), (), ())


def test_empty_views_give_an_empty_report() -> None:
    connection = views()
    for table in ("mrr_movements", "revenue_by_metadata", "cohort_retention", "revenue_at_risk"):
        connection.execute(f"DELETE FROM {table}")
    data = build_report(connection)
    assert (data.movements, data.campaigns, data.cohorts, data.at_risk) == ((), (), (), ())


# -- the command ------------------------------------------------------------------------------------------
def test_the_report_command_writes_the_page_from_the_local_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    opened: list[Path] = []

    def warehouse_connection(state_dir: Path) -> Any:
        opened.append(state_dir)
        return views()

    fake = types.ModuleType("stripe_middleware_dev.local.warehouse")
    monkeypatch.setattr(fake, "warehouse_connection", warehouse_connection, raising=False)
    monkeypatch.setitem(sys.modules, "stripe_middleware_dev.local.warehouse", fake)
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", type=Path, default=Path(".local"))
    commands = parser.add_subparsers(dest="command", required=True)
    report.register(commands)
    out = tmp_path / "out" / "report.html"
    args = parser.parse_args(["--state-dir", str(tmp_path / "state"), "report", "--out", str(out)])

    assert args.run(args) == 0
    assert opened == [tmp_path / "state"]
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and set(charts(page)) == set(CHARTS)
    assert f"the local warehouse in {tmp_path / 'state'}" in page
    assert (
        "Data: live mode, the platform&#x27;s own account" in page and 'data-campaign="connect"' not in page
    )
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "2 currency-months" in printed
    assert parser.parse_args(["report"]).out == Path("report.html")

    # --test and --account choose another mode or account.
    args = parser.parse_args(["--state-dir", str(tmp_path), "report", "--out", str(out), "--test"])
    assert args.run(args) == 0
    assert "Data: test mode, the platform&#x27;s own account" in out.read_text(encoding="utf-8")
    assert "test mode, the platform's own account: 1 currency-months" in capsys.readouterr().out
    args = parser.parse_args(["report", "--out", str(out), "--account", "acct_x"])
    assert args.run(args) == 0
    page = out.read_text(encoding="utf-8")
    assert "Data: live mode, connected account acct_x" in page and 'data-campaign="connect"' in page
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--account", "cus_123"])
    assert "not a Stripe account id" in capsys.readouterr().err


def test_the_report_command_says_where_the_data_is_when_live_mode_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def warehouse_connection(state_dir: Path) -> Any:
        connection = views()
        connection.execute("DELETE FROM mrr_movements WHERE livemode")
        for table in ("revenue_by_metadata", "cohort_retention", "revenue_at_risk"):
            connection.execute(f"DELETE FROM {table}")
        return connection

    fake = types.ModuleType("stripe_middleware_dev.local.warehouse")
    monkeypatch.setattr(fake, "warehouse_connection", warehouse_connection, raising=False)
    monkeypatch.setitem(sys.modules, "stripe_middleware_dev.local.warehouse", fake)
    out = tmp_path / "report.html"
    args = argparse.Namespace(state_dir=tmp_path, out=out, test=False, account=None)
    assert report.run_report_command(args) == 0
    assert "test-mode events (--test)" in capsys.readouterr().out
    assert report.run_report_command(argparse.Namespace(**{**vars(args), "test": True})) == 0
    assert "--test" not in capsys.readouterr().out

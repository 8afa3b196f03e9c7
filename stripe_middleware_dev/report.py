"""`stripe-middleware report [--out report.html] [--test] [--account acct_...]`: the analytics views as one
page a finance person opens.

`build_report` reads four analytics views (`mrr_movements`, `revenue_by_metadata`, `cohort_retention`,
`revenue_at_risk`) with plain SQL through a DuckDB connection; `render_html` draws them as one
self-contained HTML file: inline CSS and inline SVG drawn here, no script, font or request to anywhere, so
it opens from a mail attachment or a laptop without network. Amounts stay in the views' minor units until
they are written, each with its currency; currencies are never added together.

The views keep every account (`account`, null for the platform's own) and mode (`livemode`) apart; the
report shows one of them: the platform's live money by default (`livemode AND account IS NULL`), test mode
with `--test`, a connected account's with `--account acct_...`.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

# -- the series and their colours (the e2e test finds the charts on a screenshot by these) ----------------


@dataclass(frozen=True)
class Movement:
    """One kind of MRR movement: its column in `mrr_movements`, how it reads, its colour, and whether it
    adds to MRR (drawn above zero) or takes from it (drawn below)."""

    column: str
    label: str
    colour: str
    adds: bool


MOVEMENTS = (
    Movement("new", "New", "#0072b2", adds=True),
    Movement("expansion", "Expansion", "#56b4e9", adds=True),
    Movement("reactivated", "Reactivated", "#009e73", adds=True),
    Movement("contraction", "Contraction", "#e69f00", adds=False),
    Movement("churned", "Churned", "#d55e00", adds=False),
)
CAMPAIGN_COLOUR = "#cc79a7"
MISSING_COLOUR = "#8c8c99"  # the '(missing)' bucket: grey, so the gap in the metadata reads as a gap
MISSING = "(missing)"
RISK_LEVELS = ("high", "medium", "low")
RISK_COLOURS = {"high": "#a50f15", "medium": "#fb6a4a", "low": "#fcbba1"}
OTHER_RISK_COLOUR = "#bcbddc"
# Cohort retention: white-ish at 0 %, deep blue at 100 %.
_RETENTION_STOPS = ((0.0, (247, 251, 255)), (0.5, (107, 174, 214)), (1.0, (8, 48, 107)))

# Stripe's minor units: these currencies have no decimals, or three (the rest two).
_ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())  # noqa: SIM905
_THREE_DECIMAL = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))

_WIDTH = 1040  # every chart's drawing width (px); the page is 1100 px wide at most
_INK, _MUTED, _GRID = "#1f2328", "#57606a", "#d8dee4"


# -- the data ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MovementMonth:
    """A row of `mrr_movements`: amounts in the currency's minor unit, as the view gives them (the
    contraction and churned columns are drawn below zero whatever their sign in the view)."""

    month: date
    currency: str
    mrr: int
    new: int
    expansion: int
    contraction: int
    churned: int
    reactivated: int
    customers: int

    def amount(self, movement: Movement) -> int:
        """The movement's signed effect on MRR (minor units): negative for contraction and churn."""
        value = abs(int(getattr(self, movement.column)))
        return value if movement.adds else -value


@dataclass(frozen=True)
class CampaignMrr:
    """A campaign's MRR at the end of the latest month of data in its currency (`as_of`), and the revenue
    it brought to date (succeeded charges net of refunds), from `revenue_by_metadata`."""

    currency: str
    campaign: str
    mrr: int
    revenue: int
    as_of: date


@dataclass(frozen=True)
class CohortCell:
    """A row of `cohort_retention`: of the `customers` who first paid in `cohort_month`, `retained` were
    customers `months_since` months later; `retention` is the fraction (0..1)."""

    cohort_month: date
    months_since: int
    customers: int
    retained: int
    retention: float


@dataclass(frozen=True)
class RiskLevel:
    """A row of `revenue_at_risk`: the customers whose latest churn-risk level is `level`, and their MRR."""

    currency: str
    level: str
    customers: int
    mrr: int


def scope_label(*, livemode: bool = True, account: str | None = None) -> str:
    """Whose money a report shows: `live mode, the platform's own account`, `test mode, connected account
    acct_1`."""
    whose = f"connected account {account}" if account else "the platform's own account"
    return f"{'live' if livemode else 'test'} mode, {whose}"


@dataclass(frozen=True)
class ReportData:
    """What the page shows: the rows of one account (`None`: the platform's own) in one mode."""

    movements: tuple[MovementMonth, ...] = ()
    campaigns: tuple[CampaignMrr, ...] = ()
    cohorts: tuple[CohortCell, ...] = ()
    at_risk: tuple[RiskLevel, ...] = ()
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    source: str = ""
    livemode: bool = True
    account: str | None = None

    @property
    def scope(self) -> str:
        return scope_label(livemode=self.livemode, account=self.account)


# Every query reads one account in one mode (parameters: livemode, the account id or '' for the platform):
# the views never add an account's or a mode's numbers together, and neither does the report.
MOVEMENTS_SQL = """
SELECT month, currency, mrr, new, expansion, contraction, churned, reactivated, customers
FROM mrr_movements
WHERE livemode = ? AND COALESCE(account, '') = ?
ORDER BY currency, month
"""
# MRR is a level, not a flow: a campaign's MRR is the one at the end of the latest month of its currency;
# revenue is a flow, so it adds up over the months.
CAMPAIGNS_SQL = """
WITH campaign AS (
  SELECT month, currency, value, revenue, mrr FROM revenue_by_metadata
  WHERE dimension = 'campaign' AND livemode = ? AND COALESCE(account, '') = ?
), latest AS (
  SELECT currency, MAX(month) AS month FROM campaign GROUP BY currency
)
SELECT c.currency, c.value,
       SUM(CASE WHEN c.month = l.month THEN COALESCE(c.mrr, 0) ELSE 0 END) AS mrr,
       SUM(COALESCE(c.revenue, 0)) AS revenue,
       MAX(l.month) AS as_of
FROM campaign c JOIN latest l ON c.currency = l.currency
GROUP BY c.currency, c.value
ORDER BY c.currency, mrr DESC, revenue DESC, c.value
"""
COHORTS_SQL = """
SELECT cohort_month, months_since, customers, retained, retention
FROM cohort_retention
WHERE livemode = ? AND COALESCE(account, '') = ?
ORDER BY cohort_month, months_since
"""
RISK_SQL = """
SELECT currency, level, customers, mrr
FROM revenue_at_risk
WHERE livemode = ? AND COALESCE(account, '') = ?
ORDER BY currency, level
"""


def _month(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date().replace(day=1)
    if isinstance(value, date):
        return value.replace(day=1)
    return date.fromisoformat(str(value)[:10]).replace(day=1)


def _integer(value: Any) -> int:
    if value is None:
        return 0
    return round(value) if isinstance(value, float | Decimal) else int(value)


def build_report(
    connection: DuckDBPyConnection, *, source: str = "", livemode: bool = True, account: str | None = None
) -> ReportData:
    """Read the four analytics views through `connection` (they must exist on it): the rows of `account`
    (`None`: the platform's own) in live or test mode, by default the platform's live money."""
    scope = [livemode, account or ""]
    movements = tuple(
        MovementMonth(
            month=_month(month),
            currency=str(currency or ""),
            mrr=_integer(mrr),
            new=_integer(new),
            expansion=_integer(expansion),
            contraction=_integer(contraction),
            churned=_integer(churned),
            reactivated=_integer(reactivated),
            customers=_integer(customers),
        )
        for month, currency, mrr, new, expansion, contraction, churned, reactivated, customers in (
            connection.execute(MOVEMENTS_SQL, scope).fetchall()
        )
    )
    campaigns = tuple(
        CampaignMrr(
            currency=str(currency or ""),
            campaign=MISSING if value is None else str(value),
            mrr=_integer(mrr),
            revenue=_integer(revenue),
            as_of=_month(as_of),
        )
        for currency, value, mrr, revenue, as_of in connection.execute(CAMPAIGNS_SQL, scope).fetchall()
    )
    cohorts = []
    for cohort_month, months_since, customers, retained, retention in connection.execute(
        COHORTS_SQL, scope
    ).fetchall():
        count, kept = _integer(customers), _integer(retained)
        fraction = float(retention) if retention is not None else kept / count if count else 0.0
        cohorts.append(CohortCell(_month(cohort_month), _integer(months_since), count, kept, fraction))
    at_risk = tuple(
        RiskLevel(str(currency or ""), str(level or "unknown"), _integer(customers), _integer(mrr))
        for currency, level, customers, mrr in connection.execute(RISK_SQL, scope).fetchall()
    )
    return ReportData(
        movements=movements,
        campaigns=campaigns,
        cohorts=tuple(cohorts),
        at_risk=at_risk,
        source=source,
        livemode=livemode,
        account=account,
    )


# -- formatting -------------------------------------------------------------------------------------------
def decimals(currency: str) -> int:
    """Digits after the point in the currency's major unit (Stripe's minor units: JPY 0, KWD 3, USD 2)."""
    code = currency.lower()
    return 0 if code in _ZERO_DECIMAL else 3 if code in _THREE_DECIMAL else 2


def major(minor: int, currency: str) -> float:
    return minor / float(10 ** decimals(currency))


def format_amount(minor: int, currency: str) -> str:
    """`123456, "usd"` → `1,234.56 USD`; `-500, "jpy"` → `-500 JPY`."""
    digits = decimals(currency)
    text = f"{abs(minor) / 10**digits:,.{digits}f}"
    return f"{'-' if minor < 0 else ''}{text} {currency.upper()}".rstrip()


def _customers(count: int) -> str:
    return f"{count:,} customer{'' if count == 1 else 's'}"


def format_month(month: date) -> str:
    return month.strftime("%b %Y")


def format_percent(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


def _tick_label(value: float, step: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.{1 if step < 1_000_000 else 0}f}M"
    return f"{value:,.0f}" if step >= 1 else f"{value:,.2f}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (and zero), about `count` intervals."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low <= 0:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude)
    start, end = math.floor(low / step), math.ceil(high / step)
    return [round(i * step, 10) for i in range(start, end + 1)]


def retention_colour(fraction: float) -> str:
    """The heat map's fill for a retention (0..1): a straight line between the stops, in sRGB."""
    fraction = min(1.0, max(0.0, fraction))
    for (at_low, low), (at_high, high) in itertools.pairwise(_RETENTION_STOPS):
        if fraction <= at_high:
            t = (fraction - at_low) / (at_high - at_low)
            return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(low, high, strict=True))
    return "#" + "".join(f"{c:02x}" for c in _RETENTION_STOPS[-1][1])


def _is_dark(colour: str) -> bool:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.299 * red + 0.587 * green + 0.114 * blue < 140


# -- SVG pieces -------------------------------------------------------------------------------------------
def _attributes(attributes: dict[str, Any]) -> str:
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(str(value), quote=True)}"'
        for name, value in attributes.items()
        if value is not None
    )


def _rect(x: float, y: float, width: float, height: float, fill: str, *, title: str = "", **data: Any) -> str:
    inner = f"<title>{escape(title)}</title>" if title else ""
    box = {
        "x": f"{x:.1f}",
        "y": f"{y:.1f}",
        "width": f"{max(width, 0):.1f}",
        "height": f"{max(height, 0):.1f}",
    }
    return f"<rect{_attributes({**box, 'fill': fill, **data})}>{inner}</rect>"


def _text(x: float, y: float, text: str, *, title: str = "", **attributes: Any) -> str:
    inner = f"<title>{escape(title)}</title>" if title else ""
    return (
        f"<text{_attributes({'x': f'{x:.1f}', 'y': f'{y:.1f}', **attributes})}>{inner}{escape(text)}</text>"
    )


def _line(
    x1: float, x2: float, y1: float, y2: float, stroke: str, *, title: str = "", **attributes: Any
) -> str:
    ends = {"x1": f"{x1:.1f}", "x2": f"{x2:.1f}", "y1": f"{y1:.1f}", "y2": f"{y2:.1f}"}
    inner = f"<title>{escape(title)}</title>" if title else ""
    return f"<line{_attributes({**ends, 'stroke': stroke, **attributes})}>{inner}</line>"


def _svg(chart: str, label: str, height: float, body: Iterable[str], **data: Any) -> str:
    attributes = {
        "role": "img",
        "aria_label": label,
        "data_chart": chart,
        "viewBox": f"0 0 {_WIDTH} {height:.0f}",
        "width": _WIDTH,
        "height": f"{height:.0f}",
        **data,
    }
    return f"<svg{_attributes(attributes)}>{''.join(body)}</svg>"


def _legend(
    entries: Sequence[tuple[str, str]], y: float, x: float = 0, stroke: str | None = None
) -> list[str]:
    parts = []
    for label, colour in entries:
        parts.append(_rect(x, y - 11, 14, 14, colour, stroke=stroke))
        parts.append(_text(x + 20, y, label, class_="legend"))
        x += 34 + 7.5 * len(label)
    return parts


def _empty(chart: str, label: str, message: str, **data: Any) -> str:
    body = [
        _rect(0.5, 0.5, _WIDTH - 1, 99, "#f6f8fa", stroke=_GRID, stroke_dasharray="6 4"),
        _text(_WIDTH / 2, 56, message, text_anchor="middle", class_="empty"),
    ]
    return _svg(chart, f"{label}: no data yet", 100, body, data_empty="true", **data)


def _table(caption: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th scope='col'>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f"<details><summary>{escape(caption)}</summary><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></details>"
    )


def _currencies(items: Iterable[Any]) -> list[str]:
    return sorted({item.currency for item in items})


# -- the charts -------------------------------------------------------------------------------------------
def mrr_movements_chart(rows: Sequence[MovementMonth], currency: str) -> str:
    """Stacked bars per month: new, expansion, reactivated above zero; contraction, churned below; a black
    tick at the net change."""
    rows = sorted(rows, key=lambda row: row.month)
    top, left, right, plot_height = 44, 84, 16, 260
    height = top + plot_height + 62
    months = [row.month for row in rows]
    highs = [sum(row.amount(m) for m in MOVEMENTS if m.adds) for row in rows]
    lows = [sum(row.amount(m) for m in MOVEMENTS if not m.adds) for row in rows]
    ticks = nice_ticks(major(min(lows), currency), major(max(highs), currency))
    span = ticks[-1] - ticks[0]

    def y_of(minor: int) -> float:
        return top + (ticks[-1] - major(minor, currency)) / span * plot_height

    band = (_WIDTH - left - right) / len(months)
    bar = min(56.0, band * 0.7)
    body = _legend([(m.label, m.colour) for m in MOVEMENTS] + [("Net change", _INK)], 16, left)
    for tick in ticks:
        y = top + (ticks[-1] - tick) / span * plot_height
        body.append(_line(left, _WIDTH - right, y, y, _GRID))
        body.append(
            _text(left - 8, y + 4, _tick_label(tick, ticks[1] - ticks[0]), class_="tick", text_anchor="end")
        )
    zero = y_of(0)
    label_every = max(1, math.ceil(len(months) / 24))
    for i, row in enumerate(rows):
        x = left + band * i + (band - bar) / 2
        up = down = 0
        for movement in MOVEMENTS:
            value = row.amount(movement)
            if value == 0:
                continue
            start = up if value > 0 else down
            end = start + value
            if value > 0:
                up = end
            else:
                down = end
            title = f"{format_month(row.month)} · {movement.label}: {format_amount(value, currency)}"
            body.append(
                _rect(
                    x,
                    min(y_of(start), y_of(end)),
                    bar,
                    abs(y_of(end) - y_of(start)),
                    movement.colour,
                    title=title,
                    data_value=value,
                    data_series=movement.column,
                    data_month=row.month.isoformat(),
                )
            )
        net = up + down
        body.append(
            _line(
                x - 3,
                x + bar + 3,
                y_of(net),
                y_of(net),
                _INK,
                title=f"{format_month(row.month)} · net change: {format_amount(net, currency)}",
                stroke_width=2,
                data_net=net,
            )
        )
        if i % label_every == 0:
            centre = left + band * i + band / 2
            body.append(
                _text(
                    centre,
                    top + plot_height + 16,
                    row.month.strftime("%b"),
                    class_="tick",
                    text_anchor="middle",
                )
            )
            if i == 0 or row.month.month == 1:
                body.append(
                    _text(
                        centre,
                        top + plot_height + 30,
                        str(row.month.year),
                        class_="tick",
                        text_anchor="middle",
                    )
                )
    body.append(_line(left, _WIDTH - right, zero, zero, _INK, class_="zero"))
    body.append(
        _text(left + (_WIDTH - left - right) / 2, height - 8, "Month", class_="axis", text_anchor="middle")
    )
    middle = top + plot_height / 2
    body.append(
        _text(
            16,
            middle,
            f"Change in MRR ({currency.upper()})",
            class_="axis",
            text_anchor="middle",
            transform=f"rotate(-90 16 {middle:.1f})",
        )
    )
    first, last = rows[0], rows[-1]
    label = (
        f"MRR movements in {currency.upper()} by month, {format_month(first.month)} to "
        f"{format_month(last.month)}: stacked bars of new, expansion and reactivated MRR above zero, "
        f"contraction and churned MRR below. MRR at the end of {format_month(last.month)}: "
        f"{format_amount(last.mrr, currency)}."
    )
    return _svg("mrr-movements", label, height, body, data_currency=currency)


def campaign_chart(rows: Sequence[CampaignMrr], currency: str) -> str:
    """Horizontal bars: each campaign's MRR at the latest month; '(missing)' in grey."""
    top, left, right, row_height, bar = 16, 230, 260, 30, 20
    plot_width = _WIDTH - left - right
    height = top + row_height * len(rows) + 56
    ticks = nice_ticks(
        major(min(r.mrr for r in rows), currency), major(max(r.mrr for r in rows), currency), 4
    )
    span = ticks[-1] - ticks[0]

    def x_of(minor: int) -> float:
        return left + (major(minor, currency) - ticks[0]) / span * plot_width

    bottom = top + row_height * len(rows)
    body = []
    for tick in ticks:
        x = left + (tick - ticks[0]) / span * plot_width
        body.append(_line(x, x, top - 4, bottom, _GRID))
        body.append(
            _text(x, bottom + 16, _tick_label(tick, ticks[1] - ticks[0]), class_="tick", text_anchor="middle")
        )
    for i, row in enumerate(rows):
        y = top + row_height * i + (row_height - bar) / 2
        missing = row.campaign == MISSING
        name = row.campaign if len(row.campaign) <= 30 else row.campaign[:29] + "…"
        body.append(
            _text(
                left - 10,
                y + 15,
                name,
                title=row.campaign,
                text_anchor="end",
                class_="label missing" if missing else "label",
            )
        )
        start, end = sorted((x_of(0), x_of(row.mrr)))
        body.append(
            _rect(
                start,
                y,
                end - start,
                bar,
                MISSING_COLOUR if missing else CAMPAIGN_COLOUR,
                title=f"{row.campaign}: {format_amount(row.mrr, currency)} MRR, "
                f"{format_amount(row.revenue, currency)} revenue to date",
                data_value=row.mrr,
                data_campaign=row.campaign,
            )
        )
        body.append(_text(max(end, x_of(0)) + 8, y + 15, format_amount(row.mrr, currency), class_="value"))
    body.append(_line(x_of(0), x_of(0), top - 4, bottom, _INK, class_="zero"))
    as_of = format_month(rows[0].as_of)
    body.append(
        _text(
            left + plot_width / 2,
            height - 10,
            f"MRR at the end of {as_of} ({currency.upper()})",
            class_="axis",
            text_anchor="middle",
        )
    )
    label = f"MRR by campaign in {currency.upper()} at the end of {as_of}: " + "; ".join(
        f"{r.campaign} {format_amount(r.mrr, currency)}" for r in rows
    )
    return _svg("mrr-by-campaign", label, height, body, data_currency=currency)


def cohort_chart(cells: Sequence[CohortCell]) -> str:
    """A heat map: a row per cohort (month of first payment), a column per month since; the % in the cell."""
    cohorts = sorted({cell.cohort_month for cell in cells})
    size = {cell.cohort_month: cell.customers for cell in cells if cell.months_since == 0}
    for cell in cells:
        size.setdefault(cell.cohort_month, cell.customers)
    columns = max(cell.months_since for cell in cells) + 1
    top, left, row_height = 64, 190, 30
    cell_width = min(72.0, (_WIDTH - left - 10) / columns)
    height = top + row_height * len(cohorts) + 60
    body = [
        _text(
            left + cell_width * columns / 2,
            18,
            "Months since first payment",
            class_="axis",
            text_anchor="middle",
        )
    ]
    body += _legend(
        [(f"{p}%", retention_colour(p / 100)) for p in (0, 25, 50, 75, 100)], height - 14, left, _GRID
    )
    for column in range(columns):
        body.append(
            _text(
                left + cell_width * (column + 0.5), top - 10, str(column), class_="tick", text_anchor="middle"
            )
        )
    for row, cohort in enumerate(cohorts):
        y = top + row_height * row
        body.append(
            _text(
                left - 10,
                y + 19,
                f"{format_month(cohort)} ({size[cohort]:,})",
                class_="label",
                text_anchor="end",
            )
        )
    body.append(
        _text(
            14,
            top + row_height * len(cohorts) / 2,
            "Cohort (customers)",
            class_="axis",
            text_anchor="middle",
            transform=f"rotate(-90 14 {top + row_height * len(cohorts) / 2:.1f})",
        )
    )
    small = cell_width < 40
    for cell in cells:
        x = left + cell_width * cell.months_since
        y = top + row_height * cohorts.index(cell.cohort_month)
        colour = retention_colour(cell.retention)
        title = (
            f"{format_month(cell.cohort_month)} cohort, month {cell.months_since}: {cell.retained:,} of "
            f"{cell.customers:,} customers ({format_percent(cell.retention)})"
        )
        body.append(
            _rect(
                x + 1,
                y + 1,
                cell_width - 2,
                row_height - 2,
                colour,
                title=title,
                data_value=f"{cell.retention:.4f}",
                data_cohort=cell.cohort_month.isoformat(),
                data_months_since=cell.months_since,
            )
        )
        body.append(
            _text(
                x + cell_width / 2,
                y + 19,
                format_percent(cell.retention),
                text_anchor="middle",
                class_="cell dark" if _is_dark(colour) else "cell",
                font_size="10" if small else None,
            )
        )
    label = (
        f"Cohort retention heat map: {len(cohorts)} cohorts by month of first payment, "
        f"{format_month(cohorts[0])} to {format_month(cohorts[-1])}; each cell is the share of the cohort's "
        "customers still paying that many months later."
    )
    return _svg("cohort-retention", label, height, body)


def _level_order(level: str) -> tuple[int, str]:
    return (RISK_LEVELS.index(level) if level in RISK_LEVELS else len(RISK_LEVELS), level)


def risk_chart(rows: Sequence[RiskLevel], currency: str) -> str:
    """Horizontal bars: the MRR of the customers at each churn-risk level."""
    rows = sorted(rows, key=lambda r: _level_order(r.level))
    top, left, right, row_height, bar = 16, 150, 330, 34, 22
    plot_width = _WIDTH - left - right
    bottom = top + row_height * len(rows)
    height = bottom + 56
    ticks = nice_ticks(
        major(min(r.mrr for r in rows), currency), major(max(r.mrr for r in rows), currency), 4
    )
    span = ticks[-1] - ticks[0]

    def x_of(minor: int) -> float:
        return left + (major(minor, currency) - ticks[0]) / span * plot_width

    body = []
    for tick in ticks:
        x = left + (tick - ticks[0]) / span * plot_width
        body.append(_line(x, x, top - 4, bottom, _GRID))
        body.append(
            _text(x, bottom + 16, _tick_label(tick, ticks[1] - ticks[0]), class_="tick", text_anchor="middle")
        )
    for i, row in enumerate(rows):
        y = top + row_height * i + (row_height - bar) / 2
        body.append(
            _text(left - 10, y + 16, f"{row.level.capitalize()} risk", class_="label", text_anchor="end")
        )
        start, end = sorted((x_of(0), x_of(row.mrr)))
        customers = _customers(row.customers)
        body.append(
            _rect(
                start,
                y,
                end - start,
                bar,
                RISK_COLOURS.get(row.level, OTHER_RISK_COLOUR),
                title=f"{row.level} risk: {customers}, {format_amount(row.mrr, currency)} MRR",
                data_value=row.mrr,
                data_level=row.level,
            )
        )
        body.append(
            _text(
                max(end, x_of(0)) + 8,
                y + 16,
                f"{format_amount(row.mrr, currency)} MRR · {customers}",
                class_="value",
            )
        )
    body.append(_line(x_of(0), x_of(0), top - 4, bottom, _INK, class_="zero"))
    body.append(
        _text(
            left + plot_width / 2,
            height - 10,
            f"MRR of the customers at each level ({currency.upper()})",
            class_="axis",
            text_anchor="middle",
        )
    )
    label = f"Revenue at risk in {currency.upper()} by churn-risk level: " + "; ".join(
        f"{r.level} {format_amount(r.mrr, currency)} from {r.customers} customers" for r in rows
    )
    return _svg("revenue-at-risk", label, height, body, data_currency=currency)


# -- the page ---------------------------------------------------------------------------------------------
_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #fff; color: #1f2328;
  font: 15px/1.5 "Liberation Sans", "DejaVu Sans", Arial, Helvetica, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 30px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 4px; border-top: 1px solid #d8dee4; padding-top: 20px; }
h3 { font-size: 15px; margin: 18px 0 6px; color: #57606a; }
p.lead, p.explain { color: #57606a; margin: 0 0 10px; max-width: 860px; }
svg { display: block; max-width: 100%; height: auto; overflow: visible; }
svg text { font-family: inherit; fill: #1f2328; }
svg rect[data-value] { shape-rendering: crispEdges; }
svg .tick { font-size: 11px; fill: #57606a; }
svg .axis { font-size: 12px; font-weight: bold; fill: #57606a; }
svg .legend, svg .label, svg .value { font-size: 12px; }
svg .label.missing { font-style: italic; }
svg .cell { font-size: 12px; font-weight: bold; }
svg .cell.dark { fill: #fff; }
svg .empty { font-size: 14px; fill: #57606a; }
.summary { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0 0; padding: 0; list-style: none; }
.summary li { border: 1px solid #d8dee4; border-radius: 6px; padding: 8px 14px; min-width: 200px; }
.summary b { display: block; font-size: 20px; }
details { margin: 8px 0 0; font-size: 13px; }
summary { cursor: pointer; color: #0969da; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border-bottom: 1px solid #d8dee4; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; max-width: 980px; }
dt { font-weight: bold; } dd { margin: 0; color: #3d444d; }
footer { margin-top: 32px; color: #57606a; font-size: 12px; }
"""

# The rules of the analytics views (analytics/*.sql), in words.
DEFINITIONS = (
    (
        "MRR",
        "Monthly recurring revenue at the end of a month: for each active or past-due subscription, the "
        "licensed recurring prices times quantity, annual and quarterly plans divided to a month, discounts "
        "and coupons applied. Trials, metered usage and one-off charges are not MRR. Currencies are never "
        "added together. MRR = last month's MRR + the five movements (contraction and churned are negative).",
    ),
    ("New", "MRR of customers in their first month with MRR."),
    ("Expansion", "The increase of customers who had MRR last month and more now: upgrades, more seats."),
    ("Contraction", "The decrease of customers who still have MRR: downgrades, fewer seats, a new coupon."),
    ("Churned", "Last month's MRR of customers with none this month: canceled, ended, unpaid."),
    ("Reactivated", "MRR of customers who had MRR before, none last month, and some this month."),
    (
        "Campaign",
        "The campaign metadata of the charge or subscription, else of its customer; (missing) is the revenue "
        "without one, so gaps in the metadata show instead of disappearing. Revenue to date is succeeded "
        "charges net of refunds.",
    ),
    (
        "Cohort retention",
        "Customers grouped by the month of their first successful payment; a cell is the share of the "
        "cohort retained that many months later: with MRR at the month's end, or a payment in the month.",
    ),
    (
        "Revenue at risk",
        "Current MRR (at the end of the latest month) of customers whose latest churn-risk signal is high "
        "(score 0.75 or more) or medium (0.5 to 0.75); a customer whose risk fell back to low is not at "
        "risk any more.",
    ),
    (
        "Amounts",
        "Stored in the currency's smallest unit and shown in its main unit with its code (1,234.56 USD). "
        "Events delivered twice or late are counted once, in their latest state.",
    ),
)


def _section(title: str, explain: str, content: str) -> str:
    return f"<section><h2>{escape(title)}</h2><p class='explain'>{escape(explain)}</p>{content}</section>"


class _InCurrency(Protocol):
    @property
    def currency(self) -> str: ...


_Row = TypeVar("_Row", bound=_InCurrency)


def _per_currency(
    rows: Sequence[_Row],
    chart: Callable[[list[_Row], str], str],
    header: Callable[[list[_Row]], list[str]],
    cells: Callable[[_Row, str], list[str]],
    order: Callable[[_Row], Any] | None = None,
) -> str:
    """Each currency on its own: its code, its chart and the table of its numbers, of its rows (in `order`,
    else as given)."""
    parts = []
    for currency in _currencies(rows):
        mine = [r for r in rows if r.currency == currency]
        if order is not None:
            mine.sort(key=order)
        parts.append(f"<h3>{escape(currency.upper())}</h3>{chart(mine, currency)}")
        parts.append(
            _table(f"The numbers ({currency.upper()})", header(mine), (cells(r, currency) for r in mine))
        )
    return "".join(parts)


def _movements_section(rows: Sequence[MovementMonth]) -> str:
    if not rows:
        return _empty(
            "mrr-movements",
            "MRR movements",
            "No MRR yet: subscriptions appear here once their events arrive.",
        )
    return _per_currency(
        rows,
        mrr_movements_chart,
        lambda _: ["Month", "MRR", *(m.label for m in MOVEMENTS), "Net change", "Customers"],
        lambda r, currency: [
            format_month(r.month),
            format_amount(r.mrr, currency),
            *(format_amount(r.amount(m), currency) for m in MOVEMENTS),
            format_amount(sum(r.amount(m) for m in MOVEMENTS), currency),
            f"{r.customers:,}",
        ],
    )


def _campaign_section(rows: Sequence[CampaignMrr]) -> str:
    if not rows:
        return _empty("mrr-by-campaign", "MRR by campaign", "No campaign data yet.")
    return _per_currency(
        rows,
        campaign_chart,
        lambda mine: ["Campaign", f"MRR, {format_month(mine[0].as_of)}", "Revenue to date"],
        lambda r, currency: [r.campaign, format_amount(r.mrr, currency), format_amount(r.revenue, currency)],
        order=lambda r: (-r.mrr, -r.revenue, r.campaign),
    )


def _cohort_section(cells: Sequence[CohortCell]) -> str:
    if not cells:
        return _empty(
            "cohort-retention", "Cohort retention", "No cohorts yet: they start with a first payment."
        )
    return cohort_chart(cells) + _table(
        "The numbers",
        ["Cohort", "Months since", "Customers", "Retained", "Retention"],
        (
            [
                format_month(c.cohort_month),
                str(c.months_since),
                f"{c.customers:,}",
                f"{c.retained:,}",
                format_percent(c.retention),
            ]
            for c in cells
        ),
    )


def _risk_section(rows: Sequence[RiskLevel]) -> str:
    if not rows:
        return _empty(
            "revenue-at-risk",
            "Revenue at risk",
            "No paying customer at high or medium churn risk (or no churn-risk signals yet).",
        )
    return _per_currency(
        rows,
        risk_chart,
        lambda _: ["Level", "Customers", "MRR"],
        lambda r, currency: [r.level, f"{r.customers:,}", format_amount(r.mrr, currency)],
        order=lambda r: _level_order(r.level),
    )


def _summary(rows: Sequence[MovementMonth]) -> str:
    items = []
    for currency in _currencies(rows):
        last = max((r for r in rows if r.currency == currency), key=lambda r: r.month)
        net = sum(last.amount(m) for m in MOVEMENTS)
        items.append(
            f"<li>MRR, {escape(format_month(last.month))}<b>{escape(format_amount(last.mrr, currency))}</b>"
            f"ARR {escape(format_amount(last.mrr * 12, currency))} · net change "
            f"{escape(format_amount(net, currency))} · {_customers(last.customers)}</li>"
        )
    return f"<ul class='summary'>{''.join(items)}</ul>" if items else ""


def render_html(data: ReportData) -> str:
    """The whole report as one self-contained HTML page (no script, no external resource)."""
    generated = data.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    source = f" from {data.source}" if data.source else ""
    data_definition = (
        "Data",
        f"Only the {data.scope}: the views keep every Stripe account (the platform's own and each connected "
        "account) and each mode (live, test) apart, and the page shows one of them, never a sum. "
        "`stripe-middleware report` shows the platform's live money; --test shows test mode, "
        "--account acct_... a connected account.",
    )
    definitions = "".join(
        f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in (data_definition, *DEFINITIONS)
    )
    sections = [
        _section(
            "MRR movements",
            "How MRR changed each month: new, expansion and reactivated MRR above the line, contraction and "
            "churn below it; the black tick is the net change.",
            _movements_section(data.movements),
        ),
        _section(
            "MRR by campaign",
            "Which campaign the recurring revenue came from, at the end of the latest month; (missing) is "
            "revenue whose customer has no campaign metadata.",
            _campaign_section(data.campaigns),
        ),
        _section(
            "Cohort retention",
            "Customers by the month of their first payment (a row), and the share of them still paying each "
            "month after (a column). Darker is better.",
            _cohort_section(data.cohorts),
        ),
        _section(
            "Revenue at risk",
            "Current MRR of the customers whose latest churn risk is high or medium: what retention "
            "calls could save.",
            _risk_section(data.at_risk),
        ),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Revenue report · stripe-middleware</title>"
        f"<style>{_CSS}</style></head><body><main>"
        "<h1>Revenue report</h1>"
        f"<p class='lead'>Generated {escape(generated)}{escape(source)} by stripe-middleware. "
        f"<b data-scope>Data: {escape(data.scope)}</b> (no other account or mode added in). "
        "Amounts in each currency's main unit; each currency on its own.</p>"
        f"{_summary(data.movements)}{''.join(sections)}"
        f"<section><h2>Definitions</h2><dl>{definitions}</dl></section>"
        "<footer>Self-contained: this page loads nothing from the network.</footer>"
        "</main></body></html>\n"
    )


# -- the command ------------------------------------------------------------------------------------------
def run_report_command(args: argparse.Namespace) -> int:
    from stripe_middleware_dev.local.warehouse import warehouse_connection

    connection = warehouse_connection(args.state_dir)
    try:
        data = build_report(
            connection,
            source=f"the local warehouse in {args.state_dir}",
            livemode=not args.test,
            account=args.account,
        )
    finally:
        connection.close()
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    months = len({(r.currency, r.month) for r in data.movements})
    print(
        f"wrote {out} ({data.scope}: {months} currency-months of MRR, {len(data.campaigns)} campaign rows, "
        f"{len({c.cohort_month for c in data.cohorts})} cohorts, {len(data.at_risk)} risk levels); "
        f"open file://{out.resolve()}"
    )
    if not (data.movements or data.campaigns or data.cohorts or data.at_risk) and data.livemode:
        print(f"nothing for the {data.scope}: the simulator and test keys send test-mode events (--test)")
    return 0


def _account_id(text: str) -> str:
    if not text.startswith("acct_") or len(text) <= len("acct_"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Stripe account id (acct_...)")
    return text


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="write the analytics report (one self-contained HTML page) from the local warehouse"
    )
    report.add_argument(
        "--out", type=Path, default=Path("report.html"), help="where to write it (default report.html)"
    )
    report.add_argument("--test", action="store_true", help="report test-mode data (default: live mode only)")
    report.add_argument(
        "--account",
        type=_account_id,
        metavar="acct_...",
        help="report this connected account's data (default: the platform's own account only)",
    )
    report.set_defaults(run=run_report_command)

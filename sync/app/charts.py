"""The report's charts: matplotlib figures rendered to SVG text for inlining in HTML.

Why matplotlib to SVG (docs/decisions/0011-report-charts.md): the file then holds no
JavaScript at all (nothing to inline, nothing to throw in a browser console), and text
is drawn as glyph outlines (``svg.fonttype = path``), so it needs no font from anywhere.

Every string that reaches a chart comes from the database, so from the API: mathtext is
off (a ``$`` in a bank's name is a dollar sign, not TeX), labels are passed explicitly
(a name starting with ``_`` is not dropped from a legend), and each label is shortened.
matplotlib escapes the text it writes into the SVG (it keeps each label in a comment).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import matplotlib
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

#: Series colours (matplotlib's tab10, colour-blind friendlier than the old default);
#: the HTML legend beside a chart uses the same list.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
STATUS_COLOURS = {
    "active": "#2ca02c",
    "login_required": "#d62728",
    "inactive": "#7f7f7f",
}
OTHER_STATUS_COLOUR = "#9467bd"
INFLOW_COLOUR, OUTFLOW_COLOUR, NET_COLOUR = "#2ca02c", "#d62728", "#1f1f1f"

WIDTH_IN = 9.0
LABEL_CHARS = 32
# Any keys: matplotlib types rc names as one long Literal, these are all valid ones.
_RC: dict[Any, Any] = {
    "svg.fonttype": "path",  # glyph outlines: no font file, no web font
    "text.parse_math": False,  # hostile names are text, never mathtext
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "axes.axisbelow": True,
}


@dataclass(frozen=True)
class Series:
    """One account's balance per day."""

    colour: str
    days: Sequence[date]
    values: Sequence[float]


@dataclass(frozen=True)
class Span:
    """A link in one status from start to end."""

    start: datetime
    end: datetime
    status: str


def status_colour(status: str) -> str:
    """The colour of a link status on the timeline (unknown statuses share one)."""
    return STATUS_COLOURS.get(status, OTHER_STATUS_COLOUR)


def short(label: str, limit: int = LABEL_CHARS) -> str:
    """A label cut to limit characters (with an ellipsis), control characters removed."""
    clean = "".join(ch if ch.isprintable() else " " for ch in label)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _money(value: float, _pos: object = None) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}"


#: Above this ratio between the largest and the smallest account, a linear axis would
#: flatten the small ones into the zero line.
LOG_RATIO = 50.0


def _scale_for(series: Sequence[Series]) -> float | None:
    """The linear threshold of a symlog axis when magnitudes differ widely, else None."""
    peaks = [max(abs(v) for v in s.values) for s in series if s.values]
    peaks = [p for p in peaks if p > 0]
    if len(peaks) < 2 or max(peaks) / min(peaks) < LOG_RATIO:
        return None
    return max(1.0, min(peaks) / 10)


def _figure(height_in: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    return fig, fig.add_subplot()


def _dates_axis(ax: Any) -> None:
    # matplotlib.dates ships without annotations on these two constructors
    locator = AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _svg(fig: Figure, chart_id: str) -> str:
    """The figure as an <svg> element (no XML prolog), reproducible for the same data."""
    buffer = io.StringIO()
    # The salt makes the ids of clip paths and markers unique per chart in the page.
    with matplotlib.rc_context({"svg.hashsalt": chart_id}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # Scale with the page: keep the viewBox, let CSS size it.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)
    return svg.replace("<svg", f'<svg id="{chart_id}" role="img" class="chart"', 1)


def balance_chart(chart_id: str, series: Sequence[Series], unit: str) -> str:
    """Step-wise lines, one per account: the balance at the end of each day."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure(3.4)
        for s in series:
            ax.step(s.days, s.values, where="post", color=s.colour, linewidth=1.8)
        threshold = _scale_for(series)
        if threshold is not None:
            ax.set_yscale("symlog", linthresh=threshold)
        ax.yaxis.set_major_formatter(FuncFormatter(_money))
        ax.set_ylabel(short(unit) + (" (log scale)" if threshold is not None else ""))
        _dates_axis(ax)
        return _svg(fig, chart_id)


def cash_flow_chart(
    chart_id: str,
    months: Sequence[date],
    inflow: Sequence[float],
    outflow: Sequence[float],
    unit: str,
) -> str:
    """Money in (up) and out (down) per month, and the net as a line of dots."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure(3.0)
        x = list(range(len(months)))
        ax.set_xlim(-0.6, max(len(months), 4) - 0.4)  # a lone month is not one huge bar
        net = [i - o for i, o in zip(inflow, outflow, strict=True)]
        bars_in = ax.bar(x, inflow, color=INFLOW_COLOUR, width=0.7)
        bars_out = ax.bar(x, [-o for o in outflow], color=OUTFLOW_COLOUR, width=0.7)
        (line,) = ax.plot(x, net, color=NET_COLOUR, marker="o", markersize=4, linewidth=1)
        ax.axhline(0, color="#555555", linewidth=0.8)
        ax.set_xticks(x, [m.strftime("%b %Y") for m in months])
        ax.yaxis.set_major_formatter(FuncFormatter(_money))
        ax.set_ylabel(short(unit))
        ax.legend(
            [bars_in, bars_out, line],
            ["in", "out", "net"],
            loc="lower left",
            bbox_to_anchor=(0, 1.0),
            ncols=3,
            frameon=False,
        )
        return _svg(fig, chart_id)


def status_timeline(
    chart_id: str,
    labels: Sequence[str],
    spans: Sequence[Sequence[Span]],
    window: tuple[datetime, datetime],
) -> str:
    """One bar per link, coloured by status over the window (newest at the right)."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure(0.9 + 0.28 * len(labels))
        seen: dict[str, str] = {}
        for row, link_spans in enumerate(spans):
            for span in link_spans:
                colour = status_colour(span.status)
                seen.setdefault(span.status, colour)
                width = span.end - span.start
                ax.broken_barh([(span.start, width)], (row - 0.38, 0.76), facecolors=colour)
        ax.set_yticks(range(len(labels)), [short(label) for label in labels])
        ax.set_ylim(len(labels) - 0.5, -0.5)  # the first link on top
        ax.set_xlim(*window)
        ax.grid(axis="y", visible=False)
        _dates_axis(ax)
        handles = [Patch(color=colour) for colour in seen.values()]
        ax.legend(
            handles,
            [short(status, 20) for status in seen],
            loc="lower left",
            bbox_to_anchor=(0, 1.0),
            ncols=max(1, len(seen)),
            frameon=False,
        )
        return _svg(fig, chart_id)

"""The tariff step chart: the total additional tariff in force per direction over time, as SVG or PNG.

`tariff_series` evaluates the `tariff_schedule` read model on every day of a range (a day costs a
fraction of a millisecond on an indexed `State`), so a step is exactly what the API answers for
each of its days. `tariff_chart` lays the steps, the rounds and the truce changes out as a few
drawing primitives; `to_svg` writes them as standalone SVG (presentation attributes only, so the
page can inline it under a strict Content-Security-Policy) and `to_png` draws the same primitives
with Pillow when it is installed.

A chart's work grows with its days, so a range is bounded before any day is evaluated: a given range
spans at most MAX_DAYS (checked on the parameters, service/queries/params.py), and the default range
is clamped, so that no single event can make it long (`default_range`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import io
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from events.payloads import Event, MeasureChanged
from events.records import Recorded
from projections import Fact, MeasureRate, State, rounds, tariff_schedule, view
from projections.coverage import coverage
from service.queries.timelimit import UNLIMITED, TimeLimit
from projections.truce import truces
from service.queries.exports import amendments_in, believed

# The longest range a chart evaluates, about ten years of days.
MAX_DAYS = 3660
# How far past the record's last dated fact the default range looks for scheduled dates: five years
# keeps every step the shipped records schedule (the US-EU record names a rate until 2030-07-31),
# while a date far out (a deadline due 2999-12-31) cannot stretch it.
LOOKAHEAD_YEARS = 5
LOOKAHEAD = dt.timedelta(days=round(365.25 * LOOKAHEAD_YEARS))
PALETTE = {"US->CN": "#c62828", "CN->US": "#1f5fa8"}
EXTRA_COLOURS = ("#2e7d32", "#8e44ad", "#ef6c00", "#00838f", "#6d4c41")


# --- the series ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Step:
    start: dt.date
    end: dt.date  # the last day it applies (inclusive)
    total: float
    measures: tuple[MeasureRate, ...]
    because: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Series:
    imposed_by: str
    applies_to: str
    steps: tuple[Step, ...]

    @property
    def key(self) -> str:
        return f"{self.imposed_by}->{self.applies_to}"


@dataclasses.dataclass(frozen=True)
class Marker:
    kind: str  # "round" (a band from start to end) or "truce" (a line at start)
    start: dt.date
    end: dt.date
    label: str
    because: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ChartData:
    title: str
    start: dt.date
    end: dt.date
    record_through: dt.date | None  # the record's coverage: past it, the chart only projects
    legal_basis: str | None
    series: tuple[Series, ...]
    markers: tuple[Marker, ...]
    measure_names: dict[str, str]
    summaries: dict[str, str]


def known(state: State, known_at: dt.datetime) -> list[Recorded]:
    return [r for r in state.records if r.recorded_at <= known_at]


def default_range(facts: Sequence[Fact[Event]], today: dt.date) -> tuple[dt.date, dt.date]:
    """From the first fact to a month past the last date the record names, clamped; `today` alone without facts.

    The facts are the events as now believed, so a retracted event names no date. The end is at most
    LOOKAHEAD past the record's last dated fact (or `today`, when that is earlier: a fact dated in the
    future does not move it), and the range keeps its latest MAX_DAYS.
    """
    if not facts:
        return today, today
    first = min(f.event.occurred_on for f in facts)
    last = named = max(f.event.occurred_on for f in facts)
    for fact in facts:
        for field in ("effective_from", "effective_until", "due_on", "starts_on", "ends_on"):
            value = getattr(fact.event, field, None)
            if isinstance(value, dt.date) and value > named:
                named = value
    end = min(named + dt.timedelta(days=30), min(last, max(today, first)) + LOOKAHEAD)
    return max(first, end - dt.timedelta(days=MAX_DAYS)), end


def _clamped(given: tuple[dt.date | None, dt.date | None], default: tuple[dt.date, dt.date]) -> tuple[dt.date, dt.date]:
    """A range with the bounds left out taken from the default, still at most MAX_DAYS long."""
    start, end = given
    longest = dt.timedelta(days=MAX_DAYS)
    if start is not None and end is not None:
        return start, end
    if end is not None:
        return min(end, max(default[0], end - longest)), end
    if start is not None:
        return start, max(start, min(default[1], start + longest))
    return default


def _signature(rates: Sequence[MeasureRate]) -> tuple[tuple[str, float | None, str], ...]:
    return tuple((r.measure_id, r.rate_pct, r.coverage) for r in rates)


def tariff_series(
    state: State, start: dt.date, end: dt.date, known_at: dt.datetime, legal_basis: str | None = None,
    time_limit: TimeLimit = UNLIMITED,
) -> tuple[Series, ...]:
    """Per direction, the runs of days with the same duties in force, from `start` to `end` inclusive."""
    runs: dict[str, list[list[Any]]] = {}
    names: dict[str, tuple[str, str]] = {}
    day = start
    while day <= end:
        time_limit.check()
        schedule = tariff_schedule(view(state, day, known_at, time_limit), legal_basis=legal_basis)
        seen = set()
        for direction in schedule.directions:
            key = f"{direction.imposed_by}->{direction.applies_to}"
            names[key] = (direction.imposed_by, direction.applies_to)
            seen.add(key)
            _extend(runs.setdefault(key, []), day, direction.total_additional_pct, direction.measures, direction.because)
        for key in runs.keys() - seen:
            _extend(runs[key], day, 0.0, (), ())
        day += dt.timedelta(days=1)
    found = []
    for key, steps in runs.items():
        if steps[0][0] > start:  # a direction first seen later had nothing in force before
            steps.insert(0, [start, steps[0][0] - dt.timedelta(days=1), 0.0, (), ()])
        found.append(Series(*names[key], steps=tuple(Step(*s) for s in steps)))
    return tuple(sorted(found, key=lambda s: (s.key not in PALETTE, list(PALETTE).index(s.key) if s.key in PALETTE else 0, s.key)))


def _extend(steps: list[list[Any]], day: dt.date, total: float, rates: tuple[MeasureRate, ...], because: tuple[str, ...]) -> None:
    if steps and steps[-1][2] == total and _signature(steps[-1][3]) == _signature(rates):
        steps[-1][1] = day
    else:
        steps.append([day, day, total, rates, because])


def _short_place(location: str | None, name: str) -> str:
    if location:
        return location.split(" (")[0].split(",")[0]
    return name if len(name) <= 24 else name[:23] + "…"


def _fmt_day(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


def chart_data(
    state: State,
    known_at: dt.datetime,
    *,
    title: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    legal_basis: str | None = None,
    time_limit: TimeLimit = UNLIMITED,
) -> ChartData:
    records = known(state, known_at)
    facts = list(believed(records, amendments_in(records)))
    start, end = _clamped((start, end), default_range(facts, known_at.astimezone(dt.UTC).date()))
    measure_names: dict[str, str] = {}
    summaries: dict[str, str] = {}
    for fact in facts:
        if isinstance(fact.event, MeasureChanged) and fact.event.name:
            measure_names[fact.event.measure_id] = fact.event.name
        summaries[fact.event_id] = f"{fact.event.occurred_on} {fact.event.summary or type(fact.event).__name__}"
    seen = view(state, end, known_at)
    markers: list[Marker] = []
    for held in rounds(seen).rounds:
        markers.append(
            Marker("round", held.starts_on, held.ends_on or held.starts_on, _short_place(held.location, held.name), held.because)
        )
    for truce in truces(seen):
        label = truce.truce_id or "truce"
        if truce.effective_from is not None:
            markers.append(Marker("truce", truce.effective_from, truce.effective_from, f"{label} in effect", truce.because))
        for extension in truce.extensions:
            markers.append(
                Marker(
                    "truce", extension.occurred_on, extension.occurred_on,
                    f"extended to {_fmt_day(extension.due_on)}", (extension.event_id,),
                )
            )
        if truce.ended_on is not None:
            markers.append(Marker("truce", truce.ended_on, truce.ended_on, f"{label} ended", truce.because))
        elif truce.status == "lapsed" and truce.lapses_on is not None:
            markers.append(Marker("truce", truce.lapses_on, truce.lapses_on, f"{label} lapses", truce.because))
    markers = [m for m in markers if m.end >= start and m.start <= end]
    return ChartData(
        title=title,
        start=start,
        end=end,
        record_through=coverage(seen).record_through,
        legal_basis=legal_basis,
        series=tariff_series(state, start, end, known_at, legal_basis, time_limit),
        markers=tuple(sorted(markers, key=lambda m: (m.start, m.kind))),
        measure_names=measure_names,
        summaries=summaries,
    )


# --- drawing primitives ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    opacity: float = 1.0


@dataclasses.dataclass(frozen=True)
class Line:
    points: tuple[tuple[float, float], ...]
    stroke: str
    width: float = 1.0
    dash: bool = False


@dataclasses.dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    size: float = 12
    fill: str = "#333"
    anchor: str = "start"  # start | middle | end
    bold: bool = False


@dataclasses.dataclass(frozen=True)
class Hover:
    """An invisible hit area with a tooltip (SVG only): one step of one direction."""

    x: float
    y: float
    w: float
    h: float
    tooltip: str
    data: dict[str, str]


Shape = Rect | Line | Text | Hover


@dataclasses.dataclass(frozen=True)
class Figure:
    width: int
    height: int
    shapes: tuple[Shape, ...]
    title: str
    description: str
    data: dict[str, str]


def _nice_step(top: float) -> float:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if top / step <= 8:
            return float(step)
    return 10000.0


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    every = 1 if (end - start).days <= 550 else 3 if (end - start).days <= 1600 else 12
    day = dt.date(start.year, start.month, 1)
    found = []
    while day <= end:
        if day >= start and (day.month - 1) % every == 0:
            found.append(day)
        day = dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return found


def _pct(value: float) -> str:
    return f"{value:g}%"


def _step_tooltip(series: Series, step: Step, data: ChartData) -> str:
    until = "on" if step.end >= data.end else f"to {step.end.isoformat()}"
    lines = [f"{series.imposed_by} → {series.applies_to}: {_pct(step.total)} from {step.start.isoformat()} {until}"]
    if data.record_through is not None and step.end > data.record_through:
        lines.append(f"(past {data.record_through.isoformat()}, where the record ends: a projection, not known fact)")
    for rate in step.measures:
        name = data.measure_names.get(rate.measure_id, rate.measure_id)
        extra = "" if rate.coverage == "all" else " (listed products; not in the total)"
        lines.append(f"• {name}: {_pct(rate.rate_pct or 0)} {rate.legal_basis or ''}{extra}".rstrip())
    if not step.measures:
        lines.append("• no additional tariff in force")
    for event_id in step.because:
        if event_id in data.summaries:
            lines.append(f"– {data.summaries[event_id]}")
    return "\n".join(lines)


def tariff_chart(data: ChartData, width: int = 960, height: int = 440) -> Figure:
    left, right, top, bottom = 52, 118, 92, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max((data.end - data.start).days + 1, 1)

    def x(day: dt.date) -> float:
        return left + plot_w * (day - data.start).days / span

    highest = max((s.total for series in data.series for s in series.steps), default=0.0)
    step = _nice_step(max(highest * 1.08, 10))
    y_top = step * math.ceil(max(highest * 1.08, 10) / step)

    def y(value: float) -> float:
        return top + plot_h * (1 - value / y_top)

    shapes: list[Shape] = [Rect(0, 0, width, height, "#ffffff")]
    basis = f" — legal basis: {data.legal_basis}" if data.legal_basis else ""
    shapes.append(Text(left, 22, f"Additional tariffs in force — {data.title}", 15, "#111", bold=True))
    shapes.append(
        Text(left, 40, f"Total additional duty on all goods, % (product-specific lines listed, not added){basis}", 11.5, "#555")
    )
    # beyond the record: a projection of what applies if nothing else changes, never drawn solid
    beyond = data.record_through + dt.timedelta(days=1) if data.record_through is not None else data.start
    if beyond <= data.end:
        x0 = x(max(beyond, data.start))
        shapes.append(Rect(x0, top, left + plot_w - x0, plot_h, "#eceff1", 0.8))
        ends = f"the record ends {data.record_through.isoformat()}" if data.record_through else "nothing recorded"
        shapes.append(Text(left + plot_w - 4, top + plot_h - 18, f"projection: {ends}", 10, "#546e7a", "end", bold=True))
        shapes.append(Text(left + plot_w - 4, top + plot_h - 6, "carried forward, not known fact", 10, "#78909c", "end"))
    # rounds as bands, truce changes as dashed lines; labels in rows so they do not collide
    rows: list[float] = [-1e9, -1e9, -1e9]
    for marker in data.markers:
        x0, x1 = x(max(marker.start, data.start)), x(min(marker.end, data.end) + dt.timedelta(days=1))
        if marker.kind == "round":
            shapes.append(Rect(x0, top, max(x1 - x0, 2), plot_h, "#fbc02d", 0.35))
            colour = "#8d6e00"
        else:
            shapes.append(Line(((x0, top), (x0, top + plot_h)), "#2e7d32", 1.2, dash=True))
            colour = "#2e7d32"
        text_w = 6.2 * len(marker.label)
        row = next((i for i, end in enumerate(rows) if end < x0 - 4), min(range(len(rows)), key=lambda i: rows[i]))
        rows[row] = x0 + text_w
        label_y = 58 + 12 * row
        anchor = "end" if x0 + text_w > width - 4 else "start"
        shapes.append(Text(x0 + (2 if anchor == "start" else -2), label_y, marker.label, 10.5, colour, anchor))
        shapes.append(Line(((x0, label_y + 3), (x0, top)), colour, 0.6))
    # axes
    value = 0.0
    while value <= y_top + 1e-9:
        shapes.append(Line(((left, y(value)), (left + plot_w, y(value))), "#e0e0e0" if value else "#9e9e9e", 1))
        shapes.append(Text(left - 6, y(value) + 4, _pct(value), 11, "#555", "end"))
        value += step
    for month in _months(data.start, data.end):
        shapes.append(Line(((x(month), top + plot_h), (x(month), top + plot_h + 4)), "#9e9e9e", 1))
        label = f"{month:%b}" if month.month != 1 and month != _months(data.start, data.end)[0] else f"{month:%b %Y}"
        shapes.append(Text(x(month) + 2, top + plot_h + 17, label, 10.5, "#555"))
    # the steps
    end_labels: list[tuple[float, str, str]] = []
    for index, series in enumerate(data.series):
        colour = PALETTE.get(series.key, EXTRA_COLOURS[index % len(EXTRA_COLOURS)])
        known: list[tuple[float, float]] = []
        projected: list[tuple[float, float]] = []
        for s in series.steps:
            if s.start < beyond:
                known += [(x(s.start), y(s.total)), (x(min(s.end + dt.timedelta(days=1), beyond)), y(s.total))]
            if s.end >= beyond:
                projected += [(x(max(s.start, beyond)), y(s.total)), (x(s.end + dt.timedelta(days=1)), y(s.total))]
        if known:
            shapes.append(Line(tuple(known), colour, 2.6))
        if projected:
            shapes.append(Line(tuple(projected), colour, 1.6, dash=True))
        for s in series.steps:
            x0, x1 = x(s.start), x(s.end + dt.timedelta(days=1))
            shapes.append(
                Hover(
                    x0, y(s.total) - 7, max(x1 - x0, 3), 14, _step_tooltip(series, s, data),
                    {
                        "direction": series.key,
                        "from": s.start.isoformat(),
                        "to": s.end.isoformat(),
                        "total": f"{s.total:g}",
                        "because": " ".join(s.because),
                        "measures": json.dumps(
                            [
                                {
                                    "measure_id": r.measure_id,
                                    "name": data.measure_names.get(r.measure_id, r.measure_id),
                                    "rate_pct": r.rate_pct,
                                    "legal_basis": r.legal_basis,
                                    "coverage": r.coverage,
                                }
                                for r in s.measures
                            ],
                            ensure_ascii=False,
                        ),
                    },
                )
            )
        if series.steps:
            end_labels.append((y(series.steps[-1].total), f"{series.imposed_by}→{series.applies_to} {_pct(series.steps[-1].total)}", colour))
    placed: list[float] = []
    for label_y, label, colour in sorted(end_labels):
        while any(abs(label_y - p) < 14 for p in placed):
            label_y += 14
        placed.append(label_y)
        shapes.append(Text(left + plot_w + 6, label_y + 4, label, 12, colour, bold=True))
    shapes.append(Line(((left, top), (left, top + plot_h)), "#9e9e9e", 1))
    description = "; ".join(
        f"{series.imposed_by} on {series.applies_to}: "
        + ", ".join(f"{_pct(s.total)} from {s.start.isoformat()}" for s in series.steps)
        for series in data.series
    )
    return Figure(
        width=width,
        height=height,
        shapes=tuple(shapes),
        title=f"Additional tariffs in force — {data.title}",
        description=description or "No tariffs recorded.",
        data={
            "start": data.start.isoformat(),
            "end": data.end.isoformat(),
            "x0": f"{left:g}",
            "x1": f"{left + plot_w:g}",
            "top": f"{top:g}",
            "bottom": f"{top + plot_h:g}",
        },
    )


# --- SVG -------------------------------------------------------------------------------------


def _a(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


_ANCHORS = {"start": "start", "middle": "middle", "end": "end"}


def to_svg(figure: Figure) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {figure.width} {figure.height}" '
        f'width="{figure.width}" height="{figure.height}" role="img" aria-labelledby="chart-title chart-desc" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif" class="tariff-chart" '
        + " ".join(f'data-{k}="{_a(v)}"' for k, v in figure.data.items())
        + ">",
        f'<title id="chart-title">{_a(figure.title)}</title>',
        f'<desc id="chart-desc">{_a(figure.description)}</desc>',
    ]
    hovers = []
    for shape in figure.shapes:
        if isinstance(shape, Rect):
            opacity = "" if shape.opacity >= 1 else f' fill-opacity="{shape.opacity:g}"'
            out.append(f'<rect x="{_n(shape.x)}" y="{_n(shape.y)}" width="{_n(shape.w)}" height="{_n(shape.h)}" fill="{shape.fill}"{opacity}/>')
        elif isinstance(shape, Line):
            points = " ".join(f"{_n(px)},{_n(py)}" for px, py in shape.points)
            dash = ' stroke-dasharray="4 3"' if shape.dash else ""
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{shape.stroke}" stroke-width="{shape.width:g}"'
                f'{dash} stroke-linejoin="round"/>'
            )
        elif isinstance(shape, Text):
            weight = ' font-weight="600"' if shape.bold else ""
            out.append(
                f'<text x="{_n(shape.x)}" y="{_n(shape.y)}" font-size="{shape.size:g}" fill="{shape.fill}" '
                f'text-anchor="{_ANCHORS[shape.anchor]}"{weight}>{_a(shape.text)}</text>'
            )
        else:
            hovers.append(shape)
    # hit areas last, so they lie above everything they describe
    out.append('<g class="steps">')
    for hover in hovers:
        attributes = " ".join(f'data-{k}="{_a(v)}"' for k, v in hover.data.items())
        out.append(
            f'<g class="step" {attributes}><title>{_a(hover.tooltip)}</title>'
            f'<rect x="{_n(hover.x)}" y="{_n(hover.y)}" width="{_n(hover.w)}" height="{_n(hover.h)}" '
            f'fill="#000000" fill-opacity="0"/></g>'
        )
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


# --- PNG -------------------------------------------------------------------------------------


def png_available() -> bool:
    try:
        import PIL.ImageDraw  # noqa: F401
    except ImportError:
        return False
    return True


def _rgba(colour: str, opacity: float = 1.0) -> tuple[int, int, int, int]:
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16), round(255 * opacity)


def _dashes(points: Iterable[tuple[float, float]], on: float, off: float) -> Iterable[tuple[tuple[float, float], tuple[float, float]]]:
    pairs = list(points)
    for (x0, y0), (x1, y1) in itertools.pairwise(pairs):
        length = math.hypot(x1 - x0, y1 - y0)
        walked = 0.0
        while walked < length:
            a, b = walked / length, min(walked + on, length) / length
            yield (x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)
            walked += on + off


def to_png(figure: Figure, scale: int = 2) -> bytes:
    """The figure drawn with Pillow (its bundled font); ImportError when Pillow is not installed."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGBA", (figure.width * scale, figure.height * scale), (255, 255, 255, 255))
    draw = ImageDraw.Draw(image, "RGBA")
    fonts: dict[float, Any] = {}

    def font(size: float) -> Any:
        if size not in fonts:
            fonts[size] = ImageFont.load_default(size=size * scale)
        return fonts[size]

    plain = str.maketrans({"—": "-", "–": "-", "→": "->", "…": "...", "•": "-"})  # glyphs the bundled font lacks
    for shape in figure.shapes:
        if isinstance(shape, Rect):
            box = [shape.x * scale, shape.y * scale, (shape.x + shape.w) * scale, (shape.y + shape.h) * scale]
            draw.rectangle(box, fill=_rgba(shape.fill, shape.opacity))
        elif isinstance(shape, Line):
            points = [(px * scale, py * scale) for px, py in shape.points]
            width = max(1, round(shape.width * scale))
            if shape.dash:
                for a, b in _dashes(points, 4 * scale, 3 * scale):
                    draw.line([a, b], fill=_rgba(shape.stroke), width=width)
            else:
                draw.line(points, fill=_rgba(shape.stroke), width=width, joint="curve")
        elif isinstance(shape, Text):
            anchor = {"start": "ls", "middle": "ms", "end": "rs"}[shape.anchor]
            position = (shape.x * scale, shape.y * scale)
            text = shape.text.translate(plain)
            draw.text(position, text, font=font(shape.size), fill=_rgba(shape.fill), anchor=anchor)
            if shape.bold:
                draw.text((position[0] + 0.6 * scale, position[1]), text, font=font(shape.size), fill=_rgba(shape.fill), anchor=anchor)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()

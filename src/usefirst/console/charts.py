"""Server-side SVG charts: geometry computed here, drawn by the templates (so all text is
escaped by Jinja and no script runs in the page)."""

from __future__ import annotations

from dataclasses import dataclass

# Delinquency buckets, from healthy to worst; colours are chosen to stay distinct in greyscale.
BUCKET_COLOURS = {
    "current": "#2e7d32",
    "1-30": "#f9a825",
    "31-60": "#ef6c00",
    "61-90": "#d84315",
    "91-180": "#b71c1c",
    "180+": "#4a148c",
}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str
    value_text: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    axis_labels: list[tuple[float, str]]  # (x centre, text) under each group
    title: str


def bar_chart(
    values: list[tuple[str, int, str]],
    *,
    title: str,
    format_value: str = "{:,}",
    width: int = 480,
    height: int = 220,
) -> BarChart:
    """One bar per (label, value, colour), scaled to the largest value."""
    top, bottom, side = 20.0, 30.0, 10.0
    usable_height = height - top - bottom
    largest = max((value for _, value, _ in values), default=0)
    if largest == 0:
        return BarChart(width=width, height=height, bars=[], axis_labels=[], title=title)
    slot = (width - 2 * side) / max(len(values), 1)
    bars = []
    labels = []
    for index, (label, value, colour) in enumerate(values):
        bar_height = usable_height * value / largest
        x = side + index * slot + slot * 0.15
        bars.append(
            Bar(
                x=round(x, 1),
                y=round(top + usable_height - bar_height, 1),
                width=round(slot * 0.7, 1),
                height=round(bar_height, 1),
                colour=colour,
                label=label,
                value_text=format_value.format(value),
            )
        )
        labels.append((round(x + slot * 0.35, 1), label))
    return BarChart(width=width, height=height, bars=bars, axis_labels=labels, title=title)


def stacked_history(
    history: list[tuple[str, dict[str, int]]],
    *,
    title: str,
    width: int = 480,
    height: int = 220,
) -> BarChart:
    """One stacked column per period (e.g. month end), one segment per delinquency bucket."""
    top, bottom, side = 20.0, 30.0, 10.0
    usable_height = height - top - bottom
    largest = max((sum(counts.values()) for _, counts in history), default=0) or 1
    slot = (width - 2 * side) / max(len(history), 1)
    bars = []
    labels = []
    for index, (period, counts) in enumerate(history):
        x = side + index * slot + slot * 0.2
        base = top + usable_height
        for bucket, colour in BUCKET_COLOURS.items():
            count = counts.get(bucket, 0)
            if count == 0:
                continue
            segment = usable_height * count / largest
            base -= segment
            bars.append(
                Bar(
                    x=round(x, 1),
                    y=round(base, 1),
                    width=round(slot * 0.6, 1),
                    height=round(segment, 1),
                    colour=colour,
                    label=f"{period} {bucket}",
                    value_text=str(count),
                )
            )
        labels.append((round(x + slot * 0.3, 1), period))
    return BarChart(width=width, height=height, bars=bars, axis_labels=labels, title=title)

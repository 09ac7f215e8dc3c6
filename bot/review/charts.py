"""Bar-chart geometry for the dashboard, drawn as inline SVG by the template (the pages run no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.review.dashboard import Dashboard

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 560, 190, 34, 22, 10


@dataclass
class Bar:
    label: str
    x: float
    y: float
    width: float
    height: float
    value: int
    css: str


@dataclass
class Chart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    max_value: int
    ticks: list[tuple[float, str]]
    legend: list[tuple[str, str]]
    xlabels: list[tuple[float, str]]
    left: int


def nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (a round top for the y axis)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def dashboard_charts(d: Dashboard) -> dict[str, Chart]:
    """The three per-day charts of the dashboard page."""
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(d.days))

    def chart(title: str, series: list[tuple[str, dict, str]]) -> Chart:
        stacked_max = nice_max(max([sum(values.get(day, 0) for _, values, _ in series) for day in d.days] + [1]))
        bars = []
        for index, day in enumerate(d.days):
            base = 0
            for name, values, css in series:
                value = int(values.get(day, 0))
                if not value:
                    continue
                bar_h = plot_h * value / stacked_max
                y = TOP + plot_h - plot_h * (base + value) / stacked_max
                bars.append(Bar(f"{day.isoformat()}: {value} {name}", LEFT + index * slot + slot * 0.15, y,
                                max(slot * 0.7, 1), max(bar_h, 1), value, css))
                base += value
        fractions = (0, 0.5, 1) if stacked_max % 2 == 0 else (0, 1)
        ticks = [(TOP + plot_h - plot_h * f, f"{round(stacked_max * f):,}") for f in fractions]
        legend = [(name, css) for name, _, css in series] if len(series) > 1 else []
        step = max(1, round(len(d.days) / 6))
        xlabels = [(LEFT + index * slot + slot / 2, day.strftime("%b %d")) for index, day in enumerate(d.days)
                   if index % step == 0]
        return Chart(title, WIDTH, HEIGHT, bars, stacked_max, ticks, legend, xlabels, LEFT)

    escalation = {level: {day: levels.get(level, 0) for day, levels in d.escalations.items()}
                  for level in ("emergency", "urgent")}
    return {
        "conversations": chart("Conversations per day", [("conversations", d.conversations, "bar-primary")]),
        "messages": chart("Patient messages per day", [
            ("answered", {day: d.patient_messages.get(day, 0) - d.unanswered.get(day, 0) for day in d.days},
             "bar-primary"),
            ("unanswered", d.unanswered, "bar-muted"),
        ]),
        "escalations": chart("Escalations per day", [
            ("emergency", escalation["emergency"], "bar-emergency"),
            ("urgent", escalation["urgent"], "bar-urgent"),
        ]),
    }


def rate_chart(title: str, points: list[tuple[str, int, int]]) -> Chart:
    """Bars of a percentage per period: `points` are (period label, part, whole); an empty period draws nothing."""
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(points))
    rates = [part / whole if whole else None for _, part, whole in points]
    top = nice_max(max([round(rate * 100) for rate in rates if rate is not None] + [1]))
    bars = []
    for index, ((label, part, whole), rate) in enumerate(zip(points, rates, strict=True)):
        if rate is None:
            continue
        bar_h = max(plot_h * rate * 100 / top, 1)
        bars.append(Bar(f"{label}: {rate * 100:.1f}% unanswered ({part} of {whole})", LEFT + index * slot + slot * 0.15,
                        TOP + plot_h - bar_h, max(slot * 0.7, 1), bar_h, round(rate * 100), "bar-muted"))
    ticks = [(TOP + plot_h - plot_h * f, f"{round(top * f)}%") for f in (0, 0.5, 1)]
    step = max(1, round(len(points) / 6))
    xlabels = [(LEFT + index * slot + slot / 2, label) for index, (label, _, _) in enumerate(points) if index % step == 0]
    return Chart(title, WIDTH, HEIGHT, bars, top, ticks, [], xlabels, LEFT)

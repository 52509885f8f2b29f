"""The observations report: one self-contained HTML page (inline CSS and SVG, no script, no
network), like Nextflow's execution report, plus envplane's decisions.

Per pipeline and process: requested vs peak vs recommended memory over the tasks (an SVG chart),
the waste and failures at the engine's requests against those under the recommendation that
was in force when each task ran, the decisions by kind (the retries and failures with their
reasons), and the Nextflow config that exports the sizes.
"""

from __future__ import annotations

import html
import math
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from envplane.observations.service.decisions import is_memory_failure
from envplane.observations.service.exports import Profile
from envplane.observations.service.queries import GBH, Stored
from envplane.observations.service.replay import Policy

WIDTH, HEIGHT, PAD = 720, 220, 48
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1b1f24;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:2px solid #d0d7de}
h3{margin:1.6rem 0 .4rem;font-family:ui-monospace,monospace;font-size:1rem}
table{border-collapse:collapse;margin:.4rem 0 1rem}
td,th{padding:.25rem .5rem;border-bottom:1px solid #e5e7eb;text-align:right}
th:first-child,td:first-child{text-align:left} .muted{color:#57606a} .good{color:#1a7f37} .bad{color:#cf222e}
pre{background:#f6f8fa;padding:1rem;overflow:auto;font-size:12px;border-radius:6px}
.legend span{margin-right:1rem}
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}
svg{background:#fff;border:1px solid #d0d7de;border-radius:6px}
td{white-space:nowrap} td:first-child{white-space:normal;max-width:24rem;overflow-wrap:break-word}
.cards{display:flex;gap:1rem;margin:.8rem 0} .card{border:1px solid #d0d7de;border-radius:6px;padding:.6rem 1rem}
.card b{display:block;font-size:1.3rem}
"""


@dataclass
class Sums:
    """Waste (GB·h) and failures at the engine's requests, and under envplane's sizes."""

    tasks: int = 0
    engine_waste: float = 0.0
    engine_failures: int = 0
    envplane_waste: float = 0.0
    envplane_failures: int = 0


def _size(n: float) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _sums(rows: Sequence[Stored]) -> tuple[Sums, list[tuple[int, int, int, bool]]]:
    """The sums, and the points of the chart: (requested, peak, recommended then, failed)."""
    sums, points, in_force = Sums(), [], 0
    for row in rows:
        o, d = row.observation, row.decision
        if o.status == "FAILED" and is_memory_failure(d):
            sums.engine_failures += 1
            sums.engine_waste += o.requested_memory * o.realtime_ms / GBH
            points.append((o.requested_memory, o.peak_rss, in_force, True))
        if o.status == "COMPLETED" and o.peak_rss > 0:
            sums.tasks += 1
            request = o.requested_memory or o.peak_rss
            sums.engine_waste += max(request - o.peak_rss, 0) * o.realtime_ms / GBH
            sized = in_force or request  # before any evidence the request stands
            if sized >= o.peak_rss:
                sums.envplane_waste += (sized - o.peak_rss) * o.realtime_ms / GBH
            else:  # it would have failed: the attempt wasted, then the request as the engine had it
                sums.envplane_failures += 1
                sums.envplane_waste += (sized + max(request - o.peak_rss, 0)) * o.realtime_ms / GBH
            points.append((o.requested_memory, o.peak_rss, in_force, False))
        if d.kind == "RIGHT_SIZE":
            in_force = d.memory_bytes
    return sums, points


def _chart(points: Sequence[tuple[int, int, int, bool]]) -> str:
    values = [v for p in points for v in p[:3] if v > 0]
    if not values:
        return '<p class="muted">no measured tasks yet</p>'
    low, high = math.log(min(values) * 0.8), math.log(max(values) * 1.25)
    span = max(high - low, 1e-9)
    n = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return PAD + (WIDTH - PAD - 10) * i / n

    def y(v: float) -> float:
        return HEIGHT - 24 - (HEIGHT - 34) * (math.log(v) - low) / span

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img">']
    for k in range(5):
        v = math.exp(low + span * k / 4)
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - 10}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eef1f4"/>')
        parts.append(
            f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" fill="#57606a">{_size(v)}</text>'
        )
    for index, color in ((0, "#8c959f"), (2, "#bf8700")):
        line = " ".join(f"{x(i):.1f},{y(p[index]):.1f}" for i, p in enumerate(points) if p[index] > 0)
        if line:
            parts.append(
                f'<polyline class="series-{index}" points="{line}" fill="none" stroke="{color}" stroke-width="1.5"/>'
            )
    for i, (_, peak, _, failed) in enumerate(points):
        if peak > 0:
            color = "#cf222e" if failed else "#0969da"
            parts.append(f'<circle class="peak" cx="{x(i):.1f}" cy="{y(peak):.1f}" r="2.4" fill="{color}"/>')
    parts.append(
        f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle" fill="#57606a">'
        "tasks, in the order observed</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


LEGEND = (
    '<p class="legend"><span><i class="sw" style="background:#8c959f"></i>requested</span>'
    '<span><i class="sw" style="background:#0969da"></i>peak RSS</span>'
    '<span><i class="sw" style="background:#cf222e"></i>peak of a memory failure</span>'
    '<span><i class="sw" style="background:#bf8700"></i>envplane\'s recommendation in force</span></p>'
)


def _change(engine: float, envplane: float) -> str:
    if engine <= 0:
        return "–"
    change = (envplane - engine) / engine
    return f'<span class="{"good" if change <= 0 else "bad"}">{change:+.0%}</span>'


def render(
    rows: Sequence[Stored], profiles: Sequence[Profile], configs: Mapping[str, str], policies: Mapping[str, Policy]
) -> str:
    by_process: dict[str, dict[str, list[Stored]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_process[row.observation.pipeline][row.observation.process].append(row)
    recommended = {(p.pipeline, r.process): r for p in profiles for r in p.recommendations}
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>envplane observations report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>envplane observations report</h1>",
        f'<p class="muted">{len(rows)} observation(s) of {len(by_process)} pipeline(s), {stamp}. '
        "Waste is (allocation − peak RSS) × run time in GB·h (GB = 2<sup>30</sup> bytes); a memory "
        'failure wastes its whole allocation. "envplane" sizes each task by the recommendation in '
        "force when it ran (before any evidence, its own request).</p>",
    ]
    for pipeline in sorted(by_process):
        processes = by_process[pipeline]
        heading = len(out) + 1
        out.append(
            f"<h2>{html.escape(pipeline)} <small class=muted>policy {html.escape(policies[pipeline].name)}</small></h2>"
        )
        out.append(
            "<table><tr><th>process</th><th>tasks</th><th>peak max</th><th>recommended</th>"
            "<th>waste at requests</th><th>waste by envplane</th><th>change</th>"
            "<th>memory failures</th><th>by envplane</th></tr>"
        )
        sections, total = [], Sums()
        for process in sorted(processes):
            stored = processes[process]
            sums, points = _sums(stored)
            rec = recommended.get((pipeline, process))
            peak = max((r.observation.peak_rss for r in stored), default=0)
            rec_text = _size(rec.memory_bytes) if rec else "–"
            for name in ("tasks", "engine_waste", "engine_failures", "envplane_waste", "envplane_failures"):
                setattr(total, name, getattr(total, name) + getattr(sums, name))
            short = process.rsplit(":", 1)[-1]
            out.append(
                f'<tr><td title="{html.escape(process)}">{html.escape(short)}</td>'
                f"<td>{sums.tasks}</td><td>{_size(peak)}</td><td>{rec_text}</td>"
                f"<td>{sums.engine_waste:.3f}</td><td>{sums.envplane_waste:.3f}</td>"
                f"<td>{_change(sums.engine_waste, sums.envplane_waste)}</td>"
                f"<td>{sums.engine_failures}</td><td>{sums.envplane_failures}</td></tr>"
            )
            kinds = Counter(r.decision.kind for r in stored)
            notable = [r for r in stored if r.decision.kind in ("RETRY", "RETRY_WITH_RESOURCES", "FAIL")][-10:]
            section = [f"<h3>{html.escape(process)}</h3>", _chart(points)]
            section.append(
                '<p class="muted">decisions: '
                + ", ".join(f"{html.escape(k)} {v}" for k, v in sorted(kinds.items()))
                + (f"; retries: {_size(rec.retry_memory_bytes[0])} first" if rec and rec.retry_memory_bytes else "")
                + "</p>"
            )
            if notable:
                section.append(
                    "<table><tr><th>task</th><th>status</th><th>exit</th><th>action</th><th>memory</th><th>reason</th></tr>"
                )
                for r in notable:
                    o, d = r.observation, r.decision
                    section.append(
                        f"<tr><td>{html.escape(str(o.task_id))}</td><td>{o.status}</td><td>{o.exit_code}</td>"
                        f"<td>{d.kind}</td><td>{_size(d.memory_bytes) if d.memory_bytes else '–'}</td>"
                        f'<td style="text-align:left">{html.escape(d.reason)}</td></tr>'
                    )
                section.append("</table>")
            sections.append("".join(section))
        out.append(
            f"<tr><th>all</th><th>{total.tasks}</th><th></th><th></th><th>{total.engine_waste:.3f}</th>"
            f"<th>{total.envplane_waste:.3f}</th><th>{_change(total.engine_waste, total.envplane_waste)}</th>"
            f"<th>{total.engine_failures}</th><th>{total.envplane_failures}</th></tr></table>"
        )
        cards = (
            '<div class="cards">'
            f'<div class="card">memory wasted at the requests<b>{total.engine_waste:.1f} GB·h</b></div>'
            f'<div class="card">by envplane\'s sizes<b>{total.envplane_waste:.1f} GB·h '
            f"{_change(total.engine_waste, total.envplane_waste)}</b></div>"
            f'<div class="card">memory failures<b>{total.engine_failures} → {total.envplane_failures}</b></div>'
            f'<div class="card">processes<b>{len(processes)}</b></div></div>'
        )
        out.insert(heading, cards)
        out.append(LEGEND)
        out.extend(sections)
        out.append("<h3>Nextflow config</h3>")
        out.append(f"<pre>{html.escape(configs.get(pipeline, ''))}</pre>")
    out.append("</body></html>")
    return "\n".join(out)

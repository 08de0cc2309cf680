"""The usage view: tokens per day stacked by agent (an SVG), and cost per agent (a table).

Drawn by hand as SVG so the UI needs no plotting library; it reads the rows of `GET /api/usage`.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 300, 60, 40, 20


def tokens_by_day(
    rows: list[dict[str, Any]],
) -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
    """Days (sorted), agents (sorted) and total tokens per day and agent."""
    grid: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        grid[str(row["day"])][str(row["agent"])] += int(row.get("total_tokens") or 0)
    days = sorted(grid)
    agents = sorted({a for per_day in grid.values() for a in per_day})
    return days, agents, {d: dict(grid[d]) for d in days}


def svg(rows: list[dict[str, Any]]) -> str:
    """A stacked bar chart of tokens per day by agent, with a legend."""
    days, agents, grid = tokens_by_day(rows)
    peak = max((sum(grid[d].values()) for d in days), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT + 20 * len(agents)}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="14">Tokens per day, by agent (peak {peak})</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="#555"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    colour = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(agents)}
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        y = float(TOP + plot_h)
        for agent in agents:
            value = grid[day].get(agent, 0)
            h = plot_h * value / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour[agent]}"><title>{escape(day)} {escape(agent)}: {value}</title>'
                "</rect>"
            )
        if len(days) <= 14 or i % max(len(days) // 10, 1) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">'
                f"{escape(day[5:])}</text>"
            )
    for i, agent in enumerate(agents):
        y = HEIGHT + 20 * i
        parts.append(
            f'<rect x="{LEFT}" y="{y - 10}" width="10" height="10" fill="{colour[agent]}"/>'
        )
        parts.append(f'<text x="{LEFT + 16}" y="{y}">{escape(agent)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def cost_table(usage: dict[str, Any]) -> str:
    """Markdown: runs, tokens and cost per agent over the period, and the totals."""
    per_agent: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in usage.get("rows", []):
        for key in ("runs", "total_tokens", "cost_usd"):
            per_agent[str(row["agent"])][key] += float(row.get(key) or 0)
    currency = usage.get("currency", "USD")
    lines = [
        f"**Usage {usage.get('from')} → {usage.get('to')}** (tenant `{usage.get('tenant_id')}`)",
        "",
        f"| agent | runs | tokens | cost ({currency}) |",
        "|---|---:|---:|---:|",
    ]
    for agent in sorted(per_agent):
        v = per_agent[agent]
        lines.append(
            f"| {agent} | {int(v['runs'])} | {int(v['total_tokens'])} | {v['cost_usd']:.4f} |"
        )
    totals = usage.get("totals") or {}
    lines.append(
        f"| **total** | {int(totals.get('runs') or 0)} | {int(totals.get('total_tokens') or 0)} "
        f"| {float(totals.get('cost_usd') or 0):.4f} |"
    )
    return "\n".join(lines)

"""A small time-series chart as an SVG image, to show in the Dagster UI as a Markdown image.

A few hundred bytes of SVG embedded as a data URI: nothing to host, no plotting library to
install for one line chart per AOI.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

WIDTH, HEIGHT, PAD = 480, 140, 28
MAX_POINTS = 2000


def line_chart_svg(times: Sequence[datetime], values: Sequence[float | None], title: str) -> str:
    """A line of ``values`` over ``times`` (gaps where a value is missing), with its range."""
    points = [(t.timestamp(), v) for t, v in zip(times, values) if t is not None and v is not None]
    step = max(1, len(points) // MAX_POINTS)
    points = points[::step]
    body = f'<text x="{PAD}" y="16" font-size="12">{escape(title)}</text>'
    if points:
        t0, t1 = points[0][0], points[-1][0]
        v0, v1 = min(v for _, v in points), max(v for _, v in points)
        sx = (WIDTH - 2 * PAD) / ((t1 - t0) or 1)
        sy = (HEIGHT - 2 * PAD) / ((v1 - v0) or 1)
        path = " ".join(f"{PAD + (t - t0) * sx:.1f},{HEIGHT - PAD - (v - v0) * sy:.1f}" for t, v in points)
        first, last = datetime.fromtimestamp(t0).date(), datetime.fromtimestamp(t1).date()
        body += (
            f'<polyline fill="none" stroke="#4f43dd" stroke-width="1.5" points="{path}"/>'
            f'<text x="2" y="{PAD + 4}" font-size="10">{v1:.4g}</text>'
            f'<text x="2" y="{HEIGHT - PAD}" font-size="10">{v0:.4g}</text>'
            f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{first}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">{last}</text>'
        )
    else:
        body += f'<text x="{PAD}" y="{HEIGHT / 2}" font-size="11">no valid values yet</text>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif">{body}</svg>'
    )


def markdown_image(svg: str, alt: str) -> str:
    encoded = base64.b64encode(svg.encode()).decode()
    return f"![{escape(alt)}](data:image/svg+xml;base64,{encoded})"

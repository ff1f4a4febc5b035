"""Plots: matplotlib figures drawn off screen, embedded in the page as PNG ``data:`` URIs.

matplotlib is imported by :func:`plot`, when a report draws its first plot, never by
importing this module.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.report.html import escape

BLUE, AMBER, RED, GREEN, GRAY = "#2563eb", "#d97706", "#dc2626", "#16a34a", "#6b7280"


_RC = {"font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold", "axes.labelsize": 9,
       "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.35,
       "grid.linewidth": 0.6, "axes.edgecolor": "#9ca3af", "axes.labelcolor": "#374151",
       "xtick.color": "#4b5563", "ytick.color": "#4b5563", "legend.frameon": False, "legend.fontsize": 8}


@dataclass(frozen=True)
class Image:
    """A PNG and its size in pixels, drawn at ``dpi``."""

    png: bytes
    width: int
    height: int
    dpi: int


#: Pixels per inch of the PNGs; a figure inch is shown as 100 CSS pixels, so the
#: images stay sharp on high-density screens.
_DPI = 160


def plot(draw: Callable[[Any], None], size: tuple[float, float] = (5.2, 3.4),
         margins: tuple[float, float, float, float] = (0.7, 0.55, 0.15, 0.35)) -> Image:
    """Draw on a new figure and return it as PNG bytes.

    Figures come from :class:`matplotlib.figure.Figure`, not pyplot (matplotlib's advice
    for servers): pyplot keeps every figure it opens until ``plt.close``, this one is
    freed with its last reference, so a long sweep that writes many reports holds no
    figures, and the backend pyplot would pick never matters. Saving a bare Figure to
    PNG renders with Agg. The style is applied with ``rc_context``, which is global to
    the process: one report is drawn at a time per process (Hydra's parallel launchers
    run jobs in processes).

    Args:
        margins: left, bottom, right, top in inches. Fixed margins instead of the
            constrained layout engine, which measures every label twice and doubled the
            time a report took.
    """
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=size, dpi=_DPI)
        left, bottom, right, top = margins
        figure.subplots_adjust(left=left / size[0], bottom=bottom / size[1], right=1 - right / size[0],
                               top=1 - top / size[1])
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    figure.clear()
    png = buffer.getvalue()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return Image(png, width, height, _DPI)


def embed(image: Image, caption: str) -> str:
    """The image as an HTML ``<figure>``: a ``data:`` URI, shown at 100 CSS pixels a figure inch."""
    data = base64.b64encode(image.png).decode("ascii")
    width, height = round(image.width * 100 / image.dpi), round(image.height * 100 / image.dpi)
    return (f'<figure><img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>')

"""The page's building blocks: escaping, how values read, tables and cards, the page itself.

Every string that comes from a config or the data goes through :func:`escape`; HTML
built here is a :class:`Markup` and is placed as is.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine import __version__
from engine.errors import UsageError
from engine.files import write_text

REPORT_FILE = "report.html"
#: Metrics shown as dollars.
_MONEY = ("net_value_per_month", "revenue_saved_per_month", "false_positive_cost_per_month")
_STATUS_CLASS = {"succeeded": "ok", "running": "warn", "interrupted": "warn"}


class Markup(str):
    """HTML the report built itself: placed as is, never escaped again."""


def escape(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any) -> str:
    """A value as the page shows it: thousands separated, ``–`` for nothing, yes/no."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) if value else "(none)"
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    return str(value)


def fmt_money(value: float, short: bool = False) -> str:
    """Dollars, a minus sign for a loss; ``short``: $1.2M, $35k (axis labels)."""
    sign = "−" if value < 0 else ""
    value = abs(value)
    if short and value >= 1_000_000:
        return f"{sign}${value / 1e6:.1f}M"
    if short and value >= 1_000:
        return f"{sign}${value / 1e3:.0f}k"
    return f"{sign}${value:,.0f}"


def fmt_metric(name: str, value: Any) -> str:
    """A metric as its stakeholder reads it: money in $, shares in %, counts whole."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return fmt(value)
    if not math.isfinite(value):
        return str(value)
    if name in _MONEY:
        return fmt_money(float(value))
    if name.startswith("share_") or name.endswith("_share"):
        return f"{value:.1%}"
    if name.endswith("_per_month"):
        return f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}"


def badge(status: str, kind: str | None = None) -> str:
    """A status as a coloured pill; ``kind`` (ok, warn, bad, neutral) overrides the colour the status gets."""
    if kind is None:
        kind = _STATUS_CLASS.get(status) or ("ok" if status in ("passed", "succeeded") else
                                             "warn" if status in ("warned", "warn", "skipped") else
                                             "bad" if status.startswith("failed") or status == "error" else "neutral")
    return f'<span class="badge {kind}">{escape(status.replace("_", " "))}</span>'


def codes(names: Iterable[Any]) -> str:
    """Names as a comma-separated list of ``<code>``."""
    return ", ".join(f"<code>{escape(n)}</code>" for n in names)


def score_bar(value: Any, label: bool = True) -> str:
    """A share in [0, 1] as a bar, coloured by how good it is when ``label``, with the percentage."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    share = min(max(float(value), 0.0), 1.0)
    color = "" if not label else (" good" if share >= 0.999 else (" mid" if share >= 0.5 else " low"))
    text = f' <span class="num">{share:.0%}</span>' if label else ""
    return f'<span class="bar{color}"><span style="width:{share * 100:.1f}%"></span></span>{text}'


def _cell(value: Any) -> str:
    return value if isinstance(value, Markup) else escape(fmt(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int] | None = None,
          marked_rows: set[int] | None = None, highlight_last_row: bool = False) -> str:
    """A table; the cells are escaped unless they are :class:`Markup`."""
    numeric = numeric or set()
    marked = set(marked_rows or set())
    if highlight_last_row and rows:
        marked.add(len(rows) - 1)
    # long snake_case headers may break after an underscore instead of widening the table
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{escape(h).replace("_", "_<wbr>")}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        f'<tr{" class=marked" if r in marked else ""}>'
        + "".join(f'<td{" class=num" if i in numeric else ""}>{_cell(v)}</td>' for i, v in enumerate(row)) + "</tr>"
        for r, row in enumerate(rows))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def kv_table(pairs: Sequence[tuple[str, Any]]) -> str:
    """A table of (name, value) rows."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def headline_cards(cards: Sequence[tuple[str, str]]) -> str:
    """Headline figures; a long text value gets a wider card."""
    return '<div class="cards">' + "".join(
        f'<div class="card{" wide" if len(value) > 14 else ""}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div></div>' for label, value in cards) + "</div>"


def short_target(target: str) -> str:
    """The class name of a ``_target_``."""
    return str(target).rsplit(".", 1)[-1]


def short_hash(value: Any) -> str:
    """A hash cut to 12 characters, its ``algo:`` prefix kept."""
    text = str(value or "")
    algo, sep, digest = text.partition(":")
    return f"{algo}:{digest[:12]}…" if sep and len(digest) > 12 else (text[:12] + "…" if len(text) > 12 else text)


def fmt_when(value: Any) -> str:
    """An ISO timestamp to the second, in UTC when it has a time zone."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(value: Any) -> str:
    """Seconds as ms, s, or min and s."""
    if not isinstance(value, int | float):
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


_CSS = """
:root{--ink:#111827;--soft:#374151;--muted:#6b7280;--line:#e5e7eb;--bg:#f4f6f9;--card:#fff;--blue:#2563eb;
--green:#15803d;--red:#b91c1c;--amber:#b45309}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 28px 56px}
h1{font-size:26px;line-height:1.2;margin:0}
h2{font-size:18px;margin:0 0 14px;padding-bottom:8px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:20px 0 8px}
h4{font-size:14px;margin:16px 0 6px}
section>h3:first-child,section>h2+h3{margin-top:4px}
a{color:var(--blue)}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px}
code{background:#f3f4f6;border-radius:4px;padding:1px 4px;word-break:break-word}
code.nw{white-space:nowrap;word-break:normal}
pre{background:#f3f4f6;border-radius:6px;padding:12px;overflow:auto;max-height:480px;white-space:pre}
.muted{color:var(--muted)} .small{font-size:12px}
header.top{margin-bottom:14px}
header.top .title{display:flex;align-items:center;gap:14px;flex-wrap:wrap}
header.top p{margin:6px 0 0}
header.sub h2{border:0;margin:0;padding:0;font-size:22px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:11px;font-weight:700;
letter-spacing:.04em;text-transform:uppercase;white-space:nowrap;vertical-align:middle}
.badge.ok{background:#dcfce7;color:#166534}.badge.bad{background:#fee2e2;color:#991b1b}
.badge.warn{background:#fef3c7;color:#92400e}.badge.neutral{background:#e5e7eb;color:#374151}
header .badge{font-size:13px;padding:4px 14px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:12px;margin:16px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:20px;font-weight:650;margin-top:2px;overflow-wrap:anywhere}
.card.wide{grid-column:span 2}
.alert{background:#fef2f2;border:1px solid #fecaca;border-left:6px solid var(--red);border-radius:8px;
padding:12px 16px;margin:14px 0;color:#7f1d1d}
.alert p{margin:6px 0 0}.alert pre{background:#fff;color:var(--ink)}
.note{background:#fffbeb;border:1px solid #fde68a;border-radius:8px;padding:10px 16px;margin:14px 0;color:#78350f}
.note ul{margin:6px 0 0;padding-left:20px}
nav.toc{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 16px;margin:14px 0}
nav.toc ol{margin:0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:6px 20px;counter-reset:toc}
nav.toc li{counter-increment:toc}nav.toc li::before{content:counter(toc) ". ";color:var(--muted)}
nav.toc a{text-decoration:none}nav.toc a:hover{text-decoration:underline}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 22px;margin:16px 0;
box-shadow:0 1px 2px rgba(17,24,39,.04)}
section.best{background:transparent;border:2px solid #c7d2fe;box-shadow:none}
section section{box-shadow:none}
blockquote.hypothesis{margin:0 0 16px;padding:12px 16px;background:#eff6ff;border-left:4px solid var(--blue);
border-radius:6px;font-size:15px;color:#1e3a8a}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:11px;font-weight:700;color:var(--muted);text-transform:uppercase;letter-spacing:.04em;
background:#f9fafb;vertical-align:bottom}
th.num{text-align:right}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:hover{background:#f9fafb}
tr.marked td{background:#eef2ff;font-weight:600}
table.kv th{width:34%;color:var(--muted);font-weight:500;background:none;text-transform:none;letter-spacing:0;
font-size:13px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:18px 28px;align-items:start}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:18px;align-items:start}
.stakeholder h3,.stakeholder h4{margin-top:0}
figure{margin:8px 0 0}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:var(--muted);font-size:12px;margin-top:4px;text-align:center}
.estimates{background:#f0fdf4;border:1px solid #bbf7d0;border-radius:8px;padding:8px 14px;margin:10px 0}
.estimates p{margin:4px 0;font-variant-numeric:tabular-nums}
.bar{display:inline-block;width:120px;height:8px;border-radius:4px;background:#e5e7eb;vertical-align:middle;
overflow:hidden}
.bar>span{display:block;height:100%;background:#93c5fd}
.bar.good>span{background:#22c55e}.bar.mid>span{background:#f59e0b}.bar.low>span{background:#ef4444}
details{margin:12px 0}summary{cursor:pointer;color:var(--blue)}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:28px}
@media print{body{background:#fff}section{break-inside:avoid;box-shadow:none}nav.toc{display:none}}
"""


def page(title: str, body: str) -> str:
    """The whole HTML document: ``body`` in the page shell, with the stylesheet and a footer."""
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # Nothing but this file: no scripts, no fetches; the page's own styles and data: images only.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        "<link rel=\"icon\" href=\"data:,\">"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>{body}<footer>Written by mlops-engine {escape(__version__)} (<code>mlops report</code>) "
        f"on {escape(made)}.</footer></main></body></html>\n"
    )


def write_page(target: Path, text: str) -> Path:
    """Write a page to ``target`` (atomically).

    Raises:
        UsageError: the file cannot be written.
    """
    try:
        write_text(target, text)
    except OSError as exc:
        raise UsageError(f"usage error: cannot write {target}: {exc}") from exc
    return target

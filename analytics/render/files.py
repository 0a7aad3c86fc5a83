"""Writing a report to files: the report in one format, and its charts as PNG files."""

from __future__ import annotations

from pathlib import Path

from analytics.render.html import LIST_FILES, channels_csv, members_csv, render_html
from analytics.render.json import render_json
from analytics.render.shared import FORMATS, ReportFormat
from analytics.render.text import render_text
from analytics.results import Report


def write_report(report: Report, out_dir: Path, fmt: ReportFormat, *, charts: bool = True) -> list[Path]:
    """Write the report in one format, and its charts as PNG files, into ``out_dir`` (created if missing).

    Files: ``report.txt``, ``report.json`` or ``report.html``, plus ``activity.png``, ``cohort_heatmap.png``,
    ``retention_curves.png`` and (with commerce) ``revenue.png``. The HTML page embeds the charts itself, so it
    stands alone; the PNG files are written beside it for other uses (chat attachments, slides). The HTML page
    shows at most 50 members per list and 50 channels; ``inactive.csv``, ``at_risk.csv`` and ``channels.csv``
    beside it hold every row, and the page links them.

    Args:
        report: The report.
        out_dir: The directory to write into.
        fmt: ``"text"``, ``"json"`` or ``"html"``.
        charts: Whether to draw and write the PNG charts (the HTML page always embeds them).

    Returns:
        The paths written: the report first, then the charts, then (for HTML) the CSV files.

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    from analytics.charts import render_charts

    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = render_charts(report) if charts or fmt == "html" else {}
    if fmt == "text":
        path, body = out_dir / "report.txt", render_text(report)
    elif fmt == "json":
        path, body = out_dir / "report.json", render_json(report)
    else:
        path, body = out_dir / "report.html", render_html(report, pngs, csv_links=True)
    path.write_text(body, encoding="utf-8", newline="\n")
    written = [path]
    if charts:
        for name, png in pngs.items():
            png_path = out_dir / name
            png_path.write_bytes(png)
            written.append(png_path)
    if fmt == "html":
        lists = {
            LIST_FILES["inactive"]: members_csv(report.inactive),
            LIST_FILES["at_risk"]: members_csv(report.at_risk),
            LIST_FILES["channels"]: channels_csv(report),
        }
        for name, text in lists.items():
            csv_path = out_dir / name
            csv_path.write_text(text, encoding="utf-8", newline="")
            written.append(csv_path)
    return written

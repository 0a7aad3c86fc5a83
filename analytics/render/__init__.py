"""Render a :class:`~analytics.results.Report` as terminal text, JSON or one HTML page.

:mod:`.text`, :mod:`.json` and :mod:`.html` are the three renderers, :mod:`.shared` holds what they share and
:mod:`.files` writes them. Values are formatted by :mod:`analytics.formatting`, like every other output.

The JSON schema is documented in docs/metrics.md, section "Report JSON".

All three are for the community's owners and admins (:data:`analytics.privacy.OWNERS`), so every figure is exact,
small groups included: a spreadsheet reading the JSON gets numbers, never "<5". Outputs that members can see (the
digest posted to the community chat) apply the small-group rule of :mod:`analytics.privacy` themselves.

Names come from chat platforms and are untrusted: text output replaces control and format characters (terminal
escapes, bidirectional overrides) with "?", HTML output does that and escapes everything with :func:`html.escape`.

The names below are re-exported so callers import the renderers from ``analytics.render``.
"""

from analytics.render.files import write_report
from analytics.render.html import render_html
from analytics.render.json import render_json, report_to_json
from analytics.render.shared import FORMATS, SCHEMA_VERSION, ReportFormat, data_notices, week_comparison, weeks_in_range
from analytics.render.text import render_text
from analytics.safe_text import clean_name

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "ReportFormat",
    "clean_name",
    "data_notices",
    "render_html",
    "render_json",
    "render_text",
    "report_to_json",
    "week_comparison",
    "weeks_in_range",
    "write_report",
]

"""Colours of the cell widgets: classes the osqr stylesheet colours from JupyterLab's theme.

The stylesheet ships with the JupyterLab extension (labextension/style/base.css)
and draws every colour from `--jp-*` variables, so Light, Dark and high-contrast
themes all read well. Where no osqr extension is loaded (VS Code, a Lab without
it) the same colours are written inline, as the same variables with a Light
fallback; once the extension has said hello on the sidebar's comm, views drawn
after that carry classes only.
"""

from __future__ import annotations

from html import escape

# class -> the inline fallback where no osqr stylesheet is loaded
FALLBACK = {
    "osqr-muted": "color:var(--jp-content-font-color2,#616161)",
    "osqr-error": "color:var(--jp-error-color0,#b71c1c)",
    "osqr-ok": "color:var(--jp-success-color0,#1b5e20)",
    "osqr-warn": "color:var(--jp-content-font-color1,#212121);border-left:3px solid var(--jp-warn-color1,#f57c00);"
                 "padding-left:4px",
    "osqr-diff": "max-height:20em;overflow:auto;font-size:11px;padding:4px;"
                 "color:var(--jp-content-font-color1,#212121);background:var(--jp-cell-editor-background,#f5f5f5)",
    "osqr-status-waiting": "color:var(--jp-content-font-color2,#616161);fill:var(--jp-content-font-color2,#616161)",
    "osqr-status-paused": "color:var(--jp-content-font-color2,#616161);fill:var(--jp-content-font-color2,#616161)",
    "osqr-status-skipped": "color:var(--jp-content-font-color2,#616161);fill:var(--jp-content-font-color2,#616161)",
    "osqr-status-running": "color:var(--jp-brand-color0,#0d47a1);fill:var(--jp-brand-color0,#0d47a1)",
    "osqr-status-needs_input": "color:var(--jp-content-font-color1,#212121);fill:var(--jp-content-font-color1,#212121)",
    "osqr-status-complete": "color:var(--jp-success-color0,#1b5e20);fill:var(--jp-success-color0,#1b5e20)",
    "osqr-status-failed": "color:var(--jp-error-color0,#b71c1c);fill:var(--jp-error-color0,#b71c1c)",
    "osqr-status-cancelled": "color:var(--jp-error-color0,#b71c1c);fill:var(--jp-error-color0,#b71c1c)",
    "osqr-box": "fill:var(--jp-layout-color1,#fff)",
    "osqr-dag-title": "fill:var(--jp-content-font-color1,#212121)",
    "osqr-dag-sub": "fill:var(--jp-content-font-color2,#616161)",
    "osqr-edge": "stroke:var(--jp-layout-color4,#757575)",
    "osqr-arrow": "fill:var(--jp-layout-color4,#757575)",
    "osqr-legend": "color:var(--jp-content-font-color2,#616161);font-size:11px",
    "osqr-task-model": "color:var(--jp-content-font-color2,#616161)",
    "osqr-task-cost": "color:var(--jp-content-font-color2,#616161);text-align:right",
    "osqr-progress": "display:inline-block;height:8px;border:1px solid var(--jp-border-color1,#bdbdbd);"
                     "border-radius:4px;background:var(--jp-layout-color2,#eee);overflow:hidden",
    "osqr-task-row": "display:grid;grid-template-columns:1.4em minmax(6em,14em) minmax(4em,12em) 6em 3.2em 5em;"
                     "align-items:center;gap:6px",
    "osqr-task-title": "overflow:hidden;text-overflow:ellipsis;white-space:nowrap",
    "osqr-task-percent": "text-align:right",
}
BOX_STROKE = {"waiting": "var(--jp-border-color0,#bdbdbd)", "paused": "var(--jp-border-color0,#bdbdbd)",
              "skipped": "var(--jp-border-color0,#bdbdbd)", "running": "var(--jp-brand-color1,#1976d2)",
              "needs_input": "var(--jp-warn-color1,#f57c00)", "complete": "var(--jp-success-color1,#388e3c)",
              "failed": "var(--jp-error-color1,#d32f2f)", "cancelled": "var(--jp-error-color1,#d32f2f)"}
FILL = {"running": "var(--jp-brand-color1,#1976d2)", "complete": "var(--jp-success-color1,#388e3c)",
        "needs_input": "var(--jp-warn-color1,#f57c00)", "failed": "var(--jp-error-color1,#d32f2f)"}
CARD_BORDER = "1px solid var(--jp-warn-color1,#f57c00)"
ANSWERED_BORDER = "1px solid var(--jp-border-color1,#bdbdbd)"
PLAIN_BORDER = "1px solid var(--jp-border-color1,#bdbdbd)"


def styled() -> bool:
    """True once a front end with the osqr extension (and so its stylesheet) is on the sidebar's comm."""
    import osqr_nb
    channel = getattr(osqr_nb, "_sidebar", None)
    return bool(channel is not None and channel.extension)


def attrs(*classes: str, extra: str = "") -> str:
    """`class="..."` for these classes, plus their inline fallback where no stylesheet is loaded."""
    text = f'class="{escape(" ".join(classes))}"'
    if styled():
        return text
    style = ";".join(FALLBACK[c] for c in classes if c in FALLBACK) + (";" + extra if extra else "")
    return f'{text} style="{style.strip(";")}"' if style.strip(";") else text


def span(text: str, *classes: str) -> str:
    """Escaped text in a coloured span."""
    return f"<span {attrs(*classes)}>{escape(text)}</span>"

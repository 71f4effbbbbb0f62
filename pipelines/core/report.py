"""Self-contained HTML report pages (shared by every task family) and Markdown tables.

A page is one file that makes no network request: CSS is inline, figures are matplotlib PNGs
embedded as base64 `data:` URIs, and a Content-Security-Policy meta tag blocks any fetch, so an
accidental external reference fails visibly in the browser instead of phoning home. Nothing
depends on time or on the user's matplotlibrc: the same data gives byte-identical HTML.
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

DPI = 110
# Applied on top of matplotlib's defaults (not the user's rc) so the bytes depend only on data.
_RC = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib: no system font lookup
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "text.parse_math": False,  # labels are data ("$5 game"), not TeX
    "svg.hashsalt": "tunedag",
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d2430;margin:0;background:#f6f7f9}
header,main{max-width:1180px;margin:0 auto;padding:0 24px}
header{padding-top:20px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:0 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.sub{color:#5b6472;margin:0 0 8px}
.lead{font-size:16px;background:#eaf1fb;border-left:4px solid #3b6ea8;padding:8px 12px;margin:8px 0}
nav.toc ol{margin:6px 0 14px;padding-left:20px;columns:3;color:#5b6472}
section{background:#fff;border:1px solid #e2e5ea;border-radius:6px;padding:14px 18px;margin:0 0 16px}
a{color:#2c5d94;text-decoration:none}
a.anchor{color:#b9c0ca;margin-left:6px;font-weight:normal}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e8ec;padding:3px 10px;text-align:left;vertical-align:top}
th{background:#f1f3f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.text{max-width:640px}
img{max-width:100%;height:auto;display:block;margin:6px 0}
.na{color:#8a6d1d;background:#fdf6e3;padding:4px 8px;display:inline-block;border-radius:4px}
.muted{color:#5b6472}
details{margin:6px 0}
summary{cursor:pointer;font-weight:600}
pre{background:#f4f5f7;padding:10px;overflow:auto;font-size:12px;line-height:1.35}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class Raw(str):
    """Trusted HTML (built by these helpers): inserted into tables unescaped."""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """One format for every number on a page: floats to `digits` decimals, ints with separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 3) -> str:
    """An HTML table; cells are escaped unless `Raw`, numbers right-aligned and formatted."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, Raw):
                cells.append(f"<td>{v}</td>")
            else:
                cls = "num" if _is_num(v) else ("text" if isinstance(v, str) and len(v) > 60 else "")
                attr = f' class="{cls}"' if cls else ""
                cells.append(f"<td{attr}>{esc(fmt(v, digits))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 3) -> str:
    def cell(v: Any) -> str:
        return fmt(v, digits).replace("|", "\\|").replace("\n", " ")

    rows = [list(r) for r in rows]
    right = [bool(rows) and _is_num(rows[0][i]) for i in range(len(headers))]  # numbers right-aligned
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def figure_uri(draw: Callable[[Any], Any], size: tuple[float, float] = (7.0, 3.0)) -> str:
    """Call `draw(fig)` on a fresh Figure and return it as a PNG `data:` URI.

    `Figure` is used directly (not pyplot): no GUI backend, no global figure registry; savefig
    renders with Agg. PNG metadata is dropped so the bytes carry no matplotlib version.
    """
    import matplotlib.style
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"), rc_context(_RC):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def optional(path: Any, loader: Callable[[Any], Any] | None = None) -> Any:
    """The file read with `loader` (default JSON), or None when it does not exist: a report shows
    what is there and says what is not."""
    from .io import read_json

    return (loader or read_json)(path) if path.exists() else None


def numeric(obj: Any, where: str, keys: Sequence[str]) -> dict:
    """`obj` when it is an object with a number at each of `keys`, else the error naming `where`."""
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), (int, float)) for k in keys):
        from .errors import PipelineError

        raise PipelineError(f"{where}: expected an object with numeric {' and '.join(map(repr, keys))}")
    return obj


def img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{esc(alt)}">'


def p(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def h3(text: str) -> str:
    return f"<h3>{esc(text)}</h3>"


def not_available(what: str) -> str:
    return f'<p class="na">{esc(what)}: not available</p>'


def details(summary: str, body_html: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{body_html}</details>"


def config_block(cfg: Any, summary: str = "Resolved config") -> str:
    """The resolved config as YAML in a collapsed block (cfg: DictConfig or plain dict)."""
    from omegaconf import OmegaConf

    from .scrub import scrub

    plain = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
    return details(summary, f"<pre>{esc(OmegaConf.to_yaml(scrub(plain)))}</pre>")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


@dataclass
class Page:
    title: str
    subtitle: str = ""
    lead: str = ""  # one-line verdict under the title (plain text)
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (anchor, title, html)

    def add(self, title: str, *parts: str, anchor: str | None = None) -> None:
        base = anchor or slug(title)
        taken = {a for a, _, _ in self.sections}
        anchor, i = base, 2
        while anchor in taken:
            anchor, i = f"{base}-{i}", i + 1
        self.sections.append((anchor, title, "\n".join(parts)))

    def render(self) -> str:
        """The page, with any secret value in it masked (the subtitle is the config's
        task.description, sections quote config values)."""
        from .scrub import scrub_text

        return scrub_text(self._render())

    def _render(self) -> str:
        toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in self.sections)
        body = "\n".join(
            f'<section id="{a}"><h2>{esc(t)}<a class="anchor" href="#{a}">#</a></h2>\n{h}\n</section>'
            for a, t, h in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(self.title)}</title>\n<style>{_CSS}</style></head>\n<body>\n"
            f"<header><h1>{esc(self.title)}</h1>"
            + (p(self.subtitle, "sub") if self.subtitle else "")
            + (p(self.lead, "lead") if self.lead else "")
            + f'<nav class="toc"><ol>{toc}</ol></nav></header>\n<main>\n{body}\n</main>\n</body></html>\n'
        )


def training_curves(log: list[dict], titles: Sequence[str], series: Sequence[tuple[str, str, Callable[[dict], Any]]],
                    x: str = "step", legend: bool = True) -> str:
    """Train loss against the step, eval loss and eval metrics against `x` (step or epoch), as a
    PNG `data:` URI. titles: the three panels'; series: (label, colour, value of an eval entry or
    None) drawn in the third panel, labelled in a legend when `legend`."""
    train = [(e["step"], e["loss"]) for e in log if "loss" in e and "step" in e]
    evals = [e for e in log if "eval_loss" in e and x in e]

    def draw(fig):
        a, b, c = fig.subplots(1, 3)
        for ax, title in zip((a, b, c), titles):
            ax.set_title(title)
            ax.set_xlabel("step" if ax is a else x)
            ax.grid(color="#eee")
        if train:
            a.plot(*zip(*train), color="#3b6ea8", lw=1.2)
        if evals:
            b.plot([e[x] for e in evals], [e["eval_loss"] for e in evals], "o-", color="#c0504d", ms=4)
            for label, color, value in series:
                pts = [(e[x], value(e)) for e in evals if value(e) is not None]
                if pts:
                    c.plot(*zip(*pts), "o-", color=color, ms=4, **({"label": label} if legend else {}))
            if legend:
                c.legend(fontsize=7, frameon=False)
        else:
            for ax in (b, c):
                ax.text(0.5, 0.5, "no eval entries", ha="center", transform=ax.transAxes, color="#888")

    return figure_uri(draw, (10.5, 2.8))


def training_section(page: Page, log: list[dict] | None, log_path: Any, *extra: str,
                     alt: str = "training and validation curves", **curves: Any) -> None:
    """The report's "Training" section: the curves of train_log.json (see `training_curves`) and
    `extra` parts, or a not-available note naming the missing log."""
    if log:
        page.add("Training", img(training_curves(log, **curves), alt), *extra, anchor="training")
    else:
        page.add("Training", not_available(f"training log ({log_path})"), anchor="training")


# the causal-LM tasks' curves (instruct, qgen_es): validation perplexity from the logged loss
SFT_CURVES: dict = {"titles": ("train loss (completion tokens)", "validation loss", "validation perplexity"),
                    "series": [("perplexity", "#9bbb59", lambda e: math.exp(min(e["eval_loss"], 50.0)))],
                    "legend": False}

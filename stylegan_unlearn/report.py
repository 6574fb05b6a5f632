"""An HTML and Markdown report of an evaluation (the library of `stylegan-unlearn report`).

Reads `summary.json` written by `evaluate` and writes into `--out`:
  * `samples.png` — same-seed samples, one row per network (original, adapted, unlearned,
    extrapolated, then others), so the feature can be seen to vanish while the rest stays;
  * `chart-<metric>.png` — bar charts of the share of negatives, PUL, FID, KID and Ret-FID;
  * `report.html` (inline CSS, no external resources; `--embed-images` also inlines the PNGs so
    the one file is the whole report) and `report.md`, with the metric table, the attribute drift
    table and the run options.
Networks come from the summary; `--network NAME=PKL` adds more (e.g. the adapted or extrapolated
networks) or points a name at a moved file. `write_report` does all of it; the `report` command is a
click wrapper around it. The charts need matplotlib, an optional dependency, imported only when they are
drawn.
"""
import base64
import html
import json
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from stylegan_unlearn.device import resolve_device
from stylegan_unlearn.errors import MissingDependencyError
from stylegan_unlearn.fileio import atomic_write, atomic_write_text, check_writable_dir
from stylegan_unlearn.images import quantize
from stylegan_unlearn.pkl import check_network_files, load_generator
from stylegan_unlearn.ranges import parse_int_ranges
from stylegan_unlearn.seeds import generate_all

__all__ = ["write_report", "network_role"]

ROLES = ("original", "adapted", "unlearned", "extrapolated")
METRICS = [  # key, title, axis label, format, note
    ("neg_share", "Share of samples with the feature", "% of samples", lambda v: f"{100 * v:.1f}%", "lower is better"),
    ("pul", "PUL (percentage of unlearning)", "PUL", lambda v: f"{v:.1f}", "higher is better"),
    ("fid", "FID vs reference data", "FID", lambda v: f"{v:.3f}", "lower is better"),
    ("kid", "KID vs reference data", "KID", lambda v: f"{v:.5f}", "lower is better"),
    ("ret_fid", "Ret-FID vs the reference network", "Ret-FID", lambda v: f"{v:.3f}", "lower is better"),
]


def network_role(name: str, index: int) -> int:
    """Sort rank from the name: original (or the first), adapted, unlearned, extrapolated, others."""
    lowered = name.lower()
    for rank, keyword in enumerate(("original", "adapt", "unlearn", "extrapol")):
        if keyword in lowered:
            return rank
    return 0 if index == 0 else len(ROLES)


def _ordered_networks(summary: Dict, extra: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    networks: Dict[str, str] = {r["name"]: r["path"] for r in summary.get("networks", [])}
    for name, path in extra:
        networks[name] = path
    names = list(networks)
    order = sorted(range(len(names)), key=lambda i: (network_role(names[i], i), i))
    return [(names[i], networks[names[i]]) for i in order]


# ------------------------------------------------------------------------------------------ pictures

def _samples_figure(rows: Sequence[Tuple[str, Optional[np.ndarray]]], seeds: Sequence[int], path: str) -> None:
    """One PNG: a label column, then one tile per seed for every network (blank when unavailable)."""
    first = next(images for _name, images in rows if images is not None)
    _n, height, width, _c = first.shape
    scale = max(1, int(np.ceil(64 / max(height, width))))
    cell_w, cell_h = width * scale, height * scale
    label_w, header_h, pad = 130, 16, 4
    sheet = Image.new("RGB", (label_w + len(seeds) * (cell_w + pad) + pad, header_h + len(rows) * (cell_h + pad) + pad),
                      "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, seed in enumerate(seeds):
        draw.text((label_w + pad + k * (cell_w + pad), 2), f"seed {seed}", fill="black", font=font)
    for r, (name, images) in enumerate(rows):
        y = header_h + pad + r * (cell_h + pad)
        draw.text((4, y + cell_h // 2 - 6), name[:20], fill="black", font=font)
        if images is None:
            draw.text((label_w + pad, y + cell_h // 2 - 6), "(network file not found)", fill="gray", font=font)
            continue
        for k, image in enumerate(images):
            tile = Image.fromarray(image[:, :, 0], "L") if image.shape[2] == 1 else Image.fromarray(image, "RGB")
            sheet.paste(tile.convert("RGB").resize((cell_w, cell_h), Image.NEAREST),
                        (label_w + pad + k * (cell_w + pad), y))
    with atomic_write(path, "wb") as f:
        sheet.save(f, format="PNG")


def _bar_chart(names: Sequence[str], values: Sequence[float], title: str, ylabel: str, fmt, path: str) -> None:
    import matplotlib  # optional dependency (pip install stylegan-unlearn[report]); only the charts need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the non-interactive backend

    figure, axes = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.2), dpi=100)
    try:
        bars = axes.bar(range(len(names)), values, color=["#7f7f7f"] + ["#1f77b4"] * (len(names) - 1))
        axes.set_xticks(range(len(names)))
        axes.set_xticklabels(names, rotation=20, ha="right")
        axes.set_title(title, fontsize=10)
        axes.set_ylabel(ylabel)
        axes.axhline(0, color="black", linewidth=0.8)
        axes.margins(y=0.15)
        for bar, value in zip(bars, values):
            axes.annotate(fmt(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                          va="bottom" if value >= 0 else "top", fontsize=8)
        figure.tight_layout()
        with atomic_write(path, "wb") as f:
            figure.savefig(f, format="png")
    finally:
        plt.close(figure)


def _charts(summary: Dict, out: str) -> List[Tuple[str, str, str]]:
    """Write a chart per metric present; returns (key, title, file name)."""
    written = []
    records = summary.get("networks", [])
    for key, title, ylabel, fmt, note in METRICS:
        present = [(r["name"], r[key]) for r in records if r.get(key) is not None]
        if not present:
            continue
        names, values = zip(*present)
        scale = 100.0 if key == "neg_share" else 1.0
        file_name = f"chart-{key}.png"
        _bar_chart(names, [v * scale for v in values], f"{title}\n({note})", ylabel,
                   (lambda v, f=fmt, s=scale: f(v / s)), os.path.join(out, file_name))
        written.append((key, title, file_name))
    return written


# ------------------------------------------------------------------------------------------ documents

def _metric_rows(summary: Dict) -> Tuple[List[str], List[List[str]]]:
    keys = [m for m in METRICS if any(r.get(m[0]) is not None for r in summary.get("networks", []))]
    header = ["network"] + [m[2] if m[0] != "neg_share" else "with feature" for m in keys]
    rows = []
    for r in summary.get("networks", []):
        rows.append([r["name"]] + ["–" if r.get(k) is None else fmt(r[k]) for k, _t, _y, fmt, _n in keys])
    return header, rows


def _drift_rows(summary: Dict) -> Tuple[List[str], List[List[str]]]:
    drift = summary.get("drift") or {}
    rows_in = drift.get("rows") or []
    if not rows_in:
        return [], []
    names = list(rows_in[0]["shares"])
    header = ["attribute"] + names
    rows = []
    for row in rows_in:
        cells = [f"{100 * row['shares'][names[0]]:.1f}%"]
        cells += [f"{100 * row['shares'][n]:.1f}% ({100 * row['change'][n]:+.1f})" for n in names[1:]]
        rows.append([row["attribute"]] + cells)
    return header, rows


def _option_rows(summary: Dict) -> List[List[str]]:
    rows = [[k, json.dumps(v) if not isinstance(v, str) else v] for k, v in (summary.get("options") or {}).items()]
    for key in ("classifier", "detector", "reference", "ret_reference", "kid"):
        if summary.get(key) is not None:
            value = summary[key]
            rows.append([f"({key})", value if isinstance(value, str) else json.dumps(value)])
    rows.append(["(seeds evaluated)", f"{summary.get('seeds')} ({summary.get('num_samples')} samples)"])
    return rows


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not header:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not header:
        return ""
    escape = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%;image-rendering:pixelated}
.charts img{max-width:48%;margin:0 1% 1em 0}code{background:#f3f3f3;padding:1px 4px}"""


def _img_src(out: str, file_name: str, embed: bool) -> str:
    if not embed:
        return html.escape(file_name)
    with open(os.path.join(out, file_name), "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def _documents(summary: Dict, out: str, samples_file: Optional[str], grid_seeds: Sequence[int],
               charts: Sequence[Tuple[str, str, str]], notes: Sequence[str], embed: bool, title: str) -> Tuple[str, str]:
    metric_header, metric_rows = _metric_rows(summary)
    drift_header, drift_rows = _drift_rows(summary)
    option_rows = _option_rows(summary)
    seeds_text = ", ".join(str(s) for s in grid_seeds)

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    md = [f"# {title}\n"]
    parts.append("<h2>Samples</h2>")
    md.append("## Samples\n")
    if samples_file:
        parts.append(f"<p>Same seeds ({html.escape(seeds_text)}) for every network, one row each.</p>"
                     f"<img src='{_img_src(out, samples_file, embed)}' alt='same-seed samples'>")
        md.append(f"Same seeds ({seeds_text}) for every network, one row each.\n\n![same-seed samples]({samples_file})\n")
    for note in notes:
        parts.append(f"<p><em>{html.escape(note)}</em></p>")
        md.append(f"*{note}*\n")
    parts.append("<h2>Metrics</h2>")
    md.append("## Metrics\n")
    if metric_rows and len(metric_header) > 1:
        parts.append(_html_table(metric_header, metric_rows))
        md.append(_md_table(metric_header, metric_rows))
    if charts:
        parts.append("<div class='charts'>" + "".join(
            f"<img src='{_img_src(out, f, embed)}' alt='{html.escape(t)}'>" for _k, t, f in charts) + "</div>")
        md.append("\n".join(f"![{t}]({f})" for _k, t, f in charts) + "\n")
    if drift_rows:
        parts.append("<h2>Attribute drift</h2><p>Share of samples with each attribute; change from the original "
                     "in percentage points. Largest changes first.</p>" + _html_table(drift_header, drift_rows))
        md.append("## Attribute drift\n\nShare of samples with each attribute; change from the original in "
                  "percentage points. Largest changes first.\n\n" + _md_table(drift_header, drift_rows))
    parts.append("<h2>Run options</h2>" + _html_table(["option", "value"], option_rows) + "</body></html>")
    md.append("## Run options\n\n" + _md_table(["option", "value"], option_rows))
    return "".join(parts) + "\n", "\n".join(md)


def write_report(eval_dir: str, out: str, extra_networks: Sequence[Tuple[str, str]] = (),
                 grid_seeds: Optional[Sequence[int]] = None, embed_images: bool = False,
                 device: Union[str, torch.device, None] = None, title: str = "Adapt-then-Unlearn report",
                 echo: Callable[[str], None] = print) -> Dict[str, str]:
    """Write report.html, report.md and their PNGs into `out`; returns {kind: path}.

    `eval_dir` holds the summary.json that `evaluate_networks` wrote; `extra_networks` are (name, pkl)
    pairs to add to the sample grid, and every one of them must exist (a missing one is an error);
    networks of the summary that moved are shown as a note in the report. `device` defaults to the CPU
    (the grid is small). Raises ValueError / OSError for bad input.
    """
    check_writable_dir(out, "--out")
    check_network_files([(f"--network {name}", path) for name, path in extra_networks])
    summary_path = os.path.join(eval_dir, "summary.json")
    if not os.path.isfile(summary_path):
        raise FileNotFoundError(f"'{summary_path}' not found; run 'stylegan-unlearn evaluate --out {eval_dir}' first")
    try:
        with open(summary_path, "r", encoding="utf-8") as f:
            summary = json.load(f)
    except ValueError as err:
        raise ValueError(f"'{summary_path}' is not valid JSON ({err}); rerun evaluate") from None
    device = resolve_device(device) if device is not None else torch.device("cpu")
    if grid_seeds is None:
        grid_seeds = parse_int_ranges(summary.get("seeds") or "0-7")[:8]
    sampling = dict(summary.get("sampling") or {})
    sampling.pop("batch_size", None)

    rows: List[Tuple[str, Optional[np.ndarray]]] = []
    notes: List[str] = []
    for name, path in _ordered_networks(summary, extra_networks):
        if not os.path.isfile(path):
            notes.append(f"Network '{name}': {path} not found; pass --network {name}=PATH to show it.")
            rows.append((name, None))
            continue
        G = load_generator(path, device=device)
        images = quantize(generate_all(G, grid_seeds, device=device, **sampling)).permute(0, 2, 3, 1).numpy()
        rows.append((name, images))
        echo(f"samples: {name}")
    shapes = {images.shape[1:] for _name, images in rows if images is not None}
    if len(shapes) > 1:
        raise ValueError("the networks make images of different sizes or channel counts; "
                         "a same-seed grid needs one shape")
    os.makedirs(out, exist_ok=True)
    samples_file = None
    if shapes:
        samples_file = "samples.png"
        _samples_figure(rows, grid_seeds, os.path.join(out, samples_file))
    try:
        charts = _charts(summary, out)
    except ImportError:
        raise MissingDependencyError("the report's charts need matplotlib: pip install matplotlib "
                                     "(or pip install stylegan-unlearn[report])") from None
    page, markdown = _documents(summary, out, samples_file, grid_seeds, charts, notes, embed_images, title)
    paths = {"html": os.path.join(out, "report.html"), "markdown": os.path.join(out, "report.md")}
    atomic_write_text(paths["html"], page)
    atomic_write_text(paths["markdown"], markdown)
    return paths

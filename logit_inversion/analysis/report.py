"""Writing results: `NAME.png` and `NAME.json` per experiment, and the `index.html` page.

Every file is written to a temporary name beside its target and renamed into place, so a
crash never leaves a half-written figure, record or page.
"""

import base64
import datetime
import html
import json
import math
import os
import tempfile

import numpy as np

from logit_inversion.analysis import render


def atomic_write(path, data):
    """Writes bytes (or text) to `path` through a temporary file in the same folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def to_json(value):
    """`value` with numpy scalars and arrays as Python numbers and NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def record(name, result, meta):
    """The JSON record of one experiment: its numbers, params and `meta` (model, data, seed,
    command)."""
    return to_json({"experiment": name, **meta, "params": result["params"],
                    "summary": result["summary"], "tables": result["tables"]})


def write_experiment(output_dir, name, result, figure, meta):
    """Writes `NAME.png` and `NAME.json` under `output_dir`; returns their paths."""
    png = os.path.join(output_dir, f"{name}.png")
    record_path = os.path.join(output_dir, f"{name}.json")
    atomic_write(png, render.png_bytes(figure))
    atomic_write(record_path, json.dumps(record(name, result, meta), indent=2,
                                         ensure_ascii=False) + "\n")
    return png, record_path


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    return str(value)


def _table(rows):
    """An HTML table from a list of dicts (columns: the union of keys, in order)."""
    if not rows:
        return "<p class=muted>(empty)</p>"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_format(row.get(c)))}</td>"
                                    for c in columns) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def index_html(entries, meta):
    """One self-contained page: per experiment a reading guide, the figure (inline base64
    PNG) and its numbers as tables.

    Args:
        entries: list of dicts with `name`, `title`, `guide`, `png` (bytes) and `record`
            (the JSON record), or `error` (a message) for an experiment that failed.
        meta: dict shown at the top (model, data, seed, command).
    """
    parts = []
    for entry in entries:
        name = html.escape(entry["name"])
        parts.append(f"<section id='{name}'><h2>{html.escape(entry['title'])} "
                     f"<small>({name})</small></h2><p class=guide>{html.escape(entry['guide'])}</p>")
        if "error" in entry:
            parts.append(f"<p class=error>Not run: {html.escape(entry['error'])}</p></section>")
            continue
        encoded = base64.b64encode(entry["png"]).decode("ascii")
        parts.append(f"<img alt='{name}' src='data:image/png;base64,{encoded}'>")
        rec = entry["record"]
        parts.append("<h3>summary</h3>" + _table([rec["summary"]] if len(rec["summary"]) < 7 else
                                                 [{"number": k, "value": v}
                                                  for k, v in rec["summary"].items()]))
        for table_name, rows in rec["tables"].items():
            if rows:
                parts.append(f"<h3>{html.escape(table_name)}</h3>" + _table(rows))
        parts.append("</section>")
    toc = " · ".join(f"<a href='#{html.escape(e['name'])}'>{html.escape(e['name'])}</a>"
                     for e in entries)
    header = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_format(v))}</td></tr>"
                     for k, v in meta.items())
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>logit_inversion analyses</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1400px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.4em 0 1em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }}
.guide {{ background: #f6f8ff; padding: 0.4em 0.7em; border-left: 3px solid #4a6ee0; }}
.error {{ color: #a00; }} .muted {{ color: #777; }} section {{ margin-bottom: 2.5em; }}
</style></head><body>
<h1>What do the logits keep? Analyses of an inverter</h1>
<table>{header}<tr><th>written</th><td>{when}</td></tr></table>
<p>{toc}</p>
{''.join(parts)}
</body></html>
"""

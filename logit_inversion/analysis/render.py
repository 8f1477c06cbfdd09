"""The figures' few drawing primitives, with PIL: labelled image grids, heat maps, charts.

PIL rather than matplotlib: it is already a dependency (the training grids use it), it draws
the only things these figures need (tiles of pixels with text around them, a few bars and
lines), and with its bundled font the figures come out the same on every machine, with no
font cache or plotting backend to configure.

Every figure is `title` + parts stacked vertically; a grid part is rows of `Cell`s: an image
tile with an optional header above (a parameter value) and caption below (class and
probability).

Example:

```python
rows = [[Cell(image, header="s=1", caption="circle 0.98")]]
figure = stack([title_bar("scale"), grid(rows, row_labels=["scale z·s"])])
figure.save("scale.png")
```
"""

import dataclasses
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SCALE = 3            # tile magnification: 32 px images become 96 px tiles
LINE = 13            # text line height
PAD = 4
BACKGROUND = "white"
INK = (0, 0, 0)
MUTED = (90, 90, 90)
# A perceptually ordered colour ramp (dark blue → green → yellow), for heat maps.
_RAMP = np.array([[48, 18, 59], [40, 110, 200], [30, 180, 140], [150, 210, 60], [250, 230, 30]],
                 np.float64)
SERIES_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189),
                  (255, 127, 14), (140, 86, 75), (127, 127, 127), (23, 190, 207)]


# Pillow's bundled font has no Greek letters or arrows; figures spell them in ASCII, so they
# render the same on every machine without depending on installed fonts.
_ASCII = str.maketrans({"Φ": "Phi", "ε": "eps", "σ": "sigma", "α": "alpha", "ŝ": "s^",
                        "∞": "inf", "·": "*", "÷": "/", "—": "-", "–": "-", "→": "->",
                        "…": "...", "×": "x", "≥": ">=", "≤": "<="})


def ascii_text(text):
    """`text` with the Greek letters and symbols the bundled font lacks spelled out."""
    return str(text).translate(_ASCII)


def font(size=11):
    return ImageFont.load_default(size=size)


class _Draw:
    """`ImageDraw.Draw` whose `text` spells unsupported symbols in ASCII."""

    def __init__(self, canvas):
        self._draw = ImageDraw.Draw(canvas)

    def text(self, xy, text, **kwargs):
        self._draw.text(xy, ascii_text(text), **kwargs)

    def __getattr__(self, name):
        return getattr(self._draw, name)


@dataclasses.dataclass
class Cell:
    """One tile of a grid: `image` float `[h, w, 3]` in [-1, 1], uint8 `[h, w, 3]` or a PIL
    image; `header` above it and `caption` below (lines split on newlines)."""

    image: object
    header: str = ""
    caption: str = ""


def to_pil(image, scale=SCALE):
    """float `[h, w, 3]` in [-1, 1] or uint8 → a PIL image magnified `scale` times (nearest)."""
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(np.round((array.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    tile = Image.fromarray(array)
    return tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST)


def heatmap(values, vmax=None, scale=SCALE):
    """A `[h, w]` array as a colour-ramp PIL image (0 → dark, `vmax` → yellow)."""
    values = np.asarray(values, np.float64)
    vmax = float(values.max()) if vmax is None else float(vmax)
    t = np.clip(values / vmax, 0.0, 1.0) if vmax > 0 else np.zeros_like(values)
    position = t * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    frac = (position - low)[..., None]
    rgb = _RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac
    return to_pil(np.round(rgb).astype(np.uint8), scale)


def text_width(text, size=11):
    return int(np.ceil(font(size).getlength(ascii_text(text))))


def title_bar(title, subtitle="", width=0):
    """A title (bold-sized) and an optional muted subtitle line, `width` px wide at least."""
    lines = [(title, 15, INK)] + ([(subtitle, 11, MUTED)] if subtitle else [])
    width = max(width, *(text_width(t, s) + 2 * PAD for t, s, _ in lines))
    canvas = Image.new("RGB", (width, PAD + 18 + (LINE + 2) * bool(subtitle) + PAD), BACKGROUND)
    draw = _Draw(canvas)
    y = PAD
    for text, size, colour in lines:
        draw.text((PAD, y), text, fill=colour, font=font(size))
        y += 18 if size == 15 else LINE + 2
    return canvas


def grid(rows, row_labels=None, column_headers=None):
    """Rows of `Cell`s (None leaves a gap) as one PIL image.

    Args:
        rows: list of lists of `Cell` or None.
        row_labels: one string per row, drawn to the left (newlines allowed).
        column_headers: one string per column, drawn once above the grid.

    Returns:
        A PIL image; cells of a column share its widest tile's width.
    """
    n_cols = max(len(row) for row in rows)
    tiles = [[None if c is None else to_pil(c.image) for c in row] for row in rows]
    col_w = [max([t.width for row in tiles for t in row[j:j + 1] if t is not None] or [0])
             for j in range(n_cols)]
    col_w = [w + PAD for w in col_w]
    label_w = max([text_width(line) for label in (row_labels or []) for line in label.split("\n")]
                  or [0])
    label_w = label_w + 2 * PAD if label_w else 0
    header_h = LINE + 2 if column_headers else 0
    row_h = []
    for row, row_tiles in zip(rows, tiles):
        header = max([len(c.header.split("\n")) for c in row if c is not None and c.header]
                     or [0])
        caption = max([len(c.caption.split("\n")) for c in row if c is not None and c.caption]
                      or [0])
        tile_h = max([t.height for t in row_tiles if t is not None] or [0])
        row_h.append((header * LINE, tile_h, caption * LINE + PAD))
    width = label_w + sum(col_w) + PAD
    height = header_h + sum(sum(h) for h in row_h) + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = _Draw(canvas)
    small = font(11)
    x_of = np.concatenate([[label_w + PAD], label_w + PAD + np.cumsum(col_w)]).astype(int)
    for j, header in enumerate(column_headers or []):
        draw.text((int(x_of[j]), 0), _fit(header, col_w[j]), fill=INK, font=small)
    y = header_h
    for i, (row, row_tiles) in enumerate(zip(rows, tiles)):
        head_h, tile_h, cap_h = row_h[i]
        if row_labels:
            for k, line in enumerate(row_labels[i].split("\n")):
                draw.text((PAD, y + head_h + tile_h // 2 - LINE // 2 + (k - 0.5) * LINE),
                          line, fill=INK, font=small)
        for j, (cell, tile) in enumerate(zip(row, row_tiles)):
            if cell is None:
                continue
            x = int(x_of[j])
            for k, line in enumerate(cell.header.split("\n") if cell.header else []):
                draw.text((x, y + k * LINE), _fit(line, col_w[j]), fill=INK, font=small)
            canvas.paste(tile, (x, y + head_h))
            for k, line in enumerate(cell.caption.split("\n") if cell.caption else []):
                draw.text((x, y + head_h + tile.height + k * LINE), _fit(line, col_w[j]),
                          fill=INK if k == 0 else MUTED, font=small)
        y += head_h + tile_h + cap_h
    return canvas


def line_chart(title, x, series, x_label, y_label, y_range=(0.0, 1.0), size=(300, 190)):
    """Lines of `series` (name → values over `x`) with labelled axes; the x ticks are `x`."""
    width, height = size
    left, right, top, bottom = 40, 10, 36, 34
    canvas = Image.new("RGB", (width, height + LINE * len(series)), BACKGROUND)
    draw = _Draw(canvas)
    small = font(10)
    draw.text((left, 2), title, fill=INK, font=font(11))
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    draw.line([(x0, y0), (x1, y0)], fill=INK)
    draw.line([(x0, y0), (x0, y1)], fill=INK)
    lo, hi = y_range
    xs = np.linspace(x0 + 8, x1 - 8, len(x)) if len(x) > 1 else np.array([(x0 + x1) / 2])

    def y_of(v):
        return y0 - (float(v) - lo) / (hi - lo) * (y0 - y1)

    for v in np.linspace(lo, hi, 3):
        draw.text((2, y_of(v) - 6), f"{v:.2g}", fill=MUTED, font=small)
        draw.line([(x0 - 3, y_of(v)), (x0, y_of(v))], fill=INK)
    for px, label in zip(xs, x):
        draw.line([(px, y0), (px, y0 + 3)], fill=INK)
        text = label if isinstance(label, str) else f"{label:.3g}"
        draw.text((px - text_width(text, 10) / 2, y0 + 4), text, fill=MUTED, font=small)
    draw.text(((x0 + x1) / 2 - text_width(x_label, 10) / 2, y0 + 17), x_label, fill=INK,
              font=small)
    draw.text((2, top - 16), y_label, fill=INK, font=small)
    for k, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        points = [(float(px), y_of(v)) for px, v in zip(xs, values) if np.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        draw.text((left, height + k * LINE), f"— {name}", fill=colour, font=small)
    return canvas


def bar_chart(title, categories, series, y_label, y_max=None, size=(520, 200), y_min=0.0,
              intervals=None, reference=None):
    """Grouped bars: for each category, one bar per series (name → values per category).

    Bars start at 0 and go down for negative values, so a number below a baseline shows as
    such rather than as an empty bar.

    Args:
        title, categories, series, y_label: what is drawn and its labels.
        y_max, y_min: the value axis (default y_max: 1.1 × the largest value; y_min 0).
        intervals: optional name → `[(low, high)]` per category, drawn as whiskers.
        reference: optional `(value, label)`: a dashed horizontal line, e.g. chance at 0.
        size: `(width, height)` of the plot in pixels, legend excluded.
    """
    width, height = size
    left, top, bottom = 40, 36, 30
    canvas = Image.new("RGB", (width, height + LINE), BACKGROUND)
    draw = _Draw(canvas)
    small = font(10)
    draw.text((left, 2), title, fill=INK, font=font(11))
    values = np.array(list(series.values()), np.float64)
    if y_max is None:
        y_max = float(np.nanmax(values)) * 1.1 if np.isfinite(values).any() else 1.0
        y_max = y_max if y_max > y_min else y_min + 1.0
    if not y_max > y_min:
        raise ValueError(f"y_max must exceed y_min. Received: y_min={y_min}, y_max={y_max}")
    x0, y_bottom, y_top = left, height - bottom, top

    def y_of(v):
        v = min(max(float(v), y_min), y_max)
        return y_bottom - (v - y_min) / (y_max - y_min) * (y_bottom - y_top)

    for v in (np.linspace(y_min, y_max, 3) if y_min == 0 else _ticks(y_min, y_max)):
        y = y_of(v)
        draw.text((2, y - 6), f"{v:.2g}", fill=MUTED, font=small)
        draw.line([(x0, y), (width - 4, y)], fill=(225, 225, 225))
    zero = y_of(0.0) if y_min <= 0.0 <= y_max else y_bottom
    draw.line([(x0, y_bottom), (x0, y_top)], fill=INK)
    draw.line([(x0, zero), (width - 4, zero)], fill=INK)
    draw.text((2, top - 16), y_label, fill=INK, font=small)
    group_w = (width - 4 - x0) / len(categories)
    bar_w = group_w * 0.8 / len(series)
    for i, category in enumerate(categories):
        gx = x0 + i * group_w + group_w * 0.1
        for k, name in enumerate(series):
            v = values[k, i]
            if not np.isfinite(v):
                continue
            top_y, bottom_y = sorted((y_of(v), zero))
            colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
            draw.rectangle([gx + k * bar_w, top_y, gx + (k + 1) * bar_w - 1, bottom_y],
                           fill=colour)
            low, high = ((intervals or {}).get(name) or [(None, None)] * len(categories))[i]
            if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
                centre = gx + (k + 0.5) * bar_w
                cap = max(2.0, bar_w / 4)
                draw.line([(centre, y_of(low)), (centre, y_of(high))], fill=INK, width=1)
                for end in (low, high):
                    draw.line([(centre - cap, y_of(end)), (centre + cap, y_of(end))], fill=INK)
        draw.text((gx, y_bottom + 4), _fit(category, int(group_w), 10), fill=INK, font=small)
    if reference is not None:
        value, label = reference
        y = y_of(value)
        for x in range(int(x0), width - 4, 8):
            draw.line([(x, y), (min(x + 4, width - 4), y)], fill=(200, 0, 0))
        draw.text((width - 6 - text_width(label, 10), y - 12), label, fill=(200, 0, 0),
                  font=small)
    x = left
    for k, name in enumerate(series):
        draw.rectangle([x, height + 3, x + 8, height + 11],
                       fill=SERIES_COLOURS[k % len(SERIES_COLOURS)])
        draw.text((x + 11, height), name, fill=INK, font=small)
        x += text_width(name, 10) + 24
    if intervals:
        draw.text((x, height), "| 95 % interval", fill=INK, font=small)
    return canvas


def _ticks(low, high, count=6):
    """Round tick values between `low` and `high`, 0 among them when the range holds it."""
    raw = (high - low) / count
    magnitude = 10 ** np.floor(np.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw),
               default=10 * magnitude)
    return np.arange(np.ceil(low / step) * step, high + step / 2, step)


def stack(parts, horizontal=False):
    """Parts (PIL images, None skipped) side by side or one under another, top-left aligned."""
    parts = [p for p in parts if p is not None]
    if horizontal:
        size = (sum(p.width for p in parts) + PAD * (len(parts) - 1), max(p.height for p in parts))
    else:
        size = (max(p.width for p in parts), sum(p.height for p in parts) + PAD * (len(parts) - 1))
    canvas = Image.new("RGB", size, BACKGROUND)
    offset = 0
    for p in parts:
        canvas.paste(p, (offset, 0) if horizontal else (0, offset))
        offset += (p.width if horizontal else p.height) + PAD
    return canvas


def png_bytes(image):
    """The PNG file of a PIL image, as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def committed_png(image, max_width):
    """The PNG bytes of a figure meant for the repository's docs: at most `max_width` px wide
    and in a 256-colour palette, which keeps it a few hundred kB at most; at these sizes the
    reconstructions look the same."""
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)),
                             Image.LANCZOS)
    return png_bytes(image.quantize(colors=256, method=Image.Quantize.MEDIANCUT))


def class_caption(name, probability):
    """`"circle 0.98"`: a class name and its softmax probability."""
    return f"{name} {probability:.2f}"


def _fit(text, width, size=11):
    """`text`, cut with an ellipsis to fit `width` px."""
    text = ascii_text(text)
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "..", size) > width:
        text = text[:-1]
    return text + ".."

"""Image grids: originals above their reconstructions, optionally labelled."""

import io

import numpy as np
from PIL import Image, ImageDraw

from logit_inversion import files


def to_uint8(images):
    """`[n, h, w, 3]` in [-1, 1] → uint8 in [0, 255]."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid_array(rows):
    """Stacks rows of images (each `[n, h, w, 3]` uint8) into one `[rows·h, n·w, 3]` array."""
    return np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)


def labelled_grid(originals, reconstructions, top_labels=None, bottom_labels=None,
                  scale=3, caption_height=12):
    """A PIL image: originals on top, reconstructions below, each with a caption.

    Args:
        originals, reconstructions: `[n, h, w, 3]` in [-1, 1].
        top_labels, bottom_labels: n strings (e.g. the classifier's top-1 for each row).
    """
    orig, rec = to_uint8(originals), to_uint8(reconstructions)
    n, h, w, _ = orig.shape
    cell_w, cell_h = w * scale, h * scale + caption_height
    canvas = Image.new("RGB", (n * cell_w, 2 * cell_h + caption_height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 0), "top: originals   bottom: reconstructions G(Phi(x), eps)", fill="black")
    for row, (images, labels) in enumerate(((orig, top_labels), (rec, bottom_labels))):
        y0 = caption_height + row * cell_h
        for i in range(n):
            tile = Image.fromarray(images[i]).resize((cell_w, h * scale), Image.NEAREST)
            canvas.paste(tile, (i * cell_w, y0))
            if labels is not None:
                draw.text((i * cell_w + 2, y0 + h * scale), str(labels[i])[:10], fill="black")
    return canvas


def save_png(image, path):
    """Writes the PIL `image` as a PNG to `path` (local or `gs://`), atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    files.write_atomic(path, buffer.getvalue())

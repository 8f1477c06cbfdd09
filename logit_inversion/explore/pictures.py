"""The images the page shows that are not plain model outputs: sample grids, std maps, the
interpolation strip, and the PNG a downloaded view carries. numpy in, uint8 numpy out."""

import numpy as np

GAP = 2                 # pixels between tiles
BACKGROUND = 255        # white gaps, as the figures of `bin/analyze`
STD_FULL_SCALE = 0.25   # a std map's brightest colour: a pixel std of 0.25 (values in [0, 1])
# A dark-to-bright ramp (black, purple, orange, yellow) for the std map: brighter is more
# variable, and the fixed scale keeps maps of different images and models comparable.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
                 np.float32)


def std_image(std_map):
    """float `[R, R]` per-pixel std (pixel values in [0, 1]) → uint8 `[R, R, 3]` colours."""
    t = np.clip(np.asarray(std_map, np.float32) / STD_FULL_SCALE, 0.0, 1.0)
    position = t * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    frac = (position - low)[..., None]
    return np.round(_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).astype(np.uint8)


def tile(images, columns):
    """uint8 `[n, R, R, 3]` → one uint8 image of `columns` per row, with white gaps."""
    images = np.asarray(images, np.uint8)
    n, r = len(images), images.shape[1]
    rows = -(-n // columns)
    columns = min(columns, n)
    out = np.full((rows * r + (rows - 1) * GAP, columns * r + (columns - 1) * GAP, 3),
                  BACKGROUND, np.uint8)
    for i, image in enumerate(images):
        y, x = divmod(i, columns)
        out[y * (r + GAP):y * (r + GAP) + r, x * (r + GAP):x * (r + GAP) + r] = image
    return out


def interpolation_strip(frames, switch_index=None, mark_height=4):
    """The frames side by side, with a red bar under the first frame of the new class."""
    strip = tile(frames, len(frames))
    band = np.full((mark_height + GAP, strip.shape[1], 3), BACKGROUND, np.uint8)
    if switch_index is not None:
        r = frames.shape[1]
        x = switch_index * (r + GAP)
        band[GAP:, x:x + r] = (220, 30, 30)
    return np.concatenate([strip, band], 0)


def view_png(rows):
    """The picture of a downloaded view: one row per model of source, reconstruction, the K
    samples and the std map, each tile at the model's resolution (no resampling)."""
    lines = []
    for source, reconstruction, samples, std_map in rows:
        tiles = [source, reconstruction]
        if samples is not None:
            tiles += list(samples) + [std_image(std_map)]
        lines.append(tile(np.stack(tiles), len(tiles)))
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, GAP), (0, width - line.shape[1]), (0, 0)),
                     constant_values=BACKGROUND) for line in lines]
    return np.concatenate(padded, 0)[:-GAP]

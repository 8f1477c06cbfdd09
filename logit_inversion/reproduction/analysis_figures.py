"""The figures of `docs/analysis.md`: each `bin/analyze` figure of the shipped CIFAR-10 pair,
the standard inverter's above the robust one's, cut to the rows the page shows and kept small.

The analysis stages write full-size figures (every row, 96 px tiles) into the run folder,
which is never committed; the page shows the title and a few rows of each, so that
the committed PNGs stay small and still show each experiment at a readable size. Run by
`bin/reproduce --report`; a figure whose run outputs are missing keeps its committed version.
"""

import os

from logit_inversion import files

# Figure -> (the inverters whose figure is shown, the horizontal bands kept as (top, bottom)
# pixel rows; None keeps all of it). The bands follow the grids of `analysis/render.py` at
# 32 px (96 px tiles with a header and a caption line: rows 113 px apart from y = 42 in the
# image grids, 126 px in the adversarial one) and keep the title and the rows the page names.
SHOWN = ("cifar10_standard", "cifar10_robust")
FIGURES = {
    "reconstructions": (SHOWN, None),
    "invariance": (SHOWN, [(0, 397)]),                          # the first 3 images
    "manipulations": (SHOWN, [(0, 428)]),                       # the first image
    "adversarial": (SHOWN, [(0, 42), (546, 798), (1049, 1303)]),  # PGD L-inf rows, charts
    "misclassified": (SHOWN, None),
    "interpolation": (SHOWN[:1], [(0, 171), (397, 510)]),      # a same- and a different-class pair
    "ood": (SHOWN[:1], None),
}
# The compare experiment reads both inverters in one run (the `compare_cifar10` stage).
COMPARE = ("compare_cifar10", "compare")
MAX_WIDTH = 700


def sources(root):
    """{output name: [full-size figure paths]} of every docs figure `root` can make."""
    out = {f"{name}.png": [os.path.join(root, "analysis", inverter, f"{name}.png")
                           for inverter in inverters]
           for name, (inverters, _) in FIGURES.items()}
    out["compare.png"] = [os.path.join(root, "analysis", COMPARE[0], f"{COMPARE[1]}.png")]
    return out


def write(root, output_dir):
    """Writes each figure whose sources all exist under `root`; returns the names written."""
    from PIL import Image

    from logit_inversion.analysis import render

    bands = {f"{name}.png": kept for name, (_, kept) in FIGURES.items()}
    written = []
    for name, paths in sources(root).items():
        # Half a pair would replace the committed figure with less than it showed.
        if not all(os.path.exists(p) for p in paths):
            continue
        parts = []
        for path in paths:
            with Image.open(path) as image:
                image = image.convert("RGB")
            if bands.get(name):
                # `render.stack` leaves its usual 4 px of white between the bands kept.
                image = render.stack([image.crop((0, top, image.width, min(bottom, image.height)))
                                      for top, bottom in bands[name] if top < image.height])
            parts.append(image)
        os.makedirs(output_dir, exist_ok=True)
        files.write_atomic(os.path.join(output_dir, name),
                           render.committed_png(render.stack(parts), MAX_WIDTH))
        written.append(name)
    return written

"""`reproduction.analysis_figures`: the figures of docs/analysis.md from the analysis stages'
full-size figures, cut to their top rows, standard above robust, small."""

import os

import numpy as np
from PIL import Image

from logit_inversion.reproduction import analysis_figures


def _figure(path, size, colour):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_pairs_are_cut_stacked_and_kept_small(tmp_path):
    root = str(tmp_path / "reproduce")
    colours = {"cifar10_standard": (200, 0, 0), "cifar10_robust": (0, 0, 200)}
    for name, paths in analysis_figures.sources(root).items():
        for path in paths:
            inverter = os.path.basename(os.path.dirname(path))
            _figure(path, (1000, 800), colours.get(inverter, (0, 150, 0)))
    written = analysis_figures.write(root, str(tmp_path / "docs"))
    assert sorted(written) == sorted(analysis_figures.sources(root))

    with Image.open(tmp_path / "docs" / "invariance.png") as image:
        assert image.width == analysis_figures.MAX_WIDTH
        pixels = np.asarray(image.convert("RGB"))
    # Two parts of 397 px (the band kept) and the gap between them, scaled to 700 px wide.
    assert image.height == round((2 * 397 + 4) * 700 / 1000)
    assert pixels[10, 10, 0] > 150 and pixels[-10, 10, 2] > 150   # standard above robust
    with Image.open(tmp_path / "docs" / "reconstructions.png") as image:
        assert image.height == round((2 * 800 + 4) * 700 / 1000)   # kept whole
    with Image.open(tmp_path / "docs" / "interpolation.png") as image:
        # The standard inverter's alone: two bands (171 and 113 px) and the gap between.
        assert image.height == round((171 + 113 + 4) * 700 / 1000)


def test_half_a_pair_leaves_the_committed_figure(tmp_path):
    root = str(tmp_path / "reproduce")
    _figure(os.path.join(root, "analysis", "cifar10_standard", "invariance.png"), (500, 400),
            (255, 0, 0))
    committed = tmp_path / "docs" / "invariance.png"
    _figure(str(committed), (10, 10), (0, 0, 0))
    assert analysis_figures.write(root, str(tmp_path / "docs")) == []
    with Image.open(committed) as image:
        assert image.size == (10, 10)

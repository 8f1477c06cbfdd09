"""`bin/explore`: a local browser app to look at what a classifier's logits keep.

- `session`: the computations behind the page (no web code): images in, logits, edits,
  reconstructions, sample grids, interpolation, and the JSON that reproduces a view.
- `app`: the Gradio page that drives a `session.Explorer`.
- `pictures`: sample grids, std maps, the interpolation strip and a view's PNG.
- `paths`: a quick look at `--model` before TensorFlow loads, to refuse a wrong path at once.
- `reproduce`: re-renders a downloaded view JSON (`python -m logit_inversion.explore.reproduce`).
- `benchmark`: latency from a slider change to the new image, measured in a real browser.

Gradio and Playwright are the optional `[explore]` extra; only `app` and `benchmark` import them.
"""

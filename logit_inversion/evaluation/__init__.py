"""Evaluation in numbers: how much of an image a reconstruction from its logits keeps.

- `classification`: does the classifier see x̂ as it saw x (top-1/top-5 agreement, accuracy
  against the true label, logit cosine and relative L2)?
- `image_quality`: PSNR, SSIM, MS-SSIM between x and x̂.
- `identification`: can an original be told apart, through its reconstruction, from other
  images of its own class? The information beyond the class label, as one number.
- `distribution`: Fréchet distance and KID of reconstructions vs real images in a feature space.
- `diversity`: how much reconstructions at fixed logits differ across noise.
- `baselines/`: the prior methods (optimization-based inversion; Dosovitskiy & Brox's decoder
  is a training config, `configs/dosovitskiy_brox.py`).
- `evaluate`: every metric for several models on the same images (what `bin/evaluate` runs).

The metric modules are pure functions: tensors in, tensors out; images `[batch, h, w, 3]` in
[-1, 1], logits `[batch, K]`.
"""

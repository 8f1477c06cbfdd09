"""The prior methods the paper positions itself against, run on the same images and metrics.

- `optimization`: Mahendran & Vedaldi (2015), an image optimised from noise until Φ of it
  matches the target logits, with a total-variation prior.
- Dosovitskiy & Brox (2016), a deterministic decoder trained with pixel, feature and
  adversarial losses, is not here: it is a configuration of the project's own trainer,
  `logit_inversion/configs/dosovitskiy_brox.py`.
"""

"""Dosovitskiy & Brox (2016), "Generating images with perceptual similarity metrics based on
deep networks", as a configuration of this package's trainer: the baseline the paper
positions itself against.

A *deterministic* decoder from the logits (the generator's noise input is held at zero, so
x̂ = G(z)), trained with the sum of
- a pixel loss to the original image (`pixel_weight`; L1 here, D&B's is squared L2),
- a feature loss in a comparator network, the classifier's own penultimate features
  (`feature_weight`, `feature_layer`): ‖C(x̂) − C(x)‖² / ‖C(x)‖²,
- an adversarial loss: the same hinge loss and logit-conditioned projection discriminator
  as the inverter (D&B's discriminator also sees the conditioning features).
No logit-consistency term (D&B have none). Everything else is the CPU recipe
(`cpu_recipe.py`: 32 px, width 16, the learning rates and EMA) that the CIFAR-10 inverters
and the demo share, on `shapes` by default, so D&B and those inverters differ only in the
objective and the noise.

  bin/train --config=logit_inversion/configs/dosovitskiy_brox.py --workdir=runs/dnb_demo
"""

from logit_inversion.configs import cpu_recipe
from logit_inversion.configs.base import get_base_config


def get_config():
    c = cpu_recipe.apply(get_base_config())
    c.dataset = "shapes"
    c.classifier = "shapes"
    c.deterministic = True
    c.pixel_weight = 1.0
    c.feature_weight = 1.0
    c.feature_layer = "penultimate"
    c.consistency_weight = 0.0
    c.num_steps = 600
    c.checkpoint_every = 200
    c.ema_start = 100
    return c

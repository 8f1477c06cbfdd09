"""The embedded default: the generated `shapes` dataset and the shipped `shapes` classifier,
32 px, sized to finish in minutes on a 2-core CPU (`make demo`).

The recipe is `cpu_recipe.py` (its docstring gives the reasons and the departures from the
paper), with five changes that make it train on every seed and use its noise
(`docs/recipes.md` has the curves, per seed, of the changes alone and together):
- `model.logit_scale=0.5`: G's and D's logit projections are spectrally normalised, so the
  conditioning is as large as the logits (norm ~15 for this classifier) and swamps each
  block's noise chunk (norm ~4); at scale 1 the generator drew the same image for every ε.
- `consistency_start=400`: the consistency term has a trap. Φ pools globally and reads an
  empty field as less unlike a square than the blob an early generator draws, so a class
  could settle on an empty field and stay there. From step 400, D has taught shapes first.
- `consistency_weight=1.0` (the recipe: 0.3): once the trap is avoided, the stronger term
  draws each class more reliably (the worst class's agreement at the end of training).
- `diversity_weight=1.0` (`models/inverter.py`): the trap's empty field is the same for
  every ε, which this term penalises; it also keeps noise use from fading late in training.
- `lr_decay_from=0.5`: both learning rates fall linearly to 0 over the second half, so the
  run does not end wherever the GAN's oscillation happens to be (classes came and went
  between probes 200 steps apart at a constant rate).

Other values:
- 1,600 generator steps; 20 steps per call (the same weights as 1 step per call, with fewer
  host round trips).
- bfloat16 convolutions where the CPU has AMX-BF16 or AVX512-BF16 (`cpu_bfloat16="auto"`,
  `training/cpu_bfloat16.py`): a step costs about 0.6× a float32 step there; elsewhere the
  same steps run in float32.

Earlier recipes and their measurements: `docs/demo_history.md`.
"""

from logit_inversion.configs import cpu_recipe
from logit_inversion.configs.base import get_base_config


def get_config():
    c = cpu_recipe.apply(get_base_config())
    c.dataset = "shapes"
    c.classifier = "shapes"
    c.num_steps = 1600
    c.model.logit_scale = 0.5
    c.consistency_start = 400
    c.consistency_weight = 1.0
    c.diversity_weight = 1.0
    c.lr_decay_from = 0.5
    c.steps_per_execution = 20
    c.cpu_bfloat16 = "auto"
    return c

"""The embedded default: the generated `shapes` dataset and the shipped `shapes` classifier,
32 px, sized to finish in minutes on a 2-core CPU (`make demo`).

The recipe is `cpu_recipe.py` (its docstring gives the reasons and the departures from the
paper), with six changes that make it train on every seed, use its noise and finish in minutes
(`docs/recipes.md` has the curves, per seed, of the changes alone and together):
- `model.logit_scale=0.5`: G's and D's logit projections are spectrally normalised, so the
  conditioning is as large as the logits (norm ~15 for this classifier) and swamps each
  block's noise chunk (norm ~4); at scale 1 the generator drew the same image for every ε.
- `consistency_start` (below): the consistency term has a trap. Φ pools globally and reads an
  empty field as less unlike a square than the blob an early generator draws, so a class
  could settle on an empty field and stay there. Switched on later, D has taught shapes first.
- `consistency_weight=1.0` (the recipe: 0.3): once the trap is avoided, the stronger term
  draws each class more reliably (the worst class's agreement at the end of training).
- `diversity_weight=1.0` (`models/inverter.py`): the trap's empty field is the same for
  every ε, which this term penalises; it also keeps noise use from fading late in training.
- `lr_decay_from=0.5`: both learning rates fall linearly to 0 over the second half, so the
  run does not end wherever the GAN's oscillation happens to be (classes came and went
  between probes 200 steps apart at a constant rate).
- `batch_size=32` (the recipe: 64) for 1,000 steps, with the term from step 250: half the
  FLOPs per step, and on seeds 0–2 every class met the bar by step 500–600. The switch-on
  step is the narrow part: at 200 squares fell into the trap on seed 1, at 350 the run had too
  few steps left to settle on seed 0 (`docs/recipes.md`). Before step 250 Φ runs on the real
  images only (`LogitInverter._consistency`), so those steps cost about 0.6× the later ones.

Other values:
- 20 steps per call (the same weights as 1 step per call, with fewer host round trips).
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
    c.num_steps = 1000
    c.batch_size = 32
    c.model.logit_scale = 0.5
    c.consistency_start = 250
    c.consistency_weight = 1.0
    c.diversity_weight = 1.0
    c.lr_decay_from = 0.5
    c.steps_per_execution = 20
    c.cpu_bfloat16 = "auto"
    return c

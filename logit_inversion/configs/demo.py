"""The embedded default: the generated `shapes` dataset and the shipped `shapes` classifier,
32 px, sized to finish in minutes on a 2-core CPU (`make demo`).

The recipe is `cpu_recipe.py` (its docstring gives the reasons and the departures from the
paper), with:
- 1,600 generator steps: where `bin/benchmark quality` found this recipe matching the first
  shipped 3,000-step demo, by its held-out agreement and identification and by eye. Stopping
  earlier leaves some classes (squares above all) drawn as blobs.
- 20 steps per call: the same weights as 1 step per call, with fewer host round trips.
- bfloat16 convolutions where the CPU has AMX-BF16 or AVX512-BF16 (`cpu_bfloat16="auto"`,
  `training/cpu_bfloat16.py`): a step costs about 0.6× a float32 step there; elsewhere the
  same steps run in float32.

The measurements behind each value, newest first: `docs/demo_history.md`.
"""

from logit_inversion.configs import cpu_recipe
from logit_inversion.configs.base import get_base_config


def get_config():
    c = cpu_recipe.apply(get_base_config())
    c.dataset = "shapes"
    c.classifier = "shapes"
    c.num_steps = 1600
    # 20 steps per call: the same weights bit for bit as 1, with fewer host round trips.
    c.steps_per_execution = 20
    # bfloat16 convolutions where the CPU has AMX-BF16/AVX512-BF16 (training/cpu_bfloat16.py).
    c.cpu_bfloat16 = "auto"
    return c

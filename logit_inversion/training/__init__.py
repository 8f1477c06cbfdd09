"""Training an inverter from a config: `trainer` (config → data, model, fit, evaluation),
`checkpoints` (checkpoints and the workdir's config record), `callbacks` and `strategies`."""

from logit_inversion.training.trainer import (  # noqa: F401
    build_inverter, compile_inverter, evaluate, restore_inverter, train, validate_config)

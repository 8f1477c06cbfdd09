"""The analyses' names for the package's one model handle, `serving.model`.

`open_model(path)` opens a `bin/train` workdir or an export as an `AnalysisModel` (the
`serving.model.InverterModel` that evaluation, reconstructions and the explorer use too), so
every command sees a model, its ε and its checkpoint-coverage policy the same way.
"""

from logit_inversion.serving.model import (  # noqa: F401  (the analyses' public names)
    BATCH_SIZE, InverterModel, open_model, softmax)

AnalysisModel = InverterModel

"""logit_inversion: feedforward inversion of frozen classifiers (Teterwak et al., ICML 2021).

A logit-conditioned BigGAN G(Φ(x), ε) learns to reconstruct images from what a frozen
classifier Φ keeps in its logits. The heavy modules import lazily, so `import
logit_inversion` stays cheap for clients that only load an export.
"""

__version__ = "0.1.0"

_LAZY = {
    "LogitInverter": ("logit_inversion.models.inverter", "LogitInverter"),
    "Generator": ("logit_inversion.models.generator", "Generator"),
    "Discriminator": ("logit_inversion.models.discriminator", "Discriminator"),
    "load_classifier": ("logit_inversion.classifiers", "load_classifier"),
    "ClassifierSpec": ("logit_inversion.classifiers", "ClassifierSpec"),
    "build_dataset": ("logit_inversion.data.pipeline", "build_dataset"),
    "train": ("logit_inversion.training", "train"),
    "restore_inverter": ("logit_inversion.training", "restore_inverter"),
    "export_inverter": ("logit_inversion.serving.export", "export_inverter"),
    "load": ("logit_inversion.serving.loading", "load"),
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'logit_inversion' has no attribute {name!r}")

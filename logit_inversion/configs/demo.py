"""The embedded default: the generated `shapes` dataset and the shipped `shapes` classifier,
32 px, sized to finish in minutes on a 2-core CPU (`make demo`)."""

from logit_inversion.configs.base import get_base_config


def get_config():
    c = get_base_config()
    c.dataset = "shapes"
    c.classifier = "shapes"
    c.resolution = 32
    c.model.ch = 16
    c.model.g_multipliers = (4, 2, 1)
    c.model.d_multipliers = (1, 2, 4, 4)
    c.model.noise_dim = 64
    c.model.embed_dim = 64
    c.batch_size = 64
    c.num_steps = 2000
    c.d_steps = 1
    c.g_lr = 2e-4
    c.d_lr = 2e-4
    c.ema_decay = 0.99
    c.ema_start = 200
    c.checkpoint_every = 200
    return c

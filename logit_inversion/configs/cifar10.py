"""CIFAR-10 at 32 px: BigGAN's CIFAR architecture (ch=64, [4, 4, 4]) inverting a CIFAR-10
classifier. Pass `--config.data_dir=../shared/data/tfds` where CIFAR-10 is prepared offline."""

from logit_inversion.configs.base import get_base_config


def get_config():
    c = get_base_config()
    c.dataset = "cifar10"
    c.classifier = "cifar10_robust"
    c.resolution = 32
    c.model.ch = 64
    c.model.noise_dim = 128
    c.model.g_attention = 0
    c.batch_size = 64
    c.num_steps = 50_000
    c.d_steps = 2
    c.g_lr = 2e-4
    c.d_lr = 2e-4
    c.ema_decay = 0.9999
    c.ema_start = 1000
    c.checkpoint_every = 1000
    return c

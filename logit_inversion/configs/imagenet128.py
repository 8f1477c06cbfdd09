"""The paper's main setting: 128 px BigGAN (ch=96, attention at 64 px) inverting a TF Hub
ImageNet classifier on `imagenet2012` (manual download: pass its directory as data_dir),
batch 2048 on a TPU pod slice with bfloat16."""

from logit_inversion.configs.base import get_base_config


def get_config():
    c = get_base_config()
    c.dataset = "imagenet2012"
    c.train_split = "train"
    c.eval_split = "validation"
    c.eval_examples = 10_000
    c.classifier = "resnet50_v2"
    c.resolution = 128
    c.model.ch = 96
    c.model.noise_dim = 120
    c.model.embed_dim = 128
    c.model.g_attention = 64
    c.model.d_attention = 64
    c.batch_size = 2048
    c.num_steps = 150_000
    c.d_steps = 2
    c.g_lr = 1e-4
    c.d_lr = 4e-4
    c.ema_decay = 0.9999
    c.ema_start = 20_000
    c.mixed_precision = True
    c.steps_per_execution = 50
    c.checkpoint_every = 2000
    return c

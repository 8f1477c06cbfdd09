"""The paper's main setting: the 64 px ImageNet config at 128 px — BigGAN ch=96 with
attention at 64 px, `imagenet2012` (manual download: pass its directory as data_dir), batch
2048 on a TPU pod slice with bfloat16."""

from logit_inversion.configs import imagenet64


def get_config():
    c = imagenet64.get_config()
    c.dataset = "imagenet2012"
    c.resolution = 128
    c.model.g_attention = 64
    c.model.d_attention = 64
    c.batch_size = 2048
    return c

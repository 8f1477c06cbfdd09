"""The resolution → channel-multiplier table for BigGAN and BigGAN-deep, in one place.

Each entry multiplies the base width `ch` (BigGAN: ch=96 at 128 px; the CIFAR model ch=64).
Generator blocks each double the resolution, starting from 4×4; discriminator blocks halve
it (the last `no_downsample` blocks keep it). The paper's 128 px inverter uses the 128
entry with ch=96: about 70 M generator and 88 M discriminator parameters when conditioned
on 1000 logits (reported by `tests/test_models.py::test_paper_128_config_builds`).
"""

# resolution: (generator in-channels per block, generator out-channels per block)
GENERATOR = {
    32: ((4, 4, 4), (4, 4, 4)),
    64: ((16, 16, 8, 4), (16, 8, 4, 2)),
    128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1)),
    256: ((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1)),
}

# resolution: (discriminator out-channels per block, which blocks downsample)
DISCRIMINATOR = {
    32: ((4, 4, 4, 4), (True, True, False, False)),
    64: ((1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: ((1, 2, 4, 8, 16, 16), (True, True, True, True, True, False)),
    256: ((1, 2, 4, 8, 8, 16, 16), (True, True, True, True, True, True, False)),
}


def _lookup(table, network, resolution, multipliers, default_outs):
    if resolution not in table:
        raise ValueError(f"No BigGAN {network} for resolution {resolution}; expected one of "
                         f"{sorted(table)}. Received: resolution={resolution}")
    if multipliers is None:
        return tuple(default_outs)
    if len(multipliers) != len(default_outs):
        raise ValueError(f"A {resolution} px {network} has {len(default_outs)} blocks; got "
                         f"{len(multipliers)} multipliers. Received: multipliers={multipliers}")
    return tuple(multipliers)


def generator_channels(resolution, ch, multipliers=None):
    """Returns [(in, out)] channel pairs of the generator blocks for `resolution`.

    `multipliers` (one per block, optional) replaces the table's out-multipliers, e.g. a
    narrow CPU demo; block i's input is block i-1's output, the first block's input is the
    first multiplier.
    """
    ins, outs = GENERATOR.get(resolution, ((), ()))
    custom = _lookup(GENERATOR, "generator", resolution, multipliers, outs)
    if multipliers is not None:
        ins, outs = (custom[0],) + custom[:-1], custom
    return [(i * ch, o * ch) for i, o in zip(ins, outs)]


def discriminator_channels(resolution, ch, multipliers=None):
    """Returns [(out_channels, downsample)] for the discriminator blocks at `resolution`."""
    outs, down = DISCRIMINATOR.get(resolution, ((), ()))
    outs = _lookup(DISCRIMINATOR, "discriminator", resolution, multipliers, outs)
    return [(o * ch, d) for o, d in zip(outs, down)]

"""Train-step throughput of a config (default: the demo) on an in-memory batch.

Data loading is excluded on purpose, so the figure is what the model consumes; compare it
with `benchmarks.data` (the pipeline must deliver ≥ 10× this).
"""

import resource
import time

import tensorflow as tf

DEFAULTS = {"steps": 30, "warmup_steps": 3, "config": "demo"}


def run(args=None):
    from logit_inversion import training
    from logit_inversion.configs import cifar10, demo

    overrides = args if isinstance(args, dict) else vars(args) if args is not None else {}
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown train benchmark options {sorted(unknown)}; known: "
                         f"{sorted(DEFAULTS)}. Received: args={args}")
    options = {**DEFAULTS, **overrides}
    configs = {"demo": demo.get_config, "cifar10": cifar10.get_config}
    if options["config"] not in configs:
        raise ValueError(f"Unknown config {options['config']!r}; expected one of "
                         f"{sorted(configs)}. Received: config={options['config']!r}")
    config = configs[options["config"]]()
    if options["config"] == "cifar10":
        config.classifier = "shapes"    # timing does not depend on which 32 px classifier
    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    batch = config.batch_size * config.d_steps
    data = {"image": tf.random.uniform((batch, config.resolution, config.resolution, 3), -1, 1)}
    step = tf.function(inverter.train_step, jit_compile=config.jit_compile)
    for _ in range(options["warmup_steps"]):
        step(data)
    start = time.perf_counter()
    for _ in range(options["steps"]):
        logs = step(data)
    float(logs["g_loss"])   # wait for the last step
    seconds = time.perf_counter() - start
    steps_per_second = options["steps"] / seconds
    return {
        "config": dict(options, global_batch=batch, resolution=config.resolution),
        "steps_per_second": round(steps_per_second, 3),
        "images_per_second": round(steps_per_second * batch, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }

"""Train-step speed of any config, as a fraction of this machine's matmul peak.

For each of plain TF, XLA (`jit_compile=True`) and plain TF under oneDNN's bfloat16 rewrite
(`bfloat16`, `training/cpu_bfloat16.py`; for CPUs with AMX-BF16 or AVX512-BF16) the same
`LogitInverter.train_step` runs on an in-memory batch (data loading is excluded on purpose:
compare with `benchmarks.data`) and reports images/s, achieved FLOP/s, the fraction of the
machine's dense float32 matmul peak (for `bfloat16` also of its bfloat16 matmul peak), and
the process's peak RSS while that variant ran. FLOPs per step come from
`benchmarks.flops` (the traced step). The matmul peak is measured in the same process, before
and after the steps, so that a shared or throttled CPU affects both sides of the ratio; the
better of the two is used. With `profile_steps > 0` the TF profiler records a few plain steps
and the ops that take the time are listed.

For `xla`, `first_step_seconds` is the compile (plus one step), and where XLA dumps its
modules (`XLA_FLAGS=--xla_dump_to=DIR`, which `bin/benchmark train` sets) the result also
counts the step's compiles over all its calls (1 when nothing recompiles) and the variable
reads lowered as constants (0), from `benchmarks.xla_dump`; `xla_vs_no_xla` is the ratio of
steady-state steps/s measured in the same run.

Example:
    >>> from logit_inversion.benchmarks import train
    >>> from logit_inversion.configs import demo
    >>> result = train.run(demo.get_config(), {"steps": 20})
    >>> result["no_xla"]["fraction_of_matmul_peak"]
"""

import glob
import json
import os
import tempfile
import time

import tensorflow as tf

DEFAULTS = {"steps": 30, "warmup_steps": 3, "matmul_size": 4096, "matmul_repeats": 5,
            "variants": "no_xla,xla", "profile_steps": 5, "profile_top": 12,
            "profile_variant": "no_xla"}
VARIANTS = ("no_xla", "xla", "bfloat16")
PROFILE_VARIANTS = ("no_xla", "bfloat16")   # XLA's steps take minutes on a CPU


def matmul_peak(size=4096, repeats=5, dtype="float32"):
    """Best FLOP/s of a `size`×`size` matmul in `dtype` over `repeats` timed runs."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()   # warm-up: thread pools, packing buffers
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def _reset_peak_rss():
    """Resets the kernel's peak-RSS mark of this process (Linux); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _time_variant(step, data, options):
    _reset_peak_rss()
    start = time.perf_counter()
    float(step(data)["g_loss"])
    first = time.perf_counter() - start
    for _ in range(options["warmup_steps"]):
        logs = step(data)
    float(logs["g_loss"])
    start = time.perf_counter()
    for _ in range(options["steps"]):
        logs = step(data)
    float(logs["g_loss"])   # waits for the last step
    seconds = time.perf_counter() - start
    return {"steps_per_second": options["steps"] / seconds,
            "first_step_seconds": round(first, 2), "peak_rss_mb": _peak_rss_mb()}


XLA_STEP_NAME = "benchmark_xla_train_step"


def _named(method, name):
    def step(data):
        return method(data)
    step.__name__ = name
    return step


def _xla_compiles():
    """The xla step's compile count and constant variable reads, where XLA dumps modules."""
    from logit_inversion.benchmarks import xla_dump

    flags = os.environ.get("XLA_FLAGS", "").split()
    folders = [flag.split("=", 1)[1] for flag in flags if flag.startswith("--xla_dump_to=")]
    if not folders:
        return {"compiles": None}
    summary = xla_dump.summary(folders[-1], XLA_STEP_NAME)
    return {"compiles": summary["compiles"],
            "constant_variable_reads": summary["constant_variable_reads"],
            "hlo_instructions": summary["hlo_instructions"]}


def op_kind(op_type):
    """An op type without oneDNN's prefixes, convolutions and their gradients as one kind."""
    kind = op_type.replace("_MklNative", "").replace("_Mkl", "")
    return "Conv2D (all, with gradients)" if "Conv2D" in kind else kind


def profile_ops(step, data, steps, top):
    """The ops with the most self time over `steps` runs of `step` (a traced train step).

    Returns [{"type", "operation", "occurrences", "self_ms_per_step", "share"}], largest first;
    `share` is the op's fraction of all profiled op self time. `top=None` returns every op,
    which is what `profile_kinds` sums.
    """
    from logit_inversion._tf_private import profiler_plugin as plugin
    float(step(data)["g_loss"])
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            logs = step(data)
        float(logs["g_loss"])
        tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        raw, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        return []
    table = json.loads(raw)[0]
    ids = [c["id"] for c in table["cols"]]
    rows = [dict(zip(ids, (cell["v"] if cell else None for cell in r["c"])))
            for r in table["rows"]]
    rows = [r for r in rows if r["type"] not in ("IDLE",)]
    total = sum(r["total_self_time"] for r in rows) or 1.0
    rows.sort(key=lambda r: -r["total_self_time"])
    return [{"type": r["type"], "operation": r["operation"],
             "occurrences": int(r["occurrences"]) // steps,
             "self_ms_per_step": round(r["total_self_time"] / 1000 / steps, 3),
             "share": round(r["total_self_time"] / total, 4)} for r in rows[:top]]


def profile_kinds(rows, top):
    """Op self time per step summed by `op_kind`, largest first: [{"kind", "self_ms_per_step",
    "share"}] (`rows`: all of `profile_ops`'s rows)."""
    sums = {}
    for r in rows:
        sums[op_kind(r["type"])] = sums.get(op_kind(r["type"]), 0.0) + r["self_ms_per_step"]
    total = sum(sums.values()) or 1.0
    ranked = sorted(sums.items(), key=lambda item: -item[1])[:top]
    return [{"kind": k, "self_ms_per_step": round(v, 2), "share": round(v / total, 4)}
            for k, v in ranked]


def run(config=None, args=None):
    """`bin/benchmark train`: speed of `config`'s train step (default: the demo config).

    Args:
        config: an ml_collections config; its classifier must load offline.
        args: overrides of `DEFAULTS`: steps, warmup_steps, matmul_size, matmul_repeats,
            variants ("no_xla,xla,bfloat16"), profile_steps (0 = no profile), profile_top,
            profile_variant ("no_xla" or "bfloat16").

    Returns:
        {"config", "machine", "flops_per_step", "flops_per_step_by_network",
         "matmul_peak_flops_per_second", "no_xla"/"xla": {steps_per_second,
         images_per_second, flops_per_second, fraction_of_matmul_peak, peak_rss_mb,
         first_step_seconds} (or {"error"}), "bfloat16": the same and
         fraction_of_bfloat16_matmul_peak, "profile"}.
    """
    from logit_inversion import training
    from logit_inversion.benchmarks import flops as flops_lib
    from logit_inversion.configs import demo

    overrides = args if isinstance(args, dict) else vars(args) if args is not None else {}
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown train benchmark options {sorted(unknown)}; known: "
                         f"{sorted(DEFAULTS)}. Received: args={args}")
    options = {**DEFAULTS, **overrides}
    variants = [v for v in str(options["variants"]).split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ValueError(f"variants must be a comma-separated subset of {', '.join(VARIANTS)}."
                         f" Received: variants={options['variants']!r}")
    if options["profile_variant"] not in PROFILE_VARIANTS:
        raise ValueError("profile_variant must be no_xla or bfloat16. Received: "
                         f"profile_variant={options['profile_variant']!r}")
    config = config or demo.get_config()
    load_before = os.getloadavg()
    peak_before = matmul_peak(options["matmul_size"], options["matmul_repeats"])

    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    # One trace of the plain step serves the FLOP count, its timing and the profile.
    from logit_inversion.training import cpu_bfloat16
    plain = tf.function(inverter.train_step)
    # The rewrite applies per call, to a separate instantiation of the same traced step.
    steps = {"no_xla": plain, "xla": tf.function(_named(inverter.train_step, XLA_STEP_NAME),
                                                  jit_compile=True),
             "bfloat16": cpu_bfloat16.scoped(plain)}
    counted = flops_lib.count_inverter(inverter, config, trace_batches=(config.batch_size,),
                                       step=steps["no_xla"])
    per_step = counted["flops"]["total"]
    batch = config.batch_size * config.d_steps
    data = {"image": tf.random.uniform((batch, config.resolution, config.resolution, 3), -1, 1)}

    timings = {}
    for name in variants:
        try:
            timings[name] = _time_variant(steps[name], data, options)
        except Exception as error:  # e.g. an op XLA cannot compile: report, keep going
            timings[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    peak_after = matmul_peak(options["matmul_size"], options["matmul_repeats"])
    peak = max(peak_before, peak_after)
    bf16_peak = (matmul_peak(options["matmul_size"], options["matmul_repeats"], "bfloat16")
                 if "bfloat16" in variants else None)
    for name, result in timings.items():
        if "steps_per_second" in result:
            rate = result["steps_per_second"]
            result.update({
                "steps_per_second": round(rate, 3), "images_per_second": round(rate * batch, 1),
                "flops_per_second": round(rate * per_step),
                "fraction_of_matmul_peak": round(rate * per_step / peak, 4)})
            if name == "bfloat16":
                result["fraction_of_bfloat16_matmul_peak"] = round(rate * per_step / bf16_peak, 4)
    if "steps_per_second" in timings.get("xla", {}):
        timings["xla"].update(_xla_compiles())
        if "steps_per_second" in timings.get("no_xla", {}):
            timings["xla"]["xla_vs_no_xla"] = round(
                timings["xla"]["steps_per_second"] / timings["no_xla"]["steps_per_second"], 3)
    profile, kinds = [], []
    if options["profile_steps"]:
        every_op = profile_ops(steps[options["profile_variant"]], data,
                               options["profile_steps"], None)
        profile = every_op[:options["profile_top"]]
        kinds = profile_kinds(every_op, options["profile_top"])
    return {
        "config": {"batch_size": config.batch_size, "d_steps": config.d_steps,
                   "global_batch": batch, "resolution": config.resolution,
                   "model": config.model.to_dict(), "classifier": config.classifier,
                   **{k: options[k] for k in ("steps", "warmup_steps")}},
        "machine": {"cpus": os.cpu_count(), "load_average_before": list(load_before),
                    "load_average_after": list(os.getloadavg()),
                    "tensorflow": tf.__version__,
                    "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())},
        "flops_per_step": per_step,
        "flops_per_step_by_network": counted["flops"],
        "matmul_peak_flops_per_second": {
            "size": options["matmul_size"], "before": round(peak_before),
            "after": round(peak_after), "used": round(peak),
            **({"bfloat16": round(bf16_peak)} if bf16_peak else {})},
        **timings,
        "profile": {"variant": options["profile_variant"], "steps": options["profile_steps"],
                    "top_ops": profile, "by_kind": kinds},
    }


def table(result):
    """Plain-text table of `run`'s result, one row per variant."""
    peak = result["matmul_peak_flops_per_second"]["used"]
    lines = [f"FLOPs per step: {result['flops_per_step'] / 1e9:.2f} G; "
             f"matmul peak ({result['matmul_peak_flops_per_second']['size']}², float32): "
             f"{peak / 1e9:.1f} GFLOP/s; load average before/after: "
             f"{result['machine']['load_average_before'][0]:.1f}/"
             f"{result['machine']['load_average_after'][0]:.1f}",
             f"{'variant':<8} {'steps/s':>8} {'images/s':>9} {'GFLOP/s':>8} "
             f"{'of peak':>8} {'RSS MB':>8} {'1st step s':>10}"]
    for name in VARIANTS:
        r = result.get(name)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"{name:<8} error: {r['error']}")
            continue
        lines.append(f"{name:<8} {r['steps_per_second']:>8.2f} {r['images_per_second']:>9.1f} "
                     f"{r['flops_per_second'] / 1e9:>8.1f} {r['fraction_of_matmul_peak']:>8.1%} "
                     f"{r['peak_rss_mb']:>8.0f} {r['first_step_seconds']:>10.1f}")
    xla = result.get("xla", {})
    if "xla_vs_no_xla" in xla:
        lines.append(f"xla: {xla['xla_vs_no_xla']:.2f}× plain TF's steps/s; compiled "
                     f"{xla.get('compiles')} time(s) over {result['config']['steps'] + 1 + result['config']['warmup_steps']} calls, "
                     f"{xla.get('constant_variable_reads')} variable reads as constants")
    bf16 = result.get("bfloat16", {})
    if "fraction_of_bfloat16_matmul_peak" in bf16:
        bf16_peak = result["matmul_peak_flops_per_second"]["bfloat16"]
        line = (f"bfloat16: {bf16['fraction_of_bfloat16_matmul_peak']:.1%} of the bfloat16 "
                f"matmul peak ({bf16_peak / 1e9:.1f} GFLOP/s)")
        plain = result.get("no_xla", {})
        if "steps_per_second" in plain:
            line += f"; {bf16['steps_per_second'] / plain['steps_per_second']:.2f}× plain TF"
        lines.append(line)
    ops = result["profile"]["top_ops"]
    if ops:
        lines.append(f"top ops ({result['profile']['variant']}, self time per step):")
        lines += [f"  {o['share']:>6.1%} {o['self_ms_per_step']:>9.2f} ms  {o['type']:<22} "
                  f"{o['operation']}" for o in ops]
        lines.append(f"op self time by kind ({result['profile']['variant']}, per step):")
        lines += [f"  {k['share']:>6.1%} {k['self_ms_per_step']:>9.2f} ms  {k['kind']}"
                  for k in result["profile"].get("by_kind", [])]
    return "\n".join(lines)

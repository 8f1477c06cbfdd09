"""The FLOP counter against hand counts, and the train/flops benchmarks' JSON."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from logit_inversion.benchmarks import flops, train
from logit_inversion.models.layers import SNConv2D, SNDense

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _graph_and_hlo(layer, x, backward):
    """FLOPs of `layer(x)` (and its input and weight gradients) by both counters."""
    layer(x)   # build

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(layer(x))
        return tape.gradient(y, [x, layer.kernel]) if backward else y

    graph = tf.function(step).get_concrete_function(tf.TensorSpec(x.shape)).graph
    counted = flops.graph_flops(graph, {"layer": layer.name})["layer"]["matmul"]
    hlo = tf.function(step, jit_compile=True).experimental_get_compiler_ir(x)(stage="hlo")
    return counted, flops.hlo_flops(hlo)


@pytest.mark.parametrize("backward", [False, True])
def test_conv_layer_matches_hand_count(backward):
    b, h, w, c_in, c_out, k = 8, 16, 16, 8, 16, 3
    hand = 2 * b * h * w * k * k * c_in * c_out          # 2 FLOPs per multiply-add
    if backward:
        hand *= 3                                        # + input grad + kernel grad
    graph_count, hlo_count = _graph_and_hlo(SNConv2D(c_out, k, name="conv"),
                                            tf.zeros((b, h, w, c_in)), backward)
    # The rest is spectral norm's power iteration on the kernel (< 0.5 % here).
    assert graph_count == pytest.approx(hand, rel=0.01)
    assert hlo_count == pytest.approx(hand, rel=0.01)


def test_dense_layer_matches_hand_count():
    b, n_in, n_out = 1024, 64, 32
    hand = 2 * b * n_in * n_out
    graph_count, hlo_count = _graph_and_hlo(SNDense(n_out, name="dense"),
                                            tf.zeros((b, n_in)), backward=False)
    assert graph_count == pytest.approx(hand, rel=0.01)
    assert hlo_count == pytest.approx(hand, rel=0.01)


def test_hlo_counter_reads_convolution_and_dot_lines():
    text = (
        "%c = f32[2,8,8,4]{3,2,1,0} convolution(f32[2,8,8,3]{3,2,1,0} %x, "
        "f32[3,3,3,4]{3,2,1,0} %k), window={size=3x3 pad=1_1x1_1}, "
        'dim_labels=b01f_01io->b01f, metadata={op_type="Conv2D" op_name="generator_1/c"}\n'
        "%d = f32[2,5]{1,0} dot(f32[2,7]{1,0} %a, f32[7,5]{1,0} %b), "
        'lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="disc/m"}\n')
    assert flops.hlo_flops(text) == 2 * 2 * 64 * 4 * 27 + 2 * 2 * 5 * 7
    assert flops.hlo_flops(text, {"G": "generator"}) == {"G": 2 * 2 * 64 * 4 * 27,
                                                         "other": 2 * 2 * 5 * 7}


def _built_and_counted(config):
    from logit_inversion import training
    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    return inverter, flops.count_inverter(inverter, config)


def test_step_count_adds_up_and_follows_the_step(tiny_config):
    tiny_config.batch_size = 4
    tiny_config.consistency_start = 0
    inverter, counted = _built_and_counted(tiny_config)
    assert counted["phase"] == "full"
    f = counted["flops"]
    assert f["total"] == f["G"] + f["D"] + f["Φ"] + f["other"]
    assert min(f["G"], f["D"], f["Φ"]) > 0
    # Φ sees the real images and the fakes; the consistency term back-propagates through it.
    assert tiny_config.consistency_weight > 0
    assert counted["phi"]["images_forward_per_step"] == 2 * 4
    assert counted["phi"]["images_backward_per_step"] == 4
    assert counted["params"]["Φ"] == 3 * 3 * 3 * 8 + 8 * 6   # the tiny classifier's weights
    assert counted["params"]["G"] == sum(
        int(tf.size(w)) for w in inverter.generator.trainable_weights)

    # Before the consistency term switches on, Φ sees the fakes only for the sampled agreement.
    tiny_config.consistency_start = 100
    tiny_config.train_agreement_every = 4
    _, counted = _built_and_counted(tiny_config)
    assert counted["phase"] == "before_consistency"
    assert counted["phi"]["images_forward_per_step"] == 4 + 4 / 4
    assert counted["phi"]["images_backward_per_step"] == 0
    assert counted["flops"]["Φ"] < f["Φ"]


# The same count as the phase before the consistency term (another branch to the same
# numbers); one more traced step.
@pytest.mark.slow
def test_hinge_only_step_count_samples_phi_for_the_agreement(tiny_config):
    # Hinge only: Φ(fakes) runs for the logged agreement alone, every 4th step here.
    tiny_config.batch_size = 4
    tiny_config.train_agreement_every = 4
    tiny_config.consistency_weight = 0.0
    tiny_config.consistency_start = 0
    _, counted = _built_and_counted(tiny_config)
    assert counted["phi"]["images_forward_per_step"] == 4 + 4 / 4
    assert counted["phi"]["images_backward_per_step"] == 0


@pytest.mark.slow
def test_step_count_is_affine_in_the_batch(tiny_config):
    # The tiny config inherits the demo's diversity term, whose batch // 2 second samples
    # make the count affine over even batches only.
    assert tiny_config.diversity_weight > 0
    tiny_config.batch_size = 8
    direct = flops.count_config(tiny_config)
    extrapolated = flops.count_config(tiny_config, trace_batches=(2, 4))
    assert extrapolated["flops"] == direct["flops"]
    assert extrapolated["phi"] == direct["phi"]
    with pytest.raises(ValueError, match=r"Received: trace_batches=\(1, 2\)"):
        flops.count_config(tiny_config, trace_batches=(1, 2))


@pytest.fixture(scope="module")
def train_result(tiny_classifier_path, shapes_data_dir):
    """One `train` benchmark run of the tiny config, both CPU variants and a profile, for the
    tests that read its JSON (each run traces and times the step again)."""
    from logit_inversion import testing
    config = testing.tiny_config(tiny_classifier_path, shapes_data_dir)
    result = train.run(config, {"steps": 2, "warmup_steps": 1, "matmul_size": 256,
                                "matmul_repeats": 1, "variants": "no_xla,bfloat16",
                                "profile_steps": 1, "profile_top": 3})
    return config, result


def test_train_benchmark_reports_documented_keys(train_result):
    config, result = train_result
    assert {"config", "machine", "flops_per_step", "flops_per_step_by_network",
            "matmul_peak_flops_per_second", "no_xla", "profile"} <= set(result)
    timing = result["no_xla"]
    assert {"steps_per_second", "images_per_second", "flops_per_second",
            "fraction_of_matmul_peak", "peak_rss_mb", "first_step_seconds"} <= set(timing)
    assert timing["images_per_second"] == pytest.approx(
        timing["steps_per_second"] * config.batch_size * config.d_steps, rel=0.01)
    assert timing["fraction_of_matmul_peak"] == pytest.approx(
        timing["flops_per_second"] / result["matmul_peak_flops_per_second"]["used"], rel=0.01)
    assert 0 < len(result["profile"]["top_ops"]) <= 3
    kinds = result["profile"]["by_kind"]
    assert 0 < len(kinds) <= 3
    assert [k["self_ms_per_step"] for k in kinds] == sorted(
        (k["self_ms_per_step"] for k in kinds), reverse=True)
    assert "no_xla" in train.table(result) and "by kind" in train.table(result)


def test_op_kinds_merge_convolutions_and_onednn_names():
    assert train.op_kind("_MklNativeConv2DBackpropInput") == train.op_kind("Conv2D")
    assert train.op_kind("_MklNativeFusedConv2D") == "Conv2D (all, with gradients)"
    assert train.op_kind("_MklMatMul") == "MatMul" and train.op_kind("Mul") == "Mul"
    rows = [{"type": "_MklNativeConv2D", "self_ms_per_step": 3.0},
            {"type": "Conv2DBackpropFilter", "self_ms_per_step": 1.0},
            {"type": "Mul", "self_ms_per_step": 2.0}, {"type": "Cast", "self_ms_per_step": 1.0}]
    assert train.profile_kinds(rows, top=2) == [
        {"kind": "Conv2D (all, with gradients)", "self_ms_per_step": 4.0, "share": 0.5714},
        {"kind": "Mul", "self_ms_per_step": 2.0, "share": 0.2857}]


def test_bfloat16_variant_reports_both_peaks(train_result):
    _, result = train_result
    peaks, timing = result["matmul_peak_flops_per_second"], result["bfloat16"]
    assert timing["fraction_of_matmul_peak"] == pytest.approx(
        timing["flops_per_second"] / peaks["used"], rel=0.01)
    assert timing["fraction_of_bfloat16_matmul_peak"] == pytest.approx(
        timing["flops_per_second"] / peaks["bfloat16"], rel=0.01)
    assert "bfloat16:" in train.table(result) and "× plain TF" in train.table(result)


def test_bad_options_fail_with_one_line():
    with pytest.raises(ValueError, match="Received: variants='gpu'"):
        train.run(None, {"variants": "gpu"})
    with pytest.raises(ValueError, match="Unknown train benchmark options"):
        train.run(None, {"step": 3})
    with pytest.raises(ValueError, match="Received: profile_variant='xla'"):
        train.run(None, {"profile_variant": "xla"})
    done = subprocess.run([sys.executable, os.path.join(_ROOT, "bin", "benchmark"), "nope"],
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(
        "bin/benchmark: error: unknown benchmark 'nope'")


def test_xla_compile_refuses_unknown_configs_and_objectives_in_one_line():
    from logit_inversion.benchmarks import xla_compile
    with pytest.raises(ValueError, match="Received: configs='imagenet32'"):
        xla_compile.run({"configs": "imagenet32"})
    with pytest.raises(ValueError, match="objectives='pixel'"):
        xla_compile.run({"objectives": "pixel"})

"""The LogitInverter's train step, EMA and frozen classifier."""

import keras
from keras import ops
import numpy as np
import pytest
import tensorflow as tf

from logit_inversion import training


@pytest.fixture
def inverter(tiny_config):
    tiny_config.ema_start = 0
    tiny_config.ema_decay = 0.5
    inv = training.build_inverter(tiny_config)
    training.compile_inverter(inv, tiny_config)
    return inv


def _batch(n=16, r=32, seed=0):
    return {"image": tf.random.stateless_uniform((n, r, r, 3), (seed, 1), -1.0, 1.0)}


def test_classifier_is_frozen_and_never_reaches_an_optimizer(inverter):
    # The tiny test classifier (logit_inversion.testing) keeps its weights in conv/dense.
    model_vars = [inverter.classifier.model.conv, inverter.classifier.model.dense]
    classifier_ids = {id(v) for v in model_vars}
    assert inverter.classifier.trainable_weights == []
    for opt in (inverter.g_optimizer, inverter.d_optimizer):
        assert not classifier_ids & {id(getattr(v, "value", v)) for v in opt.variables}
    before = [v.numpy() for v in model_vars]
    inverter.train_step(_batch())
    after = [v.numpy() for v in model_vars]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_train_step_updates_g_and_d_and_reports_finite_metrics(inverter):
    g0 = [w.numpy() for w in inverter.generator.trainable_weights]
    d0 = [w.numpy() for w in inverter.discriminator.trainable_weights]
    logs = inverter.train_step(_batch())
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "agreement"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert 0.0 <= float(logs["agreement"]) <= 1.0
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(g0, inverter.generator.trainable_weights))
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(d0, inverter.discriminator.trainable_weights))
    assert int(inverter.g_optimizer.iterations) == 1
    assert int(inverter.d_optimizer.iterations) == inverter.d_steps


def test_ema_follows_its_definition(inverter):
    ema_before = [w.numpy() for w in inverter.ema_generator.weights]
    inverter.train_step(_batch())
    # step counter is 1 after the step, decay 0.5: ema = 0.5 ema + 0.5 g
    for e0, e, g in zip(ema_before, inverter.ema_generator.weights, inverter.generator.weights):
        np.testing.assert_allclose(e.numpy(), 0.5 * e0 + 0.5 * g.numpy(), rtol=1e-5, atol=1e-6)


def test_call_and_generate(inverter):
    images = _batch(4)["image"]
    rec = inverter(images)
    assert tuple(rec.shape) == (4, 32, 32, 3)
    assert float(ops.max(ops.abs(rec))) <= 1.0
    logits = inverter.classifier(images)
    noise = inverter.sample_noise(4, seed=(3, 4))
    np.testing.assert_array_equal(inverter.generate(logits, noise), inverter.generate(logits, noise))
    with pytest.raises(ValueError, match="d_steps"):
        type(inverter)(inverter.classifier, inverter.generator, inverter.discriminator, d_steps=0)


def test_extra_losses_change_the_generator_update(tiny_config):
    results = []
    for weight in (0.0, 10.0):
        keras.utils.set_random_seed(0)
        tiny_config.pixel_weight = weight
        inv = training.build_inverter(tiny_config)
        training.compile_inverter(inv, tiny_config)
        keras.utils.set_random_seed(1)
        inv.train_step(_batch())
        results.append([w.numpy() for w in inv.generator.trainable_weights])
    # Adam's first step is about lr·sign(g) per weight, so a weight changes only where the
    # extra term flips its gradient's sign: look at every weight, not one layer's.
    assert any(not np.allclose(a, b) for a, b in zip(*results))


def test_no_hidden_optimizer_and_ema_generator_is_not_trainable(inverter):
    # Keras's default "rmsprop" would be built over every trainable variable in `fit`.
    assert inverter.optimizer is None
    with pytest.raises(ValueError, match="optimizer="):
        inverter.compile(inverter.g_optimizer, inverter.d_optimizer, optimizer="adam")
    # What `fit` builds around the step is under test, not the step (`training.train` runs
    # the real one): a one-op step spares tracing it.
    inverter.train_step = lambda data: {"g_loss": tf.reduce_mean(data["image"])}
    inverter.fit(tf.data.Dataset.from_tensors(_batch()).repeat(), steps_per_epoch=1, verbose=0)
    assert inverter.optimizer is None
    assert inverter.ema_generator.trainable_weights == []
    ema_ids = {id(w) for w in inverter.ema_generator.weights}
    assert len(ema_ids) == len(inverter.generator.weights)
    assert not ema_ids & {id(w) for w in inverter.trainable_weights}
    # Exactly G's and D's weights train.
    expected = {id(w) for w in inverter.generator.trainable_weights
                + inverter.discriminator.trainable_weights}
    assert {id(w) for w in inverter.trainable_weights} == expected


def test_checkpoints_restore_the_non_trainable_ema_generator(inverter, tiny_config, tmp_path):
    from logit_inversion.training import checkpoints
    inverter.train_step(_batch())
    manager = checkpoints.make_manager(inverter, str(tmp_path), 1)
    path = manager.save()
    names = {name for name, _ in tf.train.list_variables(path)}
    # Keyed by variable path ("/" is written as ".S"): the blocks' statistics are there.
    assert any(name.startswith("ema_generator/") and "block0.Sbn1.Smoving_mean" in name
               for name in names)
    fresh = training.build_inverter(tiny_config)
    training.compile_inverter(fresh, tiny_config)
    checkpoints.make_manager(fresh, str(tmp_path), 1).checkpoint.restore(path).expect_partial()
    for a, b in zip(inverter.ema_generator.weights, fresh.ema_generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_training_noise_follows_seed_and_step(tiny_config):
    def losses(seed, steps=1):
        keras.utils.set_random_seed(0)       # same initial weights
        tiny_config.seed = seed
        inv = training.build_inverter(tiny_config)
        training.compile_inverter(inv, tiny_config)
        keras.utils.set_random_seed(123)     # stateful RNG must not matter
        return [float(inv.train_step(_batch(seed=s))["g_loss"]) for s in range(steps)]
    assert losses(0) == losses(0)
    assert losses(0) != losses(1)


def test_held_out_evaluation_repeats_and_reports_every_tracker(inverter):
    dataset = tf.data.Dataset.from_tensor_slices(_batch(10)["image"]).batch(4)
    first = inverter.evaluate(dataset, verbose=0, return_dict=True)
    assert set(first) == {"d_loss", "g_loss", "d_real", "d_fake", "agreement"}
    assert first == inverter.evaluate(dataset, verbose=0, return_dict=True)
    # Per-example means: agreement over 10 images is a multiple of 1/10.
    assert round(first["agreement"] * 10, 4) == round(first["agreement"] * 10)


# The last case passes through both regimes of the first and third, so those two are left to
# the slow suite (each case traces and runs its own train step).
@pytest.mark.parametrize("consistency_weight, start, every, counted", [
    (0.0, 0, 3, 2),   # hinge only: Φ(fakes) is run at steps 0 and 3 of 0…5
    pytest.param(0.0, 0, 1, 6, marks=pytest.mark.slow),
    pytest.param(0.5, 0, 3, 6,   # the consistency loss runs Φ(fakes) anyway: every step
                 marks=pytest.mark.slow),
    (0.5, 4, 3, 4),   # ... once it is on (steps 4, 5); before it, on the schedule (0, 3)
])
def test_training_agreement_is_sampled_only_when_no_loss_needs_it(
        tiny_config, consistency_weight, start, every, counted):
    tiny_config.consistency_weight = consistency_weight
    tiny_config.consistency_start = start
    tiny_config.train_agreement_every = every
    inv = training.build_inverter(tiny_config)
    training.compile_inverter(inv, tiny_config)
    step = tf.function(inv.train_step)
    for i in range(6):
        logs = step(_batch(seed=i))
    assert float(inv.trackers["agreement"].count) == counted
    assert float(inv.trackers["d_loss"].count) == 6
    assert 0.0 <= float(logs["agreement"]) <= 1.0


def test_agreement_every_must_be_a_positive_integer(tiny_config):
    tiny_config.train_agreement_every = 0
    with pytest.raises(ValueError, match="agreement_every=0"):
        training.build_inverter(tiny_config)


def _first_update(tiny_config, part, **overrides):
    """The `part` ("generator"/"discriminator") weights after one train step from seed 0."""
    for key, value in overrides.items():
        setattr(tiny_config, key, value)
    keras.utils.set_random_seed(0)
    inv = training.build_inverter(tiny_config)
    training.compile_inverter(inv, tiny_config)
    inv.train_step(_batch())
    return [w.numpy() for w in getattr(inv, part).trainable_weights], inv


def test_consistency_term_waits_for_consistency_start(tiny_config):
    plain, _ = _first_update(tiny_config, "generator", consistency_weight=0.0)
    waiting, _ = _first_update(tiny_config, "generator", consistency_weight=5.0,
                               consistency_start=2)
    at_once, _ = _first_update(tiny_config, "generator", consistency_weight=5.0,
                               consistency_start=0)
    # Before its start the term adds nothing; from it on it changes G's update.
    for a, b in zip(plain, waiting):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(plain, at_once))


def _images_through_phi(inv, batch):
    """How many images one eager train step sends through Φ."""
    seen = []
    inner = inv.classifier.call

    def counting(images, *args, **kwargs):
        seen.append(int(images.shape[0]))
        return inner(images, *args, **kwargs)

    inv.classifier.call = counting
    try:
        inv.train_step(batch)
    finally:
        inv.classifier.call = inner
    return sum(seen)


def test_phi_sees_no_fakes_before_consistency_start(tiny_config):
    # Multiplying the term by 0 would still pay for Φ's forward and backward passes on the
    # fakes; before its start the step must run Φ on the real images only.
    tiny_config.d_steps = 1
    tiny_config.train_agreement_every = 1000     # step 1 is not a measuring step
    _, inv = _first_update(tiny_config, "generator", consistency_weight=1.0,
                           consistency_start=3)
    batch = _batch(16)
    assert _images_through_phi(inv, batch) == 16              # step 1: off
    inv.train_step(batch)                                     # step 2
    assert _images_through_phi(inv, batch) == 16 + 16         # step 3: on, Φ(fakes) too


def test_r1_penalty_is_the_squared_input_gradient_of_d_on_reals(tiny_config):
    plain, _ = _first_update(tiny_config, "discriminator", r1_weight=0.0)
    penalised, inv = _first_update(tiny_config, "discriminator", r1_weight=10.0)
    assert any(not np.allclose(a, b) for a, b in zip(plain, penalised))
    # The penalty is E‖∇ₓD‖² on the images it is given, by finite differences along a
    # random direction: ⟨∇ₓD, v⟩ ≈ (D(x + hv) − D(x − hv)) / 2h for each image.
    images = _batch(4)["image"]
    logits = inv.classifier(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(inv.discriminator(images, logits, training=False))
    grad = tape.gradient(total, images).numpy()
    expected = float(np.mean(np.sum(grad ** 2, axis=(1, 2, 3))))
    assert float(inv._real_gradient_norm(images, logits)) == pytest.approx(expected, rel=1e-4)
    v = tf.random.stateless_normal(images.shape, (5, 6))
    v = v / tf.norm(tf.reshape(v, (4, -1)), axis=1)[:, None, None, None]  # unit per image
    h = 1e-3
    diff = (inv.discriminator(images + h * v, logits) - inv.discriminator(images - h * v, logits))
    directional = np.sum(grad * v.numpy(), axis=(1, 2, 3))
    # ReLU kinks within ±h bend the finite difference a little; a wrong gradient is off by
    # far more than this.
    np.testing.assert_allclose(diff.numpy() / (2 * h), directional, rtol=0.1, atol=5e-3)

"""A resumed run continues the data stream instead of replaying it from the start."""

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion import training
from logit_inversion.data import pipeline
from logit_inversion.training import trainer


def _first_batches(config, start_step, n=2):
    it = iter(trainer._train_dataset(config, tf.distribute.get_strategy(), start_step))
    return np.stack([next(it).numpy() for _ in range(n)])


def test_first_batch_depends_on_the_resume_step(tiny_config):
    fresh = _first_batches(tiny_config, 0)
    resumed = _first_batches(tiny_config, 4)
    per_step = tiny_config.batch_size * tiny_config.d_steps
    assert fresh.shape == (2, per_step, 32, 32, 3)
    assert not np.array_equal(fresh[0], resumed[0])
    np.testing.assert_array_equal(resumed, _first_batches(tiny_config, 4))
    np.testing.assert_array_equal(fresh, _first_batches(tiny_config, 0))
    assert not np.array_equal(resumed[0], _first_batches(tiny_config, 6)[0])


def test_stream_seed_is_a_pure_function_of_seed_and_step():
    assert pipeline.stream_seed(7, 0) == 7                  # a fresh run's order is unchanged
    seeds = {pipeline.stream_seed(seed, step) for seed in range(3) for step in range(1, 50)}
    assert len(seeds) == 3 * 49
    assert pipeline.stream_seed(1, 10) == pipeline.stream_seed(1, 10)


# The same end-to-end path (train, resume at step 4, the stream seeds of both runs) runs in the
# fast suite: test_training.py::test_train_writes_outputs_and_resumes.
@pytest.mark.slow
def test_train_reads_the_stream_of_its_resume_step(tiny_config, tmp_path, training_stream_seeds):
    seeds = training_stream_seeds
    tiny_config.standing_stats_batches = 0
    workdir = str(tmp_path / "run")
    training.train(tiny_config, workdir, verbose=0)
    tiny_config.num_steps = 6
    training.train(tiny_config, workdir, verbose=0)
    assert seeds == [pipeline.stream_seed(tiny_config.seed, 0),
                     pipeline.stream_seed(tiny_config.seed, 4)]
    assert seeds[0] != seeds[1]

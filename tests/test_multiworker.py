"""Two real `bin/train --strategy=multi_worker_mirrored` processes on 127.0.0.1.

One scenario covers the issue's checks: start both workers, SIGKILL the chief once it has
written a checkpoint, stop the orphaned worker, restart both with the same commands; they
resume from the chief's last checkpoint, both finish with identical weights, and the workdir
holds one consistent set of checkpoints and outputs that only the chief wrote.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 12

pytestmark = pytest.mark.processes


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch(workdir, classifier, data_dir, ports, logdir, attempt):
    """Starts worker 0 (the chief) and worker 1; returns [(process, log path)]."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    cmd = [sys.executable, os.path.join(ROOT, "bin", "train"), f"--workdir={workdir}",
           "--strategy=multi_worker_mirrored",
           f"--config.classifier={classifier}", f"--config.data_dir={data_dir}",
           "--config.model.ch=4", "--config.model.noise_dim=16", "--config.model.embed_dim=8",
           "--config.batch_size=8", "--config.d_steps=1", f"--config.num_steps={NUM_STEPS}",
           "--config.checkpoint_every=2", "--config.keep_checkpoints=2",
           "--config.steps_per_execution=1",
           "--config.eval_examples=16", "--config.num_images=4", "--config.ema_start=0",
           "--config.standing_stats_batches=2", "--config.preflight.enabled=False"]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        log = os.path.join(logdir, f"attempt{attempt}-worker{index}.log")
        with open(log, "w") as f:
            procs.append((subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env),
                          log))
    return procs


def _read(log):
    with open(log) as f:
        return f.read()


def _latest_step(workdir):
    index = os.path.join(workdir, "checkpoints", "checkpoint")
    if not os.path.exists(index):
        return None
    with open(index) as f:
        return int(re.search(r'ckpt-(\d+)"', f.readline()).group(1))


def test_two_workers_checkpoint_once_resume_after_sigkill_and_agree(
        tiny_classifier_path, shapes_data_dir, tmp_path):
    workdir, logdir = str(tmp_path / "run"), str(tmp_path)
    start = time.perf_counter()

    # Attempt 1: kill the chief as soon as it has a checkpoint, mid-run.
    procs = _launch(workdir, tiny_classifier_path, shapes_data_dir, _free_ports(2), logdir, 1)
    (chief, chief_log), (worker, worker_log) = procs
    deadline = time.time() + 1800
    while _latest_step(workdir) is None and chief.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    chief.send_signal(signal.SIGKILL)
    chief.wait()
    # The orphaned worker blocks in a collective with a dead peer; stop it too.
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    saved = _latest_step(workdir)
    assert saved is not None, _read(chief_log)[-3000:]
    assert 2 <= saved < NUM_STEPS, f"the chief was not killed mid-run (step {saved})"
    assert not os.path.exists(os.path.join(workdir, "metrics.json"))

    # Attempt 2: the same commands (new ports: the old ones may linger in TIME_WAIT).
    procs = _launch(workdir, tiny_classifier_path, shapes_data_dir, _free_ports(2), logdir, 2)
    for proc, log in procs:
        assert proc.wait(timeout=1800) == 0, _read(log)[-3000:]
    wall = time.perf_counter() - start
    outs = [_read(log) for _, log in procs]
    for task, out in enumerate(outs):
        assert f"from step {saved} to {NUM_STEPS} on 2 replica(s) [worker:{task}]" in out, out
        assert "ran out of data" not in out
    digests = [re.search(r"finished at step (\d+) \[worker:\d\]; weights sha256 (\w+)", out)
               .groups() for out in outs]
    assert digests[0] == digests[1] == (str(NUM_STEPS), digests[0][1])

    # One consistent set of outputs, written by the chief alone.
    assert sorted(os.listdir(workdir)) == [
        "checkpoints", "config.json", "metrics.json", "reconstructions.png", "tensorboard"]
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["steps"] == NUM_STEPS and metrics["weights_sha256"] == digests[0][1]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        "checkpoint", f"ckpt-{NUM_STEPS - 2}.data-00000-of-00001", f"ckpt-{NUM_STEPS - 2}.index",
        f"ckpt-{NUM_STEPS}.data-00000-of-00001", f"ckpt-{NUM_STEPS}.index"]
    assert _latest_step(workdir) == NUM_STEPS
    # One event file per chief launch; the worker wrote none.
    assert len(os.listdir(os.path.join(workdir, "tensorboard"))) == 2
    print(f"two-worker run: {wall:.1f} s wall, killed the chief after step {saved}, "
          f"resumed both from it; workdir: {sorted(os.listdir(workdir))}")

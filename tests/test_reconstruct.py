"""bin/reconstruct: a tiny split round-tripped through both formats, resumed, read back."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from logit_inversion.data.pipeline import build_dataset
from logit_inversion.serving import reconstructions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLIT = "test[:12]"


@pytest.fixture(scope="module")
def workdir(tiny_inverter):
    """The session's untrained tiny inverter as a bin/train workdir: what is reconstructed
    does not matter here, only that every record is written and read back. No standing
    statistics: they are drawn with fresh noise at each restore, which would make two loads
    of the same workdir differ slightly."""
    return tiny_inverter.fixed_stats_workdir


@pytest.fixture(scope="module")
def model(workdir):
    return reconstructions.load_model(workdir)


def _read_back(source, split, data_dir=None):
    ds = build_dataset(source, split, resolution=32, batch_size=1, data_dir=data_dir,
                       training=False)
    return [(ex["image"].numpy()[0], int(ex["label"].numpy()[0])) for ex in ds]


def _source_labels(shapes_data_dir):
    return [label for _, label in _read_back("shapes", SPLIT, shapes_data_dir)]


@pytest.fixture(scope="module")
def folder_output(model, shapes_data_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("folder") / "out")
    summary = reconstructions.write_reconstructions(
        model, "shapes", SPLIT, out, num_samples=2, data_dir=shapes_data_dir, batch_size=5,
        progress=False)
    return out, summary


def test_folder_round_trip(folder_output, shapes_data_dir):
    out, summary = folder_output
    assert summary["examples"] == 24 and summary["generated_this_run"] == 24
    back = _read_back(out, "train")
    assert len(back) == 24
    labels = _source_labels(shapes_data_dir)
    # Folder labels read back are the source labels (each image twice: two samples).
    assert sorted(label for _, label in back) == sorted(labels * 2)
    pngs = sorted(p for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))
                  for p in [os.path.join(out, d, f) for f in os.listdir(os.path.join(out, d))])
    record = reconstructions.read_png_record(pngs[0])
    assert set(record) >= {"index", "label", "sample", "seed", "logits", "source_top1",
                           "reconstruction_top1"}
    assert record["label"] == labels[record["index"]] and len(record["logits"]) == 6
    assert record["seed"] == record["index"] * 2 + record["sample"]


def test_folder_resumes_only_missing_chunks(folder_output, model, shapes_data_dir):
    out, _ = folder_output
    pngs = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(out) for f in fs
                  if f.endswith(".png"))
    victim = next(p for p in pngs if os.path.basename(p).startswith("000011_"))  # chunk 2
    before = reconstructions.read_png_record(victim)
    os.remove(victim)
    os.remove(os.path.join(out, reconstructions.SUMMARY_FILENAME))
    summary = reconstructions.write_reconstructions(
        model, "shapes", SPLIT, out, num_samples=2, data_dir=shapes_data_dir, batch_size=5,
        progress=False)
    # Chunk 2 holds source images 10 and 11: 4 reconstructions made again, 20 kept.
    assert (summary["generated_this_run"], summary["skipped_this_run"]) == (4, 20)
    after = reconstructions.read_png_record(victim)
    assert after["seed"] == before["seed"]
    np.testing.assert_allclose(after["logits"], before["logits"], atol=1e-5)
    # A finished output with other settings is refused, in one line, before any write.
    with pytest.raises(ValueError, match=r"Received: num_samples=3$"):
        reconstructions.write_reconstructions(
            model, "shapes", SPLIT, out, num_samples=3, data_dir=shapes_data_dir,
            batch_size=5, progress=False)


def test_tfds_round_trip_after_interruption(model, shapes_data_dir, tmp_path, monkeypatch,
                                            folder_output):
    out = str(tmp_path / "tfds")
    kwargs = dict(format="tfds", num_samples=2, data_dir=shapes_data_dir, batch_size=5,
                  progress=False, name="shapes_recon")

    def crash(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(reconstructions, "_store_tfds", crash)
    with pytest.raises(KeyboardInterrupt):
        reconstructions.write_reconstructions(model, "shapes", SPLIT, out, **kwargs)
    monkeypatch.undo()
    summary = reconstructions.write_reconstructions(model, "shapes", SPLIT, out, **kwargs)
    assert summary["generated_this_run"] == 0 and summary["skipped_this_run"] == 24
    assert not os.path.exists(os.path.join(out, reconstructions._STAGING))

    back = _read_back("shapes_recon", "test", out)
    assert [label for _, label in back[::2]] == _source_labels(shapes_data_dir)
    examples = list(tfds.load("shapes_recon", split="test", data_dir=out).as_numpy_iterator())
    assert [int(e["index"]) for e in examples] == [i // 2 for i in range(24)]
    # Same model, same seeds: the folder output holds the same logits and top-1.
    folder, _ = folder_output
    png = next(os.path.join(dp, f) for dp, _, fs in os.walk(folder) for f in fs
               if f == "000003_1.png")
    record = reconstructions.read_png_record(png)
    np.testing.assert_allclose(examples[7]["logits"], record["logits"], atol=1e-5)
    assert int(examples[7]["reconstruction_top1"]) == record["reconstruction_top1"]
    assert np.abs(examples[7]["image"].astype(int) - back[7][0] * 127.5 - 127.5).max() <= 1


@pytest.mark.slow  # exporting takes ~30 s of CPU
def test_export_as_model(model, shapes_data_dir, tmp_path, folder_output):
    from logit_inversion.serving.export import export_inverter

    export = export_inverter(model.inverter, str(tmp_path / "export"))
    out = str(tmp_path / "from_export")
    summary = reconstructions.write_reconstructions(
        os.path.dirname(export), "shapes", "test[:4]", out, num_samples=2,
        data_dir=shapes_data_dir, batch_size=4, progress=False)
    assert summary["examples"] == 8
    folder, _ = folder_output
    for name in ("000002_1.png", "000003_0.png"):
        mine = next(os.path.join(dp, name) for dp, _, fs in os.walk(out) if name in fs)
        theirs = next(os.path.join(dp, name) for dp, _, fs in os.walk(folder) if name in fs)
        a, b = map(reconstructions.read_png_record, (mine, theirs))
        np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-3)


def test_bad_arguments(model, tmp_path):
    out = tmp_path / "never"
    for kwargs, message in (({"format": "zip"}, "Received: format=zip"),
                            ({"num_samples": 0}, "Received: num_samples=0")):
        with pytest.raises(ValueError, match=message):
            reconstructions.write_reconstructions(model, "shapes", "test", str(out), **kwargs)
    assert not out.exists()


@pytest.mark.processes
def test_bin_reconstruct_refuses_a_folder_that_is_no_model_in_one_line(tmp_path):
    out = tmp_path / "never"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", "reconstruct"), f"--model={tmp_path}",
         f"--output={out}"], capture_output=True, text=True)
    assert result.returncode != 0 and not out.exists()
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bin/reconstruct: error: --model must be") and "Received: model=" in last

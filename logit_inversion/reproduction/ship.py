"""`metadata.json` of a shipped inverter: how it was made and how good it was when made.

A model under `savedmodels/` must say which command produced it; this records the training
command (from the reproduction's stage history when there is one), the step count, the wall
time and the held-out agreement that training measured, next to the export.

  python -m logit_inversion.reproduction.ship --workdir=runs/reproduce/inverters/X \
      --output=savedmodels/inverter_X --root=runs/reproduce --stage=invert_X
"""

import argparse
import json
import os
import shlex
import sys

from logit_inversion import files

_FROM_METRICS = ("steps", "agreement", "agreement_without_standing_stats", "eval_examples",
                 "eval_split", "classifier", "dataset", "steps_per_second",
                 "train_seconds_this_run", "weights_sha256", "worst_class",
                 "worst_class_agreement", "epsilon_diversity")
_FROM_CONFIG = ("batch_size", "num_steps", "consistency_weight", "diversity_weight", "g_lr",
                "d_lr", "ema_decay", "model", "seed")


def metadata(workdir, root=None, stage=None, export_command=None):
    """The metadata of the inverter trained in `workdir` (raises ValueError if untrained)."""
    metrics_path = os.path.join(workdir, "metrics.json")
    if not os.path.exists(metrics_path):
        raise ValueError(f"{workdir} has no metrics.json: training has not finished there. "
                         f"Received: workdir={workdir}")
    metrics = json.loads(files.read_text(metrics_path))
    config = json.loads(files.read_text(os.path.join(workdir, "config.json")))
    out = {key: metrics[key] for key in _FROM_METRICS if key in metrics}
    out["config"] = {key: config[key] for key in _FROM_CONFIG if key in config}
    record = _last_record(root, stage) if root and stage else None
    if record:
        out["command"] = portable(record["commands"][0])
        out["wall_seconds"] = record["seconds"]
        out["finished_utc"] = record.get("finished_utc")
    if export_command:
        out["export_command"] = portable(export_command)
    return out


def portable(command, repo=None):
    """`command` as anyone can rerun it from a clone: the interpreter as `python`, paths
    inside the repository relative to it (the stages record absolute ones)."""
    repo = os.path.abspath(repo or os.getcwd()).rstrip("/") + "/"
    words = shlex.split(command)
    if words and os.path.basename(words[0]).startswith("python"):
        words[0] = "python"
    return shlex.join(word.replace(repo, "") for word in words)


def _last_record(root, stage):
    path = os.path.join(root, "stages.json")
    if not os.path.exists(path):
        return None
    records = [r for r in json.loads(files.read_text(path)) if r["stage"] == stage]
    return records[-1] if records else None


def write(output, data):
    files.write_atomic(os.path.join(output, "metadata.json"), json.dumps(data, indent=2) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--output", required=True, help="the exported model folder")
    parser.add_argument("--root", default=None, help="the reproduction root (stages.json)")
    parser.add_argument("--stage", default=None, help="the stage that trained the inverter")
    parser.add_argument("--export_command", default=None)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.output):
        sys.exit(f"ship: error: the export folder does not exist; run bin/export first. "
                 f"Received: output={args.output}")
    try:
        data = metadata(args.workdir, args.root, args.stage, args.export_command)
    except ValueError as e:
        sys.exit(f"ship: error: {e}")
    write(args.output, data)
    print(os.path.join(args.output, "metadata.json"))


if __name__ == "__main__":
    main()

"""The reproduction at 32 px as a list of stages, each a few shell commands with the files it
leaves behind; `run` skips a stage whose outputs all exist, so an interrupted reproduction
resumes where it stopped (each command is itself resumable: `bin/train` restarts from its
newest checkpoint).

Every stage is an ordinary command of this package, so anyone can run one by hand. The
wall time of each stage that ran is appended to `<root>/stages.json`.
"""

import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import time

from logit_inversion import files

CIFAR_CONFIG = "logit_inversion/configs/cifar10_cpu.py"
DNB_CONFIG = "logit_inversion/configs/dosovitskiy_brox.py"
DEMO_CONFIG = "logit_inversion/configs/demo.py"
# The shapes inverters (and the controls below) use the demo recipe in float32, so a stage's
# numbers do not depend on whether the CPU has bfloat16 units.
SHAPES_INVERTER = [f"--config={DEMO_CONFIG}", "--config.cpu_bfloat16=off"]
# Same recipe as the shipped savedmodels/shapes_cnn (its metadata.json), one thing changed.
SHAPES_CLASSIFIER = ["--dataset=shapes", "--epochs=8"]
VARIANTS = {"shapes_wide": ["--width=64"], "shapes_adam": ["--optimizer=adam"]}
# Inverters shipped in savedmodels/ (their export is committed).
SHIPPED = ("cifar10_standard", "cifar10_robust")
# The factor audit's controls on the embedded data: the same demo recipe inverting a classifier
# whose logits carry the position (shape x quadrant, the positive control) and the shipped
# `shapes` one, whose logits keep almost nothing but the shape (the negative control;
# docs/classifiers.md gives each one's linear-probe R² per factor). Role -> (classifier, the
# export's name in savedmodels/).
CONTROL_INVERTER = SHAPES_INVERTER
CONTROLS = {"positive": ("shapes_quadrant", "inverter_shapes_quadrant"),
            "negative": ("shapes", "inverter_shapes_cnn")}
# Images per analysis (the adversarial experiment attacks the first 64 of them; the
# misclassified scan and the factors take 1,000). The default 64 left the noise verdict on
# six or so images per class.
ANALYSIS_IMAGES = 256
# The classifier that judges each inverter's wrong-logit reconstructions beside Φ (Φ alone is
# circular: the inverter was trained to satisfy it): another shipped classifier of the same
# classes, trained another way.
SECOND_CLASSIFIER = {"cifar10_standard": "cifar10_robust", "cifar10_robust": "cifar10_standard",
                     "shapes": "shapes_robust", "shapes_robust": "shapes"}


@dataclasses.dataclass
class Stage:
    name: str
    description: str
    commands: list
    outputs: list

    def done(self):
        return all(os.path.exists(path) for path in self.outputs)


def _inverters(root, data_dir):
    """(name, classifier, extra bin/train flags) of every inverter the reproduction trains."""
    cifar = [f"--config={CIFAR_CONFIG}", f"--config.data_dir={data_dir}"]
    shapes = [(name, os.path.join(root, "classifiers", name), SHAPES_INVERTER)
              for name in VARIANTS]
    return ([("cifar10_standard", "cifar10_standard", cifar),
             ("cifar10_robust", "cifar10_robust", cifar),
             ("shapes_standard", "shapes", SHAPES_INVERTER),
             ("shapes_robust", "shapes_robust", SHAPES_INVERTER)] + shapes)


def stages(root="runs/reproduce", data_dir="../shared/data/tfds", python=None):
    """The stages in order. `python` runs the `bin/` scripts (default: this interpreter)."""
    python = python or sys.executable
    out = []
    for name, flags in VARIANTS.items():
        path = os.path.join(root, "classifiers", name)
        out.append(Stage(
            f"classifier_{name}", f"a shapes classifier differing from shapes_cnn only by "
            f"{' '.join(flags)}",
            [[python, "bin/train_classifier", *SHAPES_CLASSIFIER, *flags, f"--output={path}"]],
            [os.path.join(path, "metadata.json")]))
    for name, classifier, flags in _inverters(root, data_dir):
        workdir = os.path.join(root, "inverters", name)
        dnb = os.path.join(root, "dnb", name)
        cifar = name.startswith("cifar10")
        dataset = ["--config.dataset=cifar10", f"--config.data_dir={data_dir}"] if cifar else []
        eval_data = ["--dataset=cifar10", f"--data_dir={data_dir}"] if cifar else []
        out.append(Stage(
            f"invert_{name}", f"inverter of {classifier}",
            [[python, "bin/train", *flags, f"--config.classifier={classifier}",
              f"--workdir={workdir}"]],
            [os.path.join(workdir, "metrics.json")]))
        model = workdir
        if name in SHIPPED:
            # What is shipped is what is evaluated: the export, not the workdir it came
            # from, so a fresh checkout measures it without retraining.
            model = os.path.join("savedmodels", f"inverter_{name}")
            out.append(_export_stage(name, workdir, model, root, python))
        out.append(Stage(
            f"dnb_{name}", f"Dosovitskiy & Brox decoder of {classifier}",
            [[python, "bin/train", f"--config={DNB_CONFIG}", *dataset,
              f"--config.classifier={classifier}", f"--workdir={dnb}"]],
            [os.path.join(dnb, "metrics.json")]))
        evaluation = os.path.join(root, "evaluation", name)
        out.append(Stage(
            f"evaluate_{name}", f"{name} next to both baselines, 1,000 test images",
            [[python, "bin/evaluate", f"--model={model}", "--model=optimize:steps=100",
              f"--model={dnb}", *eval_data, "--num_images=1000", f"--output={evaluation}"]],
            [os.path.join(evaluation, "metrics.json")]))
        analysis = os.path.join(root, "analysis", name)
        out.append(Stage(
            f"analyze_{name}", f"every bin/analyze experiment on {name}, "
            f"{ANALYSIS_IMAGES} test images",
            [[python, "bin/analyze", f"--model={model}", *eval_data, "--experiment=all",
              f"--num_images={ANALYSIS_IMAGES}",
              f"--second_classifier={SECOND_CLASSIFIER.get(classifier, 'shapes_robust')}",
              f"--output_dir={analysis}"]],
            [os.path.join(analysis, "index.html")]))
    return (out + [_compare_stage(root, data_dir, python)] + _hinge_stages(root, data_dir, python)
            + _control_stages(root, python))


def _compare_stage(root, data_dir, python):
    """Both shipped CIFAR-10 inverters on the same images and noise, each read by its own
    classifier (the figure of `docs/analysis.md` that puts them side by side)."""
    analysis = os.path.join(root, "analysis", "compare_cifar10")
    models = [f"--model={os.path.join('savedmodels', f'inverter_{name}')}" for name in SHIPPED]
    return Stage(
        "compare_cifar10", "the shipped CIFAR-10 pair on the same images and noise",
        [[python, "bin/analyze", *models, "--dataset=cifar10", f"--data_dir={data_dir}",
          "--experiment=compare", f"--num_images={ANALYSIS_IMAGES}",
          f"--output_dir={analysis}"]],
        [os.path.join(analysis, "compare.png")])


def _export_stage(name, workdir, export, root, python, stage=None, train_stage=None):
    """Stage `stage` (default `export_<name>`): export `workdir` to `export` and write its
    metadata.json with the command of `train_stage` (default `invert_<name>`)."""
    export_command = [python, "bin/export", f"--workdir={workdir}", f"--output={export}"]
    return Stage(
        stage or f"export_{name}", f"ship the {name} inverter",
        [export_command,
         [python, "-m", "logit_inversion.reproduction.ship", f"--workdir={workdir}",
          f"--output={export}", f"--root={root}", f"--stage={train_stage or f'invert_{name}'}",
          f"--export_command={shlex.join(export_command)}"]],
        [os.path.join(export, "1", "saved_model.pb"), os.path.join(export, "metadata.json")])


def _hinge_stages(root, data_dir, python):
    """The CIFAR pair again with the paper's pure hinge objective (neither the consistency nor
    the diversity term): the main pair uses both, so the robust-vs-standard comparison is also
    reported without them."""
    out = []
    for classifier in ("cifar10_standard", "cifar10_robust"):
        name = f"{classifier}_hinge"
        workdir = os.path.join(root, "inverters", name)
        evaluation = os.path.join(root, "evaluation", name)
        out.append(Stage(
            f"invert_{name}", f"inverter of {classifier}, hinge loss only",
            [[python, "bin/train", f"--config={CIFAR_CONFIG}", f"--config.data_dir={data_dir}",
              "--config.consistency_weight=0", "--config.diversity_weight=0",
              f"--config.classifier={classifier}",
              f"--workdir={workdir}"]],
            [os.path.join(workdir, "metrics.json")]))
        out.append(Stage(
            f"evaluate_{name}", f"{name} alone, 1,000 test images",
            [[python, "bin/evaluate", f"--model={workdir}", "--dataset=cifar10",
              f"--data_dir={data_dir}", "--num_images=1000", f"--output={evaluation}"]],
            [os.path.join(evaluation, "metrics.json")]))
    return out


def _control_stages(root, python):
    """Train, ship and audit (`bin/analyze --experiment=factors`, 1,000 test images) the
    inverter of each `CONTROLS` classifier: `--only=control_positive` runs the positive
    control's three stages, `--only=control` both controls'."""
    out = []
    for role, (classifier, export_name) in CONTROLS.items():
        name = f"control_{role}"
        workdir = os.path.join(root, "controls", classifier)
        export = os.path.join("savedmodels", export_name)
        analysis = os.path.join(root, "analysis", name)
        out.append(Stage(
            f"{name}_invert", f"demo-recipe inverter of {classifier}, the {role} control",
            [[python, "bin/train", *CONTROL_INVERTER, f"--config.classifier={classifier}",
              f"--workdir={workdir}"]],
            [os.path.join(workdir, "metrics.json")]))
        out.append(_export_stage(name, workdir, export, root, python,
                                 stage=f"{name}_export", train_stage=f"{name}_invert"))
        out.append(Stage(
            f"{name}_factors", f"which shapes factors the {classifier} inverter draws back",
            [[python, "bin/analyze", f"--model={export}", "--experiment=factors",
              f"--output_dir={analysis}"]],
            [os.path.join(analysis, "factors.json")]))
    return out


def select(all_stages, only=None):
    """The stages named in `only` (comma-separated names or prefixes), in order.

    A word that is a stage's full name selects that stage only, so `invert_cifar10_robust`
    does not also start `invert_cifar10_robust_hinge`; other words select by prefix.
    """
    if not only:
        return all_stages
    wanted = [w for w in only.split(",") if w]
    names = {s.name for s in all_stages}

    def matches(stage, word):
        return stage.name == word if word in names else stage.name.startswith(word)

    chosen = [s for s in all_stages if any(matches(s, w) for w in wanted)]
    unmatched = [w for w in wanted if not any(matches(s, w) for s in all_stages)]
    if unmatched:
        raise ValueError(f"No stage is named {unmatched[0]!r} (or starts so); stages: "
                         f"{', '.join(s.name for s in all_stages)}. Received: only={only!r}")
    return chosen


def describe(stage):
    status = "done" if stage.done() else "to run"
    lines = [f"{stage.name} [{status}]: {stage.description}"]
    lines += [f"  $ {shlex.join(command)}" for command in stage.commands]
    lines += [f"  → {path}" for path in stage.outputs]
    return "\n".join(lines)


def run(all_stages, root, dry_run=False, log=print):
    """Runs each stage whose outputs are missing; returns [{"stage", "status", "seconds"}]."""
    records = []
    for index, stage in enumerate(all_stages, 1):
        if dry_run:
            log(describe(stage))
            records.append({"stage": stage.name, "status": "listed"})
            continue
        if stage.done():
            log(f"[{index}/{len(all_stages)}] {stage.name}: outputs exist, skipped")
            records.append({"stage": stage.name, "status": "skipped"})
            continue
        log(f"[{index}/{len(all_stages)}] {stage.name}: {stage.description}")
        start = time.time()
        for command in stage.commands:
            log(f"  $ {shlex.join(command)}")
            code = subprocess.run(command).returncode
            if code:
                raise RuntimeError(f"stage {stage.name} failed: exit status {code} from "
                                   f"{shlex.join(command)}; rerun to resume it")
        record = {"stage": stage.name, "status": "ran", "seconds": round(time.time() - start, 1),
                  "commands": [shlex.join(c) for c in stage.commands],
                  "finished_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                  "machine": machine()}
        records.append(record)
        _append_record(root, record)
    return records


def machine():
    """"<cores> × <CPU model>": stage times are only comparable on the same kind of machine."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{os.cpu_count()} × {model}"


def _append_record(root, record):
    path = os.path.join(root, "stages.json")
    history = json.loads(files.read_text(path)) if os.path.exists(path) else []
    files.write_atomic(path, json.dumps(history + [record], indent=2))

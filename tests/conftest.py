"""Shared fixtures: a tiny classifier, a tiny `shapes` dataset and a tiny untrained inverter
(built, as workdirs, and exported), each made once per test process for every file."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import types  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_classifier_path(tmp_path_factory):
    from logit_inversion import testing
    return testing.save_tiny_classifier(str(tmp_path_factory.mktemp("clf") / "tiny"))


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    from logit_inversion.data.shapes import build_shapes
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    build_shapes(data_dir, train_size=256, test_size=64)
    return data_dir


@pytest.fixture
def tiny_config(tiny_classifier_path, shapes_data_dir):
    from logit_inversion import testing
    return testing.tiny_config(tiny_classifier_path, shapes_data_dir)


@pytest.fixture(scope="session")
def tiny_inverter(tmp_path_factory, tiny_classifier_path, shapes_data_dir):
    """One untrained tiny inverter (the tiny config's architecture) for the files that only
    read it: the built `inverter` and its `config`, its `bin/train` `workdir` (config record
    and one checkpoint), and the same checkpoint in `fixed_stats_workdir` under a config
    without standing statistics (they are drawn with fresh noise at each restore, so two loads
    of `workdir` differ slightly and two of `fixed_stats_workdir` do not).

    Every file shares it, so none may write into its folders."""
    from logit_inversion import testing, training
    from logit_inversion.training import checkpoints

    root = tmp_path_factory.mktemp("tiny_inverter")
    config = testing.tiny_config(tiny_classifier_path, shapes_data_dir)
    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    workdirs = {"workdir": config,
                "fixed_stats_workdir": testing.tiny_config(
                    tiny_classifier_path, shapes_data_dir, standing_stats_batches=0)}
    for name, workdir_config in workdirs.items():
        (root / name).mkdir()
        checkpoints.record_config(str(root / name), workdir_config)
        checkpoints.make_manager(inverter, str(root / name), keep=1).save()
    return types.SimpleNamespace(
        inverter=inverter, config=config, workdir=str(root / "workdir"),
        fixed_stats_workdir=str(root / "fixed_stats_workdir"), data_dir=shapes_data_dir)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_inverter):
    """`tiny_inverter` exported to `<root>/savedmodels/demo/1`: `model_dir` is the model
    folder, `version` the version folder.

    Exporting is most of a tiny inverter's cost, and ten files used to export their own; now
    each test process exports once. Shared, so read-only."""
    from logit_inversion.serving import export

    root = tmp_path_factory.mktemp("tiny_export")
    model_dir = root / "savedmodels" / "demo"
    version = export.export_inverter(tiny_inverter.inverter, str(model_dir))
    return types.SimpleNamespace(root=root, model_dir=str(model_dir), version=version)


# The files that run longest (15 s or more on a 2-core machine), longest first. `make test`
# hands whole files to its processes (`--dist loadfile`), by default those with the most tests
# first; several of these hold few tests, so they came last, and one process worked through
# them alone while the other had finished. Started first, they overlap with everything else.
# The first three hold `processes` tests: the two `bin/train` workers and the mirrored process
# start on different pytest processes rather than one after the other on the same.
LONGEST_FILES = (
    "test_multiworker.py", "test_distribute.py", "test_xla.py",
    "test_inverter.py", "test_training.py", "test_gfile.py", "test_export.py",
    "test_benchmarks.py", "test_classifier_training.py", "test_serving_load.py",
    "test_own_classifier.py", "test_analysis.py", "test_analysis_cli.py", "test_baselines.py",
    "test_cpu_bfloat16.py", "test_noise_convention.py", "test_explore.py",
    "test_foreign_classifiers.py", "test_quality_benchmark.py", "test_shipped_inverters.py",
)


def pytest_addoption(parser):
    parser.addoption(
        "--cpu-times", metavar="PREFIX", default=None,
        help="write each test's CPU seconds (its process, and the child processes it waited "
             "for) to PREFIX.<worker>.json: wall time misleads on 2 cores, where a test's own "
             "processes take turns with the other worker's tests")


def _cpu_seconds():
    import resource
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return (own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    times = getattr(item.config, "_cpu_times", None)
    if times is None:
        yield
        return
    before = _cpu_seconds()
    yield
    after = _cpu_seconds()
    times.append({"test": item.nodeid, "own": round(after[0] - before[0], 3),
                  "children": round(after[1] - before[1], 3)})


def pytest_unconfigure(config):
    times = getattr(config, "_cpu_times", None)
    if times:
        import json
        from logit_inversion import files
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        files.write_atomic(f"{config.getoption('--cpu-times')}.{worker}.json",
                           json.dumps(times, indent=0))


def pytest_configure(config):
    prefix = config.getoption("--cpu-times", default=None)
    if prefix is not None:
        # Refused before any test runs, not after the last one.
        folder = os.path.dirname(os.path.abspath(prefix))
        if not os.path.isdir(folder):
            raise pytest.UsageError(f"--cpu-times needs an existing folder for its files; "
                                    f"{folder} is not one. Received: --cpu-times={prefix}")
        config._cpu_times = []
    config.addinivalue_line(
        "markers", "slow: minutes-long checks left out of `make test`; run with `make test-slow`.")
    config.addinivalue_line(
        "markers", "processes: end-to-end checks that start TensorFlow processes of their own; "
                   "`make test` leaves them to `make test-processes`, which CI runs after it.")
    # Hand files out in the order of `pytest_collection_modifyitems` below, not by test count.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """`LONGEST_FILES` first, in that order; then the rest, those with more tests first (the
    default order); the tests of a file stay in their order."""
    counts = {}
    for item in items:
        counts[item.path] = counts.get(item.path, 0) + 1
    rank = {name: place for place, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), -counts[item.path]))


@pytest.fixture
def training_stream_seeds(monkeypatch):
    """The seed of every training stream a run builds in this test, in order (a list that
    fills as `training.train` runs)."""
    from logit_inversion import testing
    return testing.record_stream_seeds(monkeypatch)

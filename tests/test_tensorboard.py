"""TensorBoard event files of each run, read back with TensorBoard's own reader and hparams plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from rundirs import PARAMS, history_of, write_run

from mnist3d.config.levers import LEVER_DEFAULTS
from mnist3d.results import runfiles
from mnist3d.results import tensorboard as tb

# TensorBoard's reader opens files through TensorFlow's file API where TensorFlow is installed (seconds to
# import); this module name is its documented switch to its own stub, which reads local files the same way.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins import base_plugin  # noqa: E402
from tensorboard.plugins.hparams import api_pb2, hparams_plugin, metadata  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402


def write_events(root: Path, run_dir: Path) -> Path:
    entry, replicate = run_dir.parent.name, run_dir.name
    directory = root / "tensorboard" / entry / replicate
    tb.write_run_events(directory, run_dir / "metrics.json", run_dir / "history.csv")
    return directory


def accumulator(directory: Path) -> EventAccumulator:
    events = EventAccumulator(str(directory))
    events.Reload()
    return events


def session_info(events: EventAccumulator, tag: str):
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[tag]
    if tag == metadata.SESSION_START_INFO_TAG:
        return metadata.parse_session_start_info_plugin_data(content)
    return metadata.parse_session_end_info_plugin_data(content)


def assert_epochs_read_back(directory: Path, history_path: Path) -> None:
    """Every history column, once per epoch at its epoch's step, with its value and the epoch's end time."""
    history = runfiles.read_history(history_path)
    events = accumulator(directory)
    if not len(history):  # failed before its first epoch
        assert events.Tags()["scalars"] == []
        return
    for name in tb.EPOCH_SCALARS:
        scalars = events.Scalars(name)
        assert [scalar.step for scalar in scalars] == history["epoch"].astype(int).tolist(), name
        np.testing.assert_array_equal([scalar.value for scalar in scalars], history[name].astype(np.float32))
        np.testing.assert_allclose([scalar.wall_time for scalar in scalars], np.cumsum(history["seconds"]))


def test_every_epoch_and_the_final_measures_read_back(tmp_path):
    run_dir = write_run(tmp_path, "wide", 2, epochs=6)
    directory = write_events(tmp_path, run_dir)
    assert [path.name for path in directory.iterdir()] == [tb.EVENT_FILE]
    assert_epochs_read_back(directory, run_dir / "history.csv")
    events = accumulator(directory)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in tb.FINAL_SCALARS:
        [scalar] = events.Scalars(name)
        assert (scalar.step, scalar.value) == (6, pytest.approx(metrics[name], rel=1e-6)), name
    assert sorted(events.Tags()["scalars"]) == sorted([*tb.EPOCH_SCALARS, *tb.FINAL_SCALARS])


def test_the_hparams_session_holds_the_parameters_and_the_outcome(tmp_path):
    run_dir = write_run(tmp_path, "wide", 2, params={"filters": [16, 32], "mixed_precision": True})
    events = accumulator(write_events(tmp_path, run_dir))
    start = session_info(events, metadata.SESSION_START_INFO_TAG)
    assert start.group_name == "wide/rep2"
    params = json.loads((run_dir / "metrics.json").read_text())["params"]
    # Every lever is a column, at its default where the run's identity leaves it out.
    assert sorted(start.hparams) == sorted({*params, *LEVER_DEFAULTS, "entry"})
    assert start.hparams["optimizer"].string_value == LEVER_DEFAULTS["optimizer"]
    assert start.hparams["filters"].string_value == "[16, 32]"  # lists as the models file writes them
    assert start.hparams["dense"].number_value == params["dense"]
    assert start.hparams["seed"].number_value == 2  # the replicate's own seed
    assert start.hparams["mixed_precision"].bool_value is True
    assert start.hparams["entry"].string_value == "wide"
    end = session_info(events, metadata.SESSION_END_INFO_TAG)
    assert end.status == api_pb2.STATUS_SUCCESS
    assert end.end_time_secs == pytest.approx(runfiles.read_history(run_dir / "history.csv")["seconds"].sum())


def test_a_failed_run_is_a_failed_session_with_what_it_trained(tmp_path):
    failed = write_run(tmp_path, "huge", 1, failed="ResourceExhaustedError: OOM")
    events = accumulator(write_events(tmp_path, failed))
    assert events.Tags()["scalars"] == []
    assert session_info(events, metadata.SESSION_END_INFO_TAG).status == api_pb2.STATUS_FAILURE
    # Failed after two epochs: those two are there, and no test measure.
    partial = write_run(tmp_path, "diverged", 1, history=history_of([0.2, 0.3]))
    record = json.loads((partial / "metrics.json").read_text())
    record.update(
        status="failed",
        error="FloatingPointError: NaN",
        test_accuracy=None,
        test_loss=None,
        test_accuracy_unrotated=None,
        test_accuracy_rotated=None,
        training_seconds=None,
    )
    (partial / "metrics.json").write_text(json.dumps(record))
    directory = write_events(tmp_path, partial)
    assert_epochs_read_back(directory, partial / "history.csv")
    assert "test_accuracy" not in accumulator(directory).Tags()["scalars"]


def test_the_hparams_dashboard_lists_every_run_its_parameters_and_metrics(tmp_path):
    """What the dashboard shows comes from the plugin's own HTTP routes, as the browser calls them."""
    for entry, replicate, dense in (("narrow", 1, 64), ("narrow", 2, 64), ("wide", 1, 256)):
        write_events(tmp_path, write_run(tmp_path, entry, replicate, params={"dense": dense}))
    write_events(tmp_path, write_run(tmp_path, "huge", 1, failed="OOM"))
    logdir = str(tmp_path / "tensorboard")
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    context = base_plugin.TBContext(
        logdir=logdir, multiplexer=multiplexer, data_provider=data_provider.MultiplexerDataProvider(multiplexer, logdir)
    )
    routes = hparams_plugin.HParamsPlugin(context).get_plugin_apps()

    def post(route: str, body: dict) -> dict:
        environ = EnvironBuilder(
            method="POST", path=route, data=json.dumps(body), content_type="application/json"
        ).get_environ()
        statuses = []
        reply = b"".join(routes[route](environ, lambda status, headers: statuses.append(status)))
        assert statuses == ["200 OK"], reply
        return json.loads(reply)

    experiment = post("/experiment", {"experimentName": ""})
    columns = {info["name"]: info for info in experiment["hparamInfos"]}
    assert set(columns) == {*PARAMS, *LEVER_DEFAULTS, "entry"}
    assert columns["dense"]["differs"] and columns["entry"]["differs"] and not columns["filters"]["differs"]
    assert sorted(columns["entry"]["domainDiscrete"]) == ["huge", "narrow", "wide"]
    metric_names = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert metric_names == {*tb.EPOCH_SCALARS, *tb.FINAL_SCALARS}

    groups = post(
        "/session_groups",
        {
            "experimentName": "",
            "startIndex": 0,
            "sliceSize": 100,
            "colParams": [],
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        },
    )
    by_run = {group["name"]: group for group in groups["sessionGroups"]}
    assert sorted(by_run) == ["huge/rep1", "narrow/rep1", "narrow/rep2", "wide/rep1"]
    assert by_run["huge/rep1"]["sessions"][0]["status"] == "STATUS_FAILURE"
    wide = json.loads((tmp_path / "results" / "runs" / "wide" / "rep1" / "metrics.json").read_text())
    values = {value["name"]["tag"]: value["value"] for value in by_run["wide/rep1"]["metricValues"]}
    assert values["test_accuracy"] == pytest.approx(wide["test_accuracy"], rel=1e-6)
    assert by_run["wide/rep1"]["hparams"]["dense"] == 256


def test_rewriting_gives_the_same_bytes_and_one_file(tmp_path):
    run_dir = write_run(tmp_path, "wide", 1)
    directory = write_events(tmp_path, run_dir)
    first = (directory / tb.EVENT_FILE).read_bytes()
    (directory / "events.out.tfevents.123.host.1.v2").write_bytes(b"an older writer's file")
    write_events(tmp_path, run_dir)
    assert [path.name for path in directory.iterdir()] == [tb.EVENT_FILE]
    assert (directory / tb.EVENT_FILE).read_bytes() == first


def test_a_history_with_an_epoch_twice_is_refused(tmp_path):
    run_dir = write_run(tmp_path, "wide", 1, history=history_of([0.2, 0.3, 0.4]).assign(epoch=[1, 2, 2]))
    with pytest.raises(ValueError, match=r"history\.csv: epochs \[2\] appear more than once"):
        write_events(tmp_path, run_dir)
    assert not (tmp_path / "tensorboard" / "wide" / "rep1" / tb.EVENT_FILE).exists()


def test_an_interrupted_write_leaves_no_event_file(tmp_path, monkeypatch):
    run_dir = write_run(tmp_path, "wide", 1)

    def killed(events):
        raise KeyboardInterrupt

    monkeypatch.setattr(tb, "encode", killed)
    with pytest.raises(KeyboardInterrupt):
        write_events(tmp_path, run_dir)
    assert list((tmp_path / "tensorboard" / "wide" / "rep1").iterdir()) == []


def test_writing_imports_no_tensorflow(tmp_path):
    run_dir = write_run(tmp_path, "wide", 1)
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "from mnist3d.results.tensorboard import write_run_events\n"
        f"write_run_events({str(tmp_path / 'out')!r}, {str(run_dir / 'metrics.json')!r}, "
        f"{str(run_dir / 'history.csv')!r})\n"
        "print(sorted(name for name in ('tensorflow', 'keras', 'pandas') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "out" / tb.EVENT_FILE).exists()


class Interrupted(BaseException):
    """Stands for a kill: not an Exception, so train_run does not record it as a failed run."""


def test_a_resumed_run_has_each_epoch_once(tmp_path, monkeypatch):
    """A real run killed after epoch 2 of 4 and resumed: its event file holds epochs 1-4 once each, also
    when an event file of the interrupted part (as a failed attempt's job would write) was there before."""
    from mnist3d.config.runs import OPTIONAL_DEFAULTS
    from mnist3d.data import prepare
    from mnist3d.training import checkpoint
    from mnist3d.training.train import Run, RunPaths, TrainingEnvironment, train_run

    rng = np.random.default_rng(0)
    arrays = {"test_rotated": np.zeros(10, dtype=np.int8), "source": np.array("generated")}
    for split, count in (("train", 40), ("val", 10), ("test", 10)):
        arrays[f"x_{split}"] = rng.random((count, 16, 16, 16, 1), dtype=np.float32)
        arrays[f"y_{split}"] = np.arange(count, dtype=np.int64) % 10
    prepared = tmp_path / "prepared.npz"
    prepare.save(prepared, arrays)
    params = {
        "filters": [4],
        "kernel_sizes": [3],
        "pool_sizes": [4],
        "dense": 8,
        "dropout": 0.3,
        "learning_rate": 0.01,
        "epochs": 4,
        "batch_size": 16,
        "seed": 4,
        **OPTIONAL_DEFAULTS,
    }
    run_dir = tmp_path / "results" / "runs" / "tiny" / "rep1"
    paths = RunPaths.in_directory(prepared, run_dir, checkpoint_dir=tmp_path / "checkpoint")
    environment = TrainingEnvironment(threads=1, training_code="code-1", record_failure=False)
    real_save = checkpoint.save

    def save_then_die(*arguments, **keywords):
        path = real_save(*arguments, **keywords)
        if arguments[3] == 2:
            raise Interrupted
        return path

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint, "save", save_then_die)
        with pytest.raises(Interrupted):
            train_run(Run("tiny", 1, params), paths, environment, log=lambda _: None)
    # The interrupted attempt's two epochs, as a failed attempt would have recorded them.
    directory = tmp_path / "tensorboard" / "tiny" / "rep1"
    partial = {"run": "tiny/rep1", "entry": "tiny", "status": "failed", "params": params}
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    tb.write_run_events(directory, tmp_path / "partial.json", tmp_path / "checkpoint" / "history.csv")
    assert [scalar.step for scalar in accumulator(directory).Scalars("loss")] == [1, 2]

    lines = []
    train_run(Run("tiny", 1, params), paths, environment, log=lines.append)
    assert any(line.startswith("resumed from epoch 2 of 4") for line in lines), lines
    tb.write_run_events(directory, paths.metrics, paths.history)
    assert [path.name for path in directory.iterdir()] == [tb.EVENT_FILE]
    assert_epochs_read_back(directory, paths.history)
    assert [scalar.step for scalar in accumulator(directory).Scalars("loss")] == [1, 2, 3, 4]
    events = accumulator(directory)
    assert session_info(events, metadata.SESSION_END_INFO_TAG).status == api_pb2.STATUS_SUCCESS


def test_e2e_every_run_of_the_workflow_is_in_tensorboard(tiny_workflow):
    runs = sorted(path.parent for path in (tiny_workflow / "results" / "runs").glob("*/rep*/metrics.json"))
    assert len(runs) >= 4
    logdir = tiny_workflow / "results" / "tensorboard"
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    assert sorted(multiplexer.Runs()) == sorted(f"{run.parent.name}/{run.name}" for run in runs)
    for run in runs:
        directory = logdir / run.parent.name / run.name
        assert_epochs_read_back(directory, run / "history.csv")
        metrics = json.loads((run / "metrics.json").read_text())
        events = accumulator(directory)
        end = session_info(events, metadata.SESSION_END_INFO_TAG)
        assert end.status == (api_pb2.STATUS_SUCCESS if metrics["status"] == "ok" else api_pb2.STATUS_FAILURE)
        assert session_info(events, metadata.SESSION_START_INFO_TAG).hparams["entry"].string_value == metrics["entry"]
        log = tiny_workflow / "logs" / "tensorboard" / run.parent.name / f"{run.name}.log"
        assert "done in" in log.read_text()

"""Successive halving without training: the rung plan, hostile settings, the decisions and the retry rule."""

import json
import textwrap

import pytest
from conftest import REPO, TINY_DEFAULTS

from mnist3d.config.halving import keep_count, plans, rung_epochs
from mnist3d.config.runs import load_runs
from mnist3d.config.yamlfile import RunConfigError, read_yaml
from mnist3d.results.halving import decide, outcome, read_sweep_decisions, sweep_summary, write_decision
from mnist3d.results.rungs import rung_record, stopped_text

SCHEMAS = REPO / "config" / "schemas"
SWEEP = """\
sweeps:
  h:
    fixed: {epochs: 27, lr_schedule: cosine}
    halving: {min_epochs: 3, eta: 3}
    grid: {dense: [4, 8, 16], dropout: [0.1, 0.2, 0.3]}
"""


def halving_plans(tmp_path, text: str):
    path = tmp_path / "models.yaml"
    path.write_text(TINY_DEFAULTS + textwrap.dedent(text))
    runs = load_runs(path, SCHEMAS / "run.schema.yaml", SCHEMAS / "models.schema.yaml")
    return plans(read_yaml(path).get("sweeps"), runs, str(path), RunConfigError), str(path)


def test_rungs_grow_by_eta_up_to_the_full_epochs():
    assert rung_epochs(3, 3, 27) == (3, 9, 27)
    assert rung_epochs(1, 3, 4) == (1, 3, 4)
    assert rung_epochs(2, 2, 9) == (2, 4, 8, 9)
    assert [keep_count(n, 3) for n in (9, 3, 1, 10, 2)] == [3, 1, 1, 4, 1]


def test_the_plan_of_a_9_combination_sweep(tmp_path):
    found, _ = halving_plans(tmp_path, SWEEP)
    plan = found["h"]
    assert plan.rungs == (3, 9, 27) and plan.planned_counts() == [9, 3, 1] and list(plan.decisions) == [1, 2]
    assert len(plan.entries) == 9 and plan.replicates == 1
    assert plan.previous_epoch(3) is None and plan.previous_epoch(27) == 9
    assert "rungs train 9 to epoch 3, 3 to epoch 9, 1 to epoch 27" in plan.summary()
    assert "each later rung is decided as the one before it finishes" in plan.summary()
    with pytest.raises(ValueError, match="epoch 5 is no rung"):
        plan.rung(5)


def test_halving_changes_no_run(tmp_path):
    with_halving = load_runs(*_written(tmp_path / "a.yaml", SWEEP), SCHEMAS / "models.schema.yaml")
    without = load_runs(*_written(tmp_path / "b.yaml", SWEEP.replace("    halving: {min_epochs: 3, eta: 3}\n", "")),
                        SCHEMAS / "models.schema.yaml")
    assert [(run.id, run.params) for run in with_halving] == [(run.id, run.params) for run in without]


def _written(path, text):
    path.write_text(TINY_DEFAULTS + text)
    return path, SCHEMAS / "run.schema.yaml"


@pytest.mark.parametrize(
    "halving, expected",
    [
        ("{min_epochs: 3, eta: 1}", "key 'halving.eta': must be a whole number >= 2"),
        ("{min_epochs: 3, eta: 2.5}", "key 'halving.eta': must be a whole number >= 2"),
        ("{min_epochs: 0}", "key 'halving.min_epochs': must be a whole number >= 1, not 0"),
        ("{eta: 3}", "key 'halving.min_epochs': missing"),
        ("{min_epochs: 3, etta: 3}", "key 'halving.etta': unknown key; halving has min_epochs, eta, brackets"),
        ("{min_epochs: 3, brackets: 0}", "key 'halving.brackets': must be a whole number >= 1"),
        ("{min_epochs: 3, brackets: 3}", "key 'halving.brackets': 3 brackets (Hyperband) are not supported yet"),
        ("[3, 3]", "key 'halving': must be a mapping such as {min_epochs: 3, eta: 3}"),
        ("{min_epochs: 27}", "key 'halving.min_epochs': min_epochs 27 leaves no rung before the sweep's 27 epochs"),
    ],
)
def test_hostile_settings_stop_with_the_file_sweep_and_key(tmp_path, halving, expected):
    with pytest.raises(RunConfigError) as caught:
        halving_plans(tmp_path, SWEEP.replace("{min_epochs: 3, eta: 3}", halving))
    assert str(caught.value).startswith(f"{tmp_path / 'models.yaml'}: sweep 'h', {expected}"), caught.value


def test_a_sweep_that_stops_itself_or_varies_its_epochs_is_refused(tmp_path):
    stopping = SWEEP.replace("lr_schedule: cosine", "lr_schedule: cosine, early_stopping_patience: 2")
    with pytest.raises(RunConfigError, match=r"sweep 'h', key 'halving': early_stopping_patience is set"):
        halving_plans(tmp_path, stopping)
    varying = SWEEP.replace("fixed: {epochs: 27, lr_schedule: cosine}", "fixed: {lr_schedule: cosine}").replace(
        "dropout: [0.1, 0.2, 0.3]", "epochs: [9, 27]")
    with pytest.raises(RunConfigError, match=r"sweep 'h', key 'halving': its combinations train for different epochs"):
        halving_plans(tmp_path, varying)


PLAN = {"sweep": "h", "eta": 3, "min_epochs": 1, "epochs": 4, "rungs": [1, 3, 4], "replicates": 2,
        "entries": [f"h.c{index}" for index in range(4)]}


def record(entry, replicate, accuracy, loss=1.0, epoch=1, error=None):
    rows = [{"val_accuracy": accuracy, "val_loss": loss, "loss": 1.0, "seconds": 2.0}] * epoch
    return rung_record(f"{entry}/rep{replicate}", entry, replicate, epoch, rows, error)


def test_a_decision_ranks_by_mean_validation_accuracy_then_loss_then_name():
    records = [
        record("h.c0", 1, 0.4), record("h.c0", 2, 0.6),                      # mean 0.5
        record("h.c1", 1, 0.6, loss=0.9), record("h.c1", 2, 0.6, loss=0.9),
        record("h.c2", 1, 0.6), record("h.c2", 2, 0.6),                      # ties h.c1, higher loss
        record("h.c3", 1, 0.9), record("h.c3", 2, 0.0, error="FloatingPointError: NaN"),  # one finished
    ]
    decision = decide(PLAN, 1, PLAN["entries"], list(reversed(records)))
    assert decision == decide(PLAN, 1, PLAN["entries"], records)  # arrival order does not matter
    assert [row["entry"] for row in decision["combinations"]] == ["h.c3", "h.c1", "h.c2", "h.c0"]
    assert decision["keep"] == 2 and decision["kept"] == ["h.c3", "h.c1"]
    assert decision["stopped"] == ["h.c2", "h.c0"] and decision["next_epoch"] == 3
    assert decision["cutoff"] == {"entry": "h.c1", "val_accuracy": 0.6, "val_loss": 0.9}
    c3, _, c2, c0 = decision["combinations"]
    assert c3["finished"] == 1 and c3["errors"] == ["h.c3/rep2: FloatingPointError: NaN"]
    assert c3["reason"] == "rank 1 of 4, val_accuracy 0.9000: among the best 2 (ceil(4 / 3))"
    assert c2["reason"] == ("rank 3 of 4, val_accuracy 0.6000 ties the cut-off (h.c1, rank 2); its val_loss 1.0000 "
                            "is higher than 0.9000")
    assert c0["reason"] == "rank 4 of 4, val_accuracy 0.5000: below the cut-off 0.6000 (h.c1, rank 2)"
    assert json.loads(json.dumps(decision)) == decision
    same = decide({**PLAN, "replicates": 1}, 1, ["h.c1", "h.c0"], [record("h.c1", 1, 0.5), record("h.c0", 1, 0.5)])
    assert same["kept"] == ["h.c0"] and "the name decides" in same["combinations"][1]["reason"]


def test_a_failed_combination_counts_last_and_never_goes_on():
    records = [record("h.c0", 1, 0.1), record("h.c1", 1, 0.9, error="boom")]
    plan = {**PLAN, "replicates": 1, "eta": 2}
    decision = decide(plan, 1, ["h.c0", "h.c1"], records)
    assert decision["kept"] == ["h.c0"] and decision["stopped"] == ["h.c1"]
    assert "a failed run counts last" in decision["combinations"][1]["reason"]
    nothing = decide(plan, 1, ["h.c1"], records[1:])
    assert nothing["kept"] == [] and nothing["cutoff"] is None


def test_records_of_another_epoch_are_refused():
    with pytest.raises(ValueError, match="rung 2 of sweep 'h' is at epoch 3, but records are at \\[1\\]"):
        decide(PLAN, 2, ["h.c0"], [record("h.c0", 1, 0.5)])


def test_outcome_and_the_reader(tmp_path):
    first = decide({**PLAN, "replicates": 1}, 1, PLAN["entries"],
                   [record(entry, 1, 0.1 * index) for index, entry in enumerate(PLAN["entries"])])
    second = decide({**PLAN, "replicates": 1}, 2, first["kept"],
                    [record(entry, 1, 0.5, epoch=3) for entry in first["kept"]])
    assert outcome("h.c0", [first, second]) == (1, first)
    assert outcome(second["stopped"][0], [first, second]) == (3, second)
    assert outcome(second["kept"][0], [first, second]) == (None, None)
    assert stopped_text(1, 1, 3) == "stopped at epoch 1 (rung 1 of 3)"
    for decision in (second, first):
        write_decision(tmp_path / f"rung-{decision['rung']}.json", decision)
    assert read_sweep_decisions(tmp_path) == [first, second]
    summary = sweep_summary({**PLAN, "replicates": 1}, [first, second])
    assert [(rung["epoch"], rung["combinations"]) for rung in summary["rungs"]] == [(1, 4), (3, 2), (4, 1)]
    assert (summary["epochs"], summary["full_grid_epochs"]) == (4 * 1 + 2 * 2 + 1 * 1, 16)
    assert [rung["combinations"] for rung in sweep_summary(PLAN, [first])["rungs"]] == [4, 2]


def test_a_rung_record_without_the_epoch_is_a_failure():
    short = rung_record("e/rep1", "e", 1, 3, [{"val_accuracy": 0.5, "val_loss": 1.0, "loss": 1.0, "seconds": 1.0}])
    assert short["status"] == "failed" and "ends at epoch 1" in short["error"] and short["val_accuracy"] is None


def test_retry_leaves_stopped_runs_alone_and_finds_failed_rungs(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("retry_failed", REPO / "scripts" / "retry_failed.py")
    retry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(retry)
    monkeypatch.chdir(tmp_path)
    for run, status in (("a", "stopped"), ("b", "failed"), ("c", "ok")):
        path = tmp_path / "results" / "runs" / run / "rep1" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"status": status}))
    for epoch, status in ((1, "ok"), (3, "failed")):
        path = tmp_path / "results" / "halving" / "a" / "rep1" / f"epoch-{epoch}" / "rung.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"status": status}))
    assert [path.parent.parent.name for path in retry.failed_runs()] == ["b"]
    failed_rungs = retry.failed_rung_states()
    assert [retry._name(path) for path in failed_rungs] == ["a/rep1 at epoch-3"]

"""Successive halving without training: the rung plan, Hyperband's brackets, hostile settings, the decisions,
what a training job goes on from, and the retry rule."""

import json
import re
import textwrap

import pytest
from conftest import REPO, TINY_DEFAULTS

from mnist3d.config.halving import bracket_size, keep_count, plans, rung_epochs
from mnist3d.config.runs import load_runs
from mnist3d.config.yamlfile import RunConfigError, read_yaml
from mnist3d.results.halving import decide, outcome, read_sweep_decisions, sweep_summary, write_decision
from mnist3d.results.rungs import rung_record, stop_of, stopped_text, training_job

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


def test_hyperband_brackets_start_a_rung_later_with_fewer_combinations(tmp_path):
    found, _ = halving_plans(tmp_path, SWEEP.replace("eta: 3}", "eta: 3, brackets: 3}"))
    plan, plain = found["h"], halving_plans(tmp_path, SWEEP)[0]["h"]
    first, second, third = plan.brackets
    assert (first.rungs, second.rungs, third.rungs) == ((3, 9, 27), (9, 27), (27,))
    # n_b = ceil(G k_1 / (k_b eta^(b-1))): 9, ceil(27 / 6) = 5, ceil(27 / 9) = 3 (Li et al.'s 9:5:3).
    assert [len(bracket.entries) for bracket in plan.brackets] == [9, 5, 3]
    assert [bracket_size(27, 3, rungs, number, 3) for number, rungs in ((1, 3), (2, 2), (3, 1))] == [27, 14, 9]
    assert bracket_size(2, 4, 1, 4, 2) == 1 and bracket_size(4, 2, 1, 2, 2) == 4  # at least 1, at most G
    assert first.entries == plan.entries and set(second.entries) < set(plan.entries)
    assert list(second.decisions) == [1] and list(third.decisions) == []
    assert second.planned_counts(3) == [5, 2] and third.planned_counts(3) == [3]
    assert all(plan.brackets_of(entry)[0] is first and plan.brackets_of(entry)[-1] is third for entry in third.entries)
    # Not the first by name, which in a grid is parameter order.
    assert second.entries != plan.entries[:5] and third.entries != plan.entries[:3]
    # Bracket 1 is the plain halving sweep: its decisions' parameters do not see the other brackets.
    assert plan.bracket_param(1) == plain.bracket_param(1)
    assert plan.bracket_param(2)["rungs"] == [9, 27] and plan.bracket_param(2)["entries"] == list(second.entries)
    assert [bracket["entries"] for bracket in plan.as_param()["brackets"]] == [list(b.entries) for b in plan.brackets]
    assert plan.summary().startswith(
        "halving sweep 'h': 9 combinations x 1 replicate, eta 3, 3 brackets (Hyperband); bracket 1 trains 9 to epoch 3, "
        "3 to epoch 9, 1 to epoch 27; bracket 2 trains 5 to epoch 9, 2 to epoch 27; bracket 3 trains 3 to epoch 27. "
        "Only each bracket's first rung is planned now")
    assert "results/sweeps/h/bracket-B/rung-K.json" in plan.summary()
    assert "bracket" not in plain.summary() and len(plain.brackets) == 1
    with pytest.raises(ValueError, match="has brackets 1 to 3, not 4"):
        plan.bracket(4)


def test_a_bracket_keeps_its_combinations_when_one_is_added_or_the_grid_reordered(tmp_path):
    spec = SWEEP.replace("eta: 3}", "eta: 3, brackets: 3}")
    before = halving_plans(tmp_path, spec)[0]["h"]
    reordered = halving_plans(tmp_path, spec.replace("[0.1, 0.2, 0.3]", "[0.3, 0.1, 0.2]"))[0]["h"]
    assert reordered.brackets == before.brackets
    after = halving_plans(tmp_path, spec.replace("dense: [4, 8, 16]", "dense: [4, 8, 16, 32]"))[0]["h"]
    added = set(after.entries) - set(before.entries)
    for old, new in zip(before.brackets[1:], after.brackets[1:]):
        # Each chosen combination's place depends on its own name alone: only an added one takes one.
        assert len(set(old.entries) - set(new.entries)) <= len(set(new.entries) & added), (old, new)
        assert len(new.entries) >= len(old.entries)


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
        ("{min_epochs: 3, brackets: 4}", ("key 'halving.brackets': 4 brackets, but rungs at 3, 9, 27 epochs allow "
                                          "at most 3: bracket 3 starts at the last rung, epoch 27")),
        ("{min_epochs: 1, eta: 3, brackets: 5}", ("key 'halving.brackets': 5 brackets, but rungs at 1, 3, 9, 27 "
                                                  "epochs allow at most 4")),
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


def test_a_reason_prints_the_digits_that_tell_a_near_tie_from_the_cut_off():
    # Means of replicates differ from a cut-off by a rounding hair: the reason must not read "0.1000
    # below the cut-off 0.1000".
    plan = {**PLAN, "eta": 2}
    records = [record("h.c0", 1, 0.1), record("h.c0", 2, 0.2), record("h.c1", 1, 0.15), record("h.c1", 2, 0.15)]
    mean_c0, mean_c1 = (0.1 + 0.2) / 2, 0.15
    assert mean_c0 > mean_c1 and f"{mean_c0:.4f}" == f"{mean_c1:.4f}"
    decision = decide(plan, 1, ["h.c0", "h.c1"], records)
    kept, stopped = decision["combinations"]
    assert (kept["entry"], stopped["entry"]) == ("h.c0", "h.c1")
    reason = stopped["reason"]
    assert "below the cut-off" in reason
    shown = [float(text) for text in re.findall(r"\d\.\d+", reason)]
    assert len(shown) == 2 and shown[0] < shown[1], reason


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


BRACKETS = {**PLAN, "replicates": 1, "brackets": [
    {"bracket": 1, "rungs": [1, 3, 4], "entries": PLAN["entries"]},
    {"bracket": 2, "rungs": [3, 4], "entries": ["h.c1", "h.c2", "h.c3"]},
    {"bracket": 3, "rungs": [4], "entries": ["h.c0", "h.c3"]},
]}
# Each run's validation accuracy at epochs 1 and 3: one state per run and epoch, whichever bracket reads it.
ACCURACY = {"h.c0": (0.0, 0.2), "h.c1": (0.1, 0.8), "h.c2": (0.2, 0.9), "h.c3": (0.3, 0.5)}


def bracket_decisions() -> list[dict]:
    def at(epoch, entries):
        return [record(entry, 1, ACCURACY[entry][epoch > 1], epoch=epoch) for entry in entries]

    def bracket_plan(number):
        own = BRACKETS["brackets"][number - 1]
        return {**BRACKETS, "bracket": number, "rungs": own["rungs"], "entries": own["entries"]}

    first = decide(bracket_plan(1), 1, PLAN["entries"], at(1, PLAN["entries"]))
    second = decide(bracket_plan(1), 2, first["kept"], at(3, first["kept"]))
    other = decide(bracket_plan(2), 1, ["h.c1", "h.c2", "h.c3"], at(3, ["h.c1", "h.c2", "h.c3"]))
    return [first, second, other]


def test_brackets_decide_apart_and_a_run_goes_as_far_as_its_furthest_bracket(tmp_path):
    first, second, other = bracket_decisions()
    assert (first["bracket"], first["kept"], second["kept"]) == (1, ["h.c3", "h.c2"], ["h.c2"])
    assert (other["bracket"], other["rung"], other["rungs"], other["epoch"], other["next_epoch"]) == (2, 1, 2, 3, 4)
    assert other["kept"] == ["h.c2"] and other["stopped"] == ["h.c1", "h.c3"]
    decisions = [first, second, other]
    assert outcome("h.c2", decisions) == (None, None)      # bracket 1 takes it to the last rung
    assert outcome("h.c1", decisions) == (3, other)        # stopped at epoch 1 by bracket 1, at 3 by bracket 2
    assert outcome("h.c3", decisions) == (3, second)       # epoch 3 in both: the first bracket's decision
    assert outcome("h.c0", decisions) == (1, first)        # not in bracket 2
    assert outcome("h.c1", [first, other]) == (3, other)
    with pytest.raises(ValueError, match="h.c9 is not among the combinations of sweep 'h'"):
        outcome("h.c9", decisions)
    assert stop_of(other, "h.c1") == {"until_epoch": 3, "stopped": "stopped at epoch 3 (bracket 2, rung 1 of 2)"}
    assert stop_of(second, "h.c3")["stopped"] == "stopped at epoch 3 (rung 2 of 3)" and stop_of(other, "h.c2") == {}
    write_decision(tmp_path / "bracket-2" / "rung-1.json", other)
    for decision in (second, first):
        write_decision(tmp_path / f"rung-{decision['rung']}.json", decision)
    assert read_sweep_decisions(tmp_path) == decisions
    summary = sweep_summary(BRACKETS, decisions)
    assert [(rung["epoch"], rung["combinations"]) for rung in summary["rungs"]] == [(1, 4), (3, 2), (4, 1)]
    assert [[(rung["epoch"], rung["combinations"]) for rung in bracket["rungs"]] for bracket in summary["brackets"]] == [
        [(1, 4), (3, 2), (4, 1)], [(3, 3), (4, 1)], [(4, 2)]]
    # Bracket 3 takes h.c0 and h.c3 straight to epoch 4; the brackets share h.c2's epochs.
    assert summary["furthest"] == {"h.c0": 4, "h.c1": 3, "h.c2": 4, "h.c3": 4}
    assert (summary["epochs"], summary["full_grid_epochs"]) == (15, 16)
    assert sweep_summary(BRACKETS, [first])["furthest"] == {"h.c0": 4, "h.c1": 3, "h.c2": 3, "h.c3": 4}


def test_what_a_training_job_goes_on_from(tmp_path):
    outputs = {name: f"out/{name}" for name in ("model", "history", "predictions", "metrics")}
    rung = {"state": "s/checkpoint.npz", "history": "s/history.csv", "record": "s/rung.json"}
    resume = {"resume_from": "r/checkpoint.npz", "resume_record": "r/rung.json"}
    run, paths = training_job("h.c1", 4, resume, rung, epoch=3)
    assert run == {"until_epoch": 3}
    assert paths == {**dict.fromkeys(outputs), **resume, "rung_checkpoint": "s/checkpoint.npz",
                     "rung_history": "s/history.csv", "rung_record": "s/rung.json"}
    assert training_job("h.c1", 4, {}, rung, epoch=1)[1].get("resume_from") is None
    other = bracket_decisions()[2]
    write_decision(tmp_path / "decision.json", other)
    run, paths = training_job("h.c1", 4, {**resume, "decision": str(tmp_path / "decision.json")}, outputs)
    assert run == {"until_epoch": 3, "stopped": "stopped at epoch 3 (bracket 2, rung 1 of 2)"}
    assert paths == {**outputs, **resume}
    assert training_job("h.c2", 4, resume, outputs) == ({}, {**outputs, **resume})
    # Trained straight through: from the furthest state a halving sweep of the same run left.
    pattern = {"state": str(tmp_path / "epoch-{epoch}" / "checkpoint.npz"),
               "record": str(tmp_path / "epoch-{epoch}" / "rung.json")}
    assert training_job("h.c1", 4, {}, outputs, rung_states=pattern) == ({}, outputs)
    for epoch in (1, 3):
        (tmp_path / f"epoch-{epoch}").mkdir()
        write_decision(tmp_path / f"epoch-{epoch}" / "rung.json", record("h.c1", 1, 0.5, epoch=epoch))
    assert training_job("h.c1", 4, {}, outputs, rung_states=pattern)[1] == {
        **outputs, "resume_from": pattern["state"].format(epoch=3), "resume_record": pattern["record"].format(epoch=3)}


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

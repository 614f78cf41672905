import os
from types import SimpleNamespace

import pytest

from mnist3d.steplog import UserError, rule_log, step_log


def test_a_quiet_step_still_logs_its_end_and_outputs(tmp_path):
    log_file = tmp_path / "logs" / "step.log"
    with step_log(log_file, outputs=["results/a.png", "results/b.png"]):
        os.write(1, b"from file descriptor 1, as TensorFlow's C++ logs\n")
    lines = log_file.read_text().splitlines()
    assert lines[0] == "from file descriptor 1, as TensorFlow's C++ logs"
    assert lines[-1].endswith("wrote results/a.png, results/b.png")
    assert " done in " in lines[-1]


def test_expected_error_is_one_line_and_exit_status_1(tmp_path, capfd):
    log_file = tmp_path / "step.log"
    with pytest.raises(SystemExit) as stopped:
        with step_log(log_file, outputs=["never.png"]):
            raise UserError("data/x.h5: X_train is missing")
    assert stopped.value.code == 1
    text = log_file.read_text()
    assert "ERROR: data/x.h5: X_train is missing" in text
    assert "done in" not in text and "never.png" not in text
    assert capfd.readouterr().err == "ERROR: data/x.h5: X_train is missing\n"


def test_unexpected_error_keeps_its_traceback_in_the_log(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with step_log(tmp_path / "step.log"):
            1 / 0
    text = (tmp_path / "step.log").read_text()
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError: division by zero" in text
    assert "done in" not in text


def test_rule_log_takes_the_jobs_log_file_and_outputs(tmp_path):
    job = SimpleNamespace(log=[str(tmp_path / "rule.log")], output=["results/metrics.csv"])
    with rule_log(job) as log:
        log("working")
    lines = (tmp_path / "rule.log").read_text().splitlines()
    assert lines[0].endswith("working") and lines[-1].endswith("wrote results/metrics.csv")

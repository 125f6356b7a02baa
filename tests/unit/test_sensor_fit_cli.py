"""`edge-agent fit sensor` argument mistakes: one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.tasks.sensor import fit


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = fit.main(argv)
    return code, capsys.readouterr().err.strip()


def test_missing_normal_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["--normal", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and err == f"error: --normal {tmp_path / 'nope.csv'}: no such file"


def test_bad_model_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "n.csv"
    csv.write_text("timestamp,a\n1,2\n")
    code, err = run(["--normal", str(csv), "--out", str(tmp_path / "Pump 7")], capsys)
    assert code == 2 and "model name 'pump 7' must be letters, digits" in err


def test_existing_model_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "n.csv"
    csv.write_text("timestamp,a\n1,2\n")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.yaml").write_text("name: m\n")
    code, err = run(["--normal", str(csv), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "already holds a model; pass --force" in err


def test_too_little_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "short.csv"
    csv.write_text("timestamp,a,b\n" + "".join(f"{t},{t},{2 * t}\n" for t in range(12)))
    code, err = run(["--normal", str(csv), "--out", str(tmp_path / "m"), "--no-tflite"], capsys)
    assert code == 2 and "12 normal samples; at least 30 are needed for window 20" in err


def test_unknown_channel_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "n.csv"
    csv.write_text("timestamp,a\n1,2\n")
    code, err = run(["--normal", str(csv), "--out", str(tmp_path / "m"), "--channels", "a,zz"], capsys)
    assert code == 2 and "column(s) zz not in the header (timestamp, a)" in err


def test_argparse_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["--window", "3"], capsys)
    assert code == 2 and "the following arguments are required: --normal, --out" in err


def test_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert fit.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--window WINDOW window length: samples (20) or a time (20m, 90s, 2h) (default: 20)",
                  "(default: 0.999)", "(default: 1.4)", "(default: linear)", "--tflite",
                  "auto = 3d for one channel", "off for several (default: auto)"):  # fmt: skip
        assert shown in text


def test_a_time_that_is_not_one_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "n.csv"
    csv.write_text("timestamp,a\n1,2\n")
    code, err = run(["--normal", str(csv), "--out", str(tmp_path / "m"), "--min-duration", "soon"], capsys)
    assert code == 2 and err.startswith("error: --min-duration: 'soon' is not a duration")

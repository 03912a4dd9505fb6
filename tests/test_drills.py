"""``siaga-sim drill``: every shipped drill passes on the real processes; a failing or malformed one says where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.drill import shipped_drills

SHIPPED = {path.stem: path for path in shipped_drills()}


def run_drill(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", "drill", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_the_shipped_drills_are_the_five_the_docs_describe() -> None:
    assert sorted(SHIPPED) == ["broker-down", "cable-cut", "gateway-unplugged", "lora-radio-battery", "market-fire"]
    docs = (Path(__file__).resolve().parents[1] / "docs" / "simulator.md").read_text("utf-8")
    assert all(f"`{name}`" in docs for name in SHIPPED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_drill_passes(name: str, tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    done = run_drill(name, "--json", str(report_file))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_file.read_text())
    assert report["passed"] is True
    assert report["expectations"] and all(item["ok"] for item in report["expectations"])
    assert "drill PASSED" in done.stdout
    # The timeline is printed as it goes: each verdict on a line of its own, with its time.
    verdicts = [line for line in done.stdout.splitlines() if line.startswith("t+") and "✓" in line]
    assert len(verdicts) == len(report["expectations"])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


IMPOSSIBLE = """
[drill]
name = "a gateway that never goes offline"

[[step]]
at = 1
do = "press"
button = "pasar-andoolo-fire-1"

[[step]]
at = 1
expect = "alarm"
button = "pasar-andoolo-fire-1"
within_s = 5

[[step]]
at = 1
expect = "trouble"
type = "gateway_offline"
subject = "gw-pasar-andoolo"
within_s = 2
"""


def test_a_drill_whose_expectation_cannot_hold_fails_and_names_the_step(tmp_path: Path) -> None:
    scenario = write(tmp_path / "impossible.toml", IMPOSSIBLE)
    report_file = tmp_path / "report.json"
    done = run_drill(str(scenario), "--json", str(report_file), "--workdir", str(tmp_path / "run"))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "✓ alarm #1 for pasar-andoolo-fire-1 on the fire board" in out
    failed = [line for line in out.splitlines() if "✗" in line]
    assert len(failed) == 1 and failed[0].startswith("t+  3.0")
    assert "✗ expected trouble gateway_offline for gw-pasar-andoolo within 2 s (step 3)" in failed[0]
    assert "summary: 1 of 2 expectation(s) held" in out and "drill FAILED" in out
    assert "failed step 3 (at 1 s): trouble type=gateway_offline subject=gw-pasar-andoolo" in out
    report = json.loads(report_file.read_text())
    assert report["passed"] is False
    assert [(item["step"], item["ok"]) for item in report["expectations"]] == [(2, True), (3, False)]
    # The processes' logs are kept for the post-mortem.
    assert (tmp_path / "run" / "stack" / "gateway" / "gateway.log").exists()


GOOD_START = """
[drill]
name = "malformed"

[[step]]
at = 1
do = "press"
button = "pasar-andoolo-fire-1"
"""


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            'at = 2\nexpect = "alarm"\nbutton = "pasar-andoolo-fire-1"\nwithin_s = 0\n',
            "key 'step[2].within_s': must be at least 0.1 (got 0)",
        ),
        (
            'at = 2\ndo = "press"\nbuton = "pasar-andoolo-fire-1"\n',
            "key 'step[2].button': missing (this key is required)",
        ),
        (
            'at = 2\ndo = "press"\nbutton = "pasar-andoolo-fire-1"\ncolour = "red"\n',
            "key 'step[2].colour': unknown key",
        ),
        ('at = 2\ndo = "explode"\n', "key 'step[2].do': must be one of press, acknowledge"),
        (
            'at = 2\nexpect = "trouble"\ntype = "on_fire"\nsubject = "gw-pasar-andoolo"\nwithin_s = 5\n',
            "key 'step[2].type': must be one of gateway_offline",
        ),
        (
            'at = 2\ndo = "press"\nbutton = "pasar-andoolo-fire-9"\n',
            "key 'step[2].button': 'pasar-andoolo-fire-9' is not a button of",
        ),
        (
            'at = 2\ndo = "battery"\nbutton = "pasar-andoolo-fire-1"\nmv = 3300\n',
            "key 'step[2].button': battery needs a LoRa button; 'pasar-andoolo-fire-1' is wired",
        ),
        ('at = 2\ndo = "radio_loss"\nloss = 1.5\n', "key 'step[2].loss': a fraction of packets lost, 0 to 1"),
    ],
)
def test_a_malformed_scenario_exits_78_naming_file_step_and_key(tmp_path: Path, step: str, message: str) -> None:
    scenario = write(tmp_path / "drill.toml", GOOD_START + "\n[[step]]\n" + step)
    done = run_drill(str(scenario), timeout=30)
    assert done.returncode == 78, done.stdout + done.stderr
    assert f"siaga-sim drill: {scenario}: {message}" in done.stderr
    assert "drill starts" not in done.stdout


def test_a_scenario_without_its_drill_table_or_with_a_missing_site_is_refused(tmp_path: Path) -> None:
    scenario = write(tmp_path / "drill.toml", '[[step]]\nat = 1\ndo = "broker_down"\n')
    done = run_drill(str(scenario), timeout=30)
    assert done.returncode == 78
    assert f"{scenario}: key 'drill': missing (this key is required)" in done.stderr

    scenario = write(
        tmp_path / "elsewhere.toml", GOOD_START.replace('name = "malformed"', 'name = "x"\nsite = "no.toml"')
    )
    done = run_drill(str(scenario), timeout=30)
    assert done.returncode == 78
    assert "key 'drill.site': 'no.toml' is neither a gateway.toml nor a shipped site" in done.stderr

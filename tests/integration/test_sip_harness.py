"""`appliance harness --via sip`: scenarios played as real SIP calls, checked as in process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AUDIO, PIPELINE_LLM, ROOT

pytestmark = [pytest.mark.timeout(300), pytest.mark.models]


def test_harness_via_sip_runs_a_scenario_and_reports(tmp_path: Path, models_dir: Path) -> None:
    scenario = tmp_path / "go-forward.yaml"
    scenario.write_text(
        "name: go-forward\n"
        "caller:\n"
        f"  - say: {AUDIO / 'goforward.wav'}\n"
        "    expect: {heard: go forward ten meters}\n"
        "expect: {ended: caller hung up, turns: 1}\n"
    )
    env = {"MODELS_DIR": str(models_dir), "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LLM_MODEL": PIPELINE_LLM}  # fmt: skip
    done = subprocess.run(
        [
            sys.executable, "-m", "appliance", "--env-file", str(tmp_path / "none.env"),
            "harness", "--via", "sip", "--json", "--out", str(tmp_path / "out"), str(scenario),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)
    assert result["passed"], result
    assert result["wer"][0] <= 0.15
    assert (tmp_path / "out" / "go-forward.wav").stat().st_size > 100_000  # the caller's ear
    # The harness's call was answered as any line's is: it is in the history, recorded.
    history = subprocess.run(
        [sys.executable, "-m", "appliance", "--env-file", str(tmp_path / "none.env"),
         "calls", "list", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (call,) = json.loads(history.stdout)
    assert call["line"] == "sip" and call["outcome"] == "caller hung up", call
    assert call["recording_state"] == "complete" and call["caller_turns"] == 1, call

"""pjsua2 shares the process with every native engine and ssl, whichever is imported first.

The question is about shared libraries (pjsua2's wheel bundles its own OpenSSL 1.0.2 and
libstdc++ symbols; llama.cpp, CTranslate2 and onnxruntime bring theirs), so each import order
runs in a fresh process, with the engines working while a SIP call's media is flowing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.timeout(300), pytest.mark.models]


@pytest.mark.parametrize("order", ["pj-first", "pj-last"])
def test_pjsua2_and_the_engines_share_a_process(
    order: str, models_dir: Path, tmp_path: Path
) -> None:
    env = {f"{engine}_BUDGET_MS": "60000" for engine in ("STT", "LLM", "TTS")}
    env |= {"LLM_MAX_TOKENS": "16", "MODELS_DIR": str(models_dir)}
    env["APPLIANCE_DATA_DIR"] = str(tmp_path / "data")  # the call records go there
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.coexist", order],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "coexist ok" in done.stdout, output
    for sign in ("Assertion", "Fatal Python error", "terminate called"):
        assert sign not in output

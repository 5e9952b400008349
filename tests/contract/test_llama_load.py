"""Loading the language model leaves the process's stdout and stderr alone.

llama-cpp-python's quiet mode points file descriptors 1 and 2 at /dev/null while a model
loads. Every thread's output is lost for those seconds, and that includes another engine's abort
message and faulthandler's stacks (a load that aborted in CI printed nothing). The engine loads
in the loud mode instead: llama.cpp's log goes to `logging`, the loader's own prints nowhere.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import pytest

from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.engines.offload import Offloader
from tests.conftest import PIPELINE_LLM

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_load_leaves_stdout_and_stderr_to_the_other_threads(
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    redirected: list[tuple[int, int]] = []
    real_dup2 = os.dup2

    def dup2(fd: int, fd2: int, inheritable: bool = True) -> int:
        redirected.append((fd, fd2))
        return real_dup2(fd, fd2, inheritable)

    monkeypatch.setattr(os, "dup2", dup2)
    caplog.set_level(logging.DEBUG, logger="appliance.engines.llm.llama.cpp")
    worker = Offloader("load-test")
    engine = LlamaLanguageModel(models_dir / PIPELINE_LLM / "model.gguf", offloader=worker)
    said = threading.Event()

    def speak_meanwhile() -> None:  # another thread's words while the model loads
        while not said.is_set():
            print("another thread", file=sys.stderr, flush=True)
            said.wait(0.05)

    other = threading.Thread(target=speak_meanwhile)
    other.start()
    try:
        await engine.load()
    finally:
        said.set()
        other.join()
        worker.close()
    assert [fds for fds in redirected if fds[1] in (1, 2)] == []
    out, err = capfd.readouterr()
    assert "Model metadata" not in out + err and "llama_model_loader" not in out + err
    assert "another thread" in err
    loaded = [r.getMessage() for r in caplog.records if r.name.endswith("llama.cpp")]
    assert any("llama_model_loader" in line or "print_info" in line for line in loaded), loaded

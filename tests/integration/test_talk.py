"""`appliance talk`: a conversation with the person at the box, through virtual devices.

The whole appliance (the installed models) runs in a child process on PortAudio's `pulse`
device of a PulseAudio started here (tests/support/pulse.py), with the room's echo looped back
into its microphone. The "person" speaks a recording into the microphone once the greeting has
been said; the agent must hear it, answer, and the conversation must be recorded like a call.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AUDIO, ROOT
from tests.support.pulse import PulseServer


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[PulseServer]:
    server = PulseServer(tmp_path / "pulse")
    server.folder.mkdir()
    server.start()
    server.add_echo(delay_ms=40, gain_db=-9.0)
    yield server
    server.stop()


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line.rstrip("\n"))


def _wait_for(lines: queue.Queue[str], prefix: str, seen: list[str], limit_s: float) -> str:
    deadline = time.monotonic() + limit_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {prefix!r} line within {limit_s:.0f} s; so far: {seen}")
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line


def test_talk_holds_a_conversation_and_records_it(
    pulse: PulseServer, tmp_path: Path, models_dir: Path
) -> None:
    env = {
        **pulse.env,
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "MODELS_DIR": str(models_dir),
        "SAFETY_SCREEN": "false",
        # Its log (printed on a failure) says what the card and the call did.
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    }
    none = str(tmp_path / "none.env")
    log = (tmp_path / "talk.log").open("w")  # a file: an unread pipe would fill and stall it
    talk = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--env-file", none, "talk", "--device", "pulse"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(talk.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        _wait_for(lines, "agent:", seen, 240)  # the greeting
        pulse.say(AUDIO / "goforward.wav").wait(20)
        heard = _wait_for(lines, "you:", seen, 60)
        while "forward" not in heard.lower():  # a cold canceller: see the README's note
            heard = _wait_for(lines, "you:", seen, 60)
        answer = _wait_for(lines, "agent:", seen, 60)
        talk.send_signal(signal.SIGINT)
        ended = _wait_for(lines, "ended:", seen, 60)
        assert talk.wait(60) == 0
    except BaseException:
        print((tmp_path / "talk.log").read_text()[-4000:])  # why, in the test's report
        raise
    finally:
        if talk.poll() is None:
            talk.kill()
            talk.wait(10)
        if talk.stdout is not None:
            talk.stdout.close()
        log.close()
    print("\n".join(seen))
    assert "forward" in heard.lower()
    assert len(answer) > len("agent: ")
    call_id = ended.split("recorded as call ")[1].split(" ")[0]
    listed = subprocess.run(
        [sys.executable, "-m", "appliance", "--env-file", none, "calls", "show", call_id, "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True,
    )  # fmt: skip
    record = json.loads(listed.stdout)
    assert record["line"] == "local" or record.get("call", {}).get("line") == "local", record
    assert os.environ.get("PULSE_SERVER") != pulse.server  # the test's own process untouched

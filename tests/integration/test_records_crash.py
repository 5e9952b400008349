"""kill -9 in the middle of a call, the appliance in its own process, then a restart.

What must hold: the recording is a readable WAV up to within a second of the kill, every turn
completed before it is in the database, and the post-call jobs left pending (the earlier call's,
queued at its end, and the killed call's, queued by the restart) run exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from appliance.audio.frame import SAMPLE_RATE
from appliance.audio.wav import wav_header
from appliance.harness.voices import caller_voice
from appliance.memory import callers, calls, jobs, vectors
from appliance.memory.db import connect
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

T = TypeVar("T")
NUMBER = "+15551230002"


def _write_wav(path: Path, pcm: bytes) -> Path:
    path.write_bytes(wav_header(channels=1, rate=SAMPLE_RATE, data_bytes=len(pcm)) + pcm)
    return path


def _silence(seconds: float) -> bytes:
    return bytes(int(SAMPLE_RATE * seconds) * 2)


def _appliance(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "appliance", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _until(what: str, check: Callable[[], T | None], timeout: float, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}; the appliance said:\n{log.read_text()[-3000:]}")


def _read(database: Path, fn: Callable[..., T], *args: object) -> T:
    conn = connect(database, readonly=True)
    try:
        return fn(conn, *args)
    finally:
        conn.close()


def test_kill_9_mid_call_loses_nothing_and_jobs_run_once_after_restart(
    tmp_path: Path, models_dir: Path
) -> None:
    data = tmp_path / "data"
    database = data / "tel3sis.db"
    log = tmp_path / "appliance.log"
    env = {
        **os.environ,
        "APPLIANCE_DATA_DIR": str(data),
        "MODELS_DIR": str(models_dir),
        "LOG_LEVEL": "INFO",
    }
    for name in ("DATABASE_URL", "RECORDINGS_DIR", "NOTIFY_EMAIL", "NOTIFY_SMS", "REDIS_URL"):
        env.pop(name, None)

    # A first call that ends normally: its post-call jobs wait for an appliance that runs them.
    short = _write_wav(tmp_path / "short.wav", caller_voice("Hello, I would like to book a table."))
    first = _appliance(["call", "--wav", str(short), "--from", NUMBER], env, log)
    assert first.wait(timeout=300) == 0, log.read_text()[-3000:]

    # A long call, killed after its first turn, in the middle of what the caller says next.
    long_call = b"".join(
        [
            caller_voice("My name is Anna Berg and I would like to order a birthday cake."),
            _silence(6.0),
            caller_voice("It should be chocolate, with twenty candles, for Saturday afternoon."),
            _silence(6.0),
            caller_voice("And please write happy birthday Tom on it."),
            _silence(8.0),
        ]
    )
    second = _appliance(
        ["call", "--wav", str(_write_wav(tmp_path / "long.wav", long_call)), "--from", NUMBER],
        env,
        log,
    )
    try:

        def open_call_with_a_turn() -> calls.CallRecord | None:
            if not database.exists():
                return None
            live = _read(database, calls.open_calls)
            if not live:
                return None
            said = _read(database, calls.turns_of, live[0].id)
            return live[0] if any(t.speaker == "agent" and t.turn >= 1 for t in said) else None

        killed = _until("the first turn of the long call", open_call_with_a_turn, 240, log)
        time.sleep(2.0)  # into the caller's second sentence
        killed_at = time.time()
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=10)
    finally:
        if second.poll() is None:
            second.kill()

    # Straight after the kill, before anything tidies up: a readable WAV, up to the last second.
    assert killed.recording is not None
    recording = data / "recordings" / killed.recording
    with wave.open(str(recording), "rb") as wav:
        frames = wav.getnframes()
        audio = np.frombuffer(wav.readframes(frames), "<i2")
    assert wav.getnchannels() == 2
    recorded_s = frames / SAMPLE_RATE
    assert recorded_s >= killed_at - killed.started - 1.0
    assert np.abs(audio[0::2]).max() > 1000 and np.abs(audio[1::2]).max() > 1000  # both sides
    # Every turn completed before the kill is there, both sides of it.
    stored = _read(database, calls.turns_of, killed.id)
    completed = {t.turn for t in stored if t.speaker == "agent" and t.turn >= 1}
    assert completed and all(
        any(t.turn == n and t.speaker == "caller" for t in stored) for n in completed
    )
    assert "birthday cake" in " ".join(t.text for t in stored if t.speaker == "caller").lower()

    # The restart: the killed call is closed, and every pending job runs, once.
    serve = _appliance(["serve"], env, log)
    try:

        def all_jobs_final() -> list[jobs.JobRecord] | None:
            found = _read(database, jobs.jobs_of, None)
            per_call = [j for j in found if j.call_id is not None]
            ready = len({j.call_id for j in per_call}) == 2 and all(
                j.state in ("done", "failed", "skipped") for j in per_call
            )
            return per_call if ready else None

        done = _until("the post-call jobs", all_jobs_final, 300, log)
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, log.read_text()[-3000:]

    call = _read(database, calls.find_call, killed.id)
    assert call is not None and call.outcome is not None
    assert call.outcome.startswith("interrupted") and call.recording_state == "stopped"
    assert recording.stat().st_size == 44 + frames * 4 or recording.stat().st_size % 4 == 0
    assert sorted((j.kind, j.state, j.attempts) for j in done) == sorted(
        [(kind, "done", 1) for kind in ("summary", "memory")] * 2
        + [(kind, "skipped", 0) for kind in ("email", "sms")] * 2
    )
    text = log.read_text()
    for job in done:
        if job.state == "done":
            assert text.count(f"job {job.id} {job.kind} ") == 1, f"job {job.id} ran more than once"
    for call_id in {j.call_id for j in done}:
        assert _read(database, callers.summary_of, call_id)
    assert _read(database, vectors.count_vectors, NUMBER) >= 2

    # A later restart finds nothing left to run.
    conn = connect(database)
    try:
        later = time.time() + 1e6
        assert jobs.claim(conn, owner="later", now=later, kinds=["summary", "memory"]) is None
        assert jobs.recover_jobs(conn, lambda owner: False) == 0
    finally:
        conn.close()

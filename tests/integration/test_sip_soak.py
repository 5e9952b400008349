"""Fifty sequential SIP calls: no pj assertion at any point or at shutdown, and flat memory."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(300)


def test_fifty_sequential_calls_keep_memory_flat_and_shut_down_clean() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.sip_soak", "50"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = done.stdout + done.stderr
    print(output)  # the RSS figures, for the record (pytest -s shows them)
    assert done.returncode == 0, output
    for sign in ("Assertion", "Traceback", "Fatal Python error", "terminate called"):
        assert sign not in output
    assert done.stdout.rstrip().endswith("clean")  # pjsua2 destroyed, the process exits 0
    samples = {
        int(n): (int(kb), int(objects))
        for n, kb, objects in re.findall(r"calls (\d+) rss_kb (\d+) objects (\d+)", output)
    }
    assert sorted(samples) == [10, 20, 30, 40, 50], samples
    (rss_10, objects_10), (rss_50, objects_50) = samples[10], samples[50]
    print(
        f"RSS after 10 calls {rss_10 / 1024:.1f} MB, after 50 {rss_50 / 1024:.1f} MB; "
        f"Python objects {objects_10} -> {objects_50}"
    )
    # Nothing of a call outlives it: a leaked session, line or media buffer is hundreds of
    # objects a call. RSS creeps up ~30 kB a call while pjlib's caching pool and the allocator's
    # arenas warm up, then stays flat (measured to 250 calls: see README, "SIP").
    assert abs(objects_50 - objects_10) < 0.02 * objects_10
    assert rss_50 - rss_10 < 3 * 1024

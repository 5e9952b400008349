"""A spoofed caller number does not read, or write, another caller's memory.

The attack (issue 13): with no SIP authentication (the default), a call with `From:
+15551230001` got that number's facts and past summaries in its prompt. A caller ID is not an
identity: memory from earlier calls is used only on lines that vouch for the number (a trunk
restricted by SIP_ALLOWED_SOURCES or digest; Twilio), and the memory tools refuse elsewhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest

from appliance.clock import LoopClock
from appliance.conversation.ports import CallInfo
from appliance.memory import callers, calls, jobs
from appliance.telephony.calls import Admission
from appliance.telephony.digest import DigestAuth
from appliance.telephony.wavfile import HangUp, Speak, Step
from tests.support.fakes import say
from tests.support.records import RecordsKit, run_records
from tests.support.sip import SIP_FIXTURES, Probe, fake_listener, run_sipp

pytestmark = pytest.mark.timeout(120)
VICTIM = "+15551230001"
KEPT = "Allergic to peanuts"


def _open_to_all(clock: LoopClock) -> Admission:
    return Admission(clock=clock, max_calls=2)


def _trunk_only(clock: LoopClock) -> Admission:
    return Admission(clock=clock, max_calls=2, allowed=[ipaddress.ip_network("127.0.0.1/32")])


def _digest(clock: LoopClock) -> Admission:
    auth = DigestAuth(username="pbx", password="letmein", realm="tel3sis", clock=clock)
    return Admission(clock=clock, max_calls=2, auth=auth)


@pytest.mark.parametrize(
    ("admission", "vouched"), [(_open_to_all, False), (_trunk_only, True), (_digest, True)]
)
async def test_a_sip_call_is_vouched_for_only_from_a_restricted_or_proven_trunk(
    tmp_path: Path, admission: Callable[[LoopClock], Admission], vouched: bool
) -> None:
    async with fake_listener(admission=admission, probe=Probe) as box:
        login = (
            ["-au", "pbx", "-ap", "letmein", "-auth_uri", f"tel3sis@127.0.0.1:{box.port}"]
            if admission is _digest
            else []
        )
        scenario = str(SIP_FIXTURES / "auth.xml") if admission is _digest else "uac"
        run = await run_sipp(
            box.port, "-m", "1", "-d", "500", *login, scenario=scenario, work_dir=tmp_path
        )
    assert run.returncode == 0, run.screen  # the call itself is answered either way
    (probe,) = box.sessions
    assert probe.heard  # and carried audio
    assert probe.line.info.vouched is vouched


def _remembered(conn: apsw.Connection) -> None:
    """The victim's earlier call, and what the memory job kept from it."""
    started = 1_799_000_000.0
    calls.open_call(
        conn,
        CallInfo(call_id="earlier", line="twilio", caller=VICTIM, vouched=True),
        started=started,
        owner="test",
        memory="",
    )
    calls.end_call(conn, "earlier", ended=started + 60, outcome="caller hung up")
    callers.note_call(conn, VICTIM, started)
    callers.set_summary(conn, "earlier", "The caller booked a cleaning.", started + 61)
    callers.add_facts(conn, VICTIM, "earlier", [KEPT], started + 61)
    callers.set_name(conn, VICTIM, "Maria")


def test_an_unvouched_call_from_a_known_number_gets_none_of_its_memory(
    tmp_path: Path, models_dir: Path
) -> None:
    async def main() -> tuple[calls.CallRecord | None, calls.CallRecord | None, jobs.JobRecord]:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["Hello.", "Hello."]).open()
        try:
            await kit.records.db.run(_remembered)
            steps: list[Step] = [Speak(say("hello")), HangUp()]
            await kit.call(steps, caller=VICTIM, call_id="spoofed", vouched=False)
            await kit.call(steps, caller=VICTIM, call_id="trunk", vouched=True)
            spoofed = await kit.records.db.run(calls.find_call, "spoofed")
            trunk = await kit.records.db.run(calls.find_call, "trunk")
            queued = await kit.records.db.run(jobs.jobs_of, "spoofed")
            return spoofed, trunk, next(j for j in queued if j.kind == "memory")
        finally:
            kit.close()

    spoofed, trunk, memory_job = run_records(main())
    assert spoofed is not None and trunk is not None
    assert spoofed.memory == "" and not spoofed.vouched  # nothing of Maria's in its prompt
    assert KEPT in trunk.memory and "Maria" in trunk.memory
    # Nor does the spoofed call add to her memory.
    assert memory_job.state == "skipped"
    assert "did not vouch" in memory_job.result

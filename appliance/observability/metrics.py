"""Every Prometheus metric of the appliance, defined once, in its own registry.

The registry is an object, not the library's global: the composition root creates one `Metrics`
and passes it down, and a test gets a fresh one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


class Metrics:
    """The appliance's metrics; `registry` is what /metrics exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls = Counter(
            "tel3sis_calls", "Calls ended, by line and outcome", ["line", "outcome"], registry=r
        )
        self.active_calls = Gauge(
            "tel3sis_active_calls", "Calls in progress, by line", ["line"], registry=r
        )
        self.turn_latency = Histogram(
            "tel3sis_turn_latency_seconds",
            "End of caller speech to the first reply audio",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "tel3sis_stage_seconds",
            "Duration of each stage of a turn",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_seconds = Histogram(
            "tel3sis_engine_call_seconds",
            "Time spent in each engine's worker, per call",
            ["engine"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_queue_depth = Gauge(
            "tel3sis_engine_queue_depth",
            "Calls waiting for each engine's worker, behind the one it runs",
            ["engine"],
            registry=r,
        )
        self.engine_rtf = Histogram(
            "tel3sis_engine_real_time_factor",
            "Processing time over audio duration (below 1 is faster than real time)",
            ["engine"],
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "tel3sis_engine_fallbacks",
            "Times an engine yielded to the next one",
            ["port", "failed", "used"],
            registry=r,
        )
        self.turn_engines = Counter(
            "tel3sis_turn_engines",
            "Turns answered, by stage (stt, llm, tts) and the engine that answered it: a local "
            "engine, or a fallback after it",
            ["stage", "engine"],
            registry=r,
        )
        self.safety_decisions = Counter(
            "tel3sis_safety_decisions",
            "Safety decisions, by layer (caller, agent, tool) and action (allowed, refused, "
            "replaced, ended, blocked)",
            ["layer", "action"],
            registry=r,
        )
        self.barge_ins = Counter(
            "tel3sis_barge_ins", "Replies cut short by the caller speaking", registry=r
        )
        self.echo_holds = Counter(
            "tel3sis_echo_holds",
            "Speech over the agent on a speakerphone that held the agent's voice, by what it "
            "was: the agent's own echo, or a caller cutting in",
            ["heard"],
            registry=r,
        )
        self.dropped_frames = Counter(
            "tel3sis_dropped_audio_frames",
            "20 ms frames dropped at a line's edge because a queue was full",
            ["line", "direction"],
            registry=r,
        )
        self.sound_card_restarts = Counter(
            "tel3sis_sound_card_restarts",
            "Times the speakerphone's audio stream stopped delivering audio and was reopened",
            registry=r,
        )
        self.errors = Counter("tel3sis_errors", "Errors, by kind", ["kind"], registry=r)
        self.twilio_refused = Counter(
            "tel3sis_twilio_refused",
            "Twilio webhooks and media streams refused, by reason",
            ["reason"],
            registry=r,
        )
        self.twilio_call_status = Counter(
            "tel3sis_twilio_call_status",
            "Call status callbacks from Twilio, by status",
            ["status"],
            registry=r,
        )
        self.recording_failures = Counter(
            "tel3sis_recording_failures",
            "Call recordings stopped early (the call went on), by errno (ENOSPC: disk full)",
            ["reason"],
            registry=r,
        )
        self.recording_dropped_frames = Counter(
            "tel3sis_recording_dropped_frames",
            "20 ms frames a recording wrote as silence because its writer was behind",
            registry=r,
        )
        self.jobs = Counter(
            "tel3sis_jobs",
            "Post-call jobs run, by kind and result (done, retried, failed, skipped)",
            ["kind", "result"],
            registry=r,
        )
        self.session_state_fallbacks = Counter(
            "tel3sis_session_state_fallbacks",
            "Times Redis failed and the live session state carried on in process",
            registry=r,
        )
        self.sip_invites = Counter(
            "tel3sis_sip_invites",
            "Incoming SIP INVITEs, by admission verdict",
            ["verdict"],
            registry=r,
        )
        self.sip_registered = Gauge(
            "tel3sis_sip_registered", "1 while registered with the SIP registrar", registry=r
        )
        # --- the status page's health checks: refreshed when /metrics is scraped --------------
        self.health = Gauge(
            "tel3sis_health",
            "1 while a part of the box is healthy (ok or warning), 0 while it is failing; "
            "parts that are not configured are absent",
            ["part"],
            registry=r,
        )
        self.disk_used_ratio = Gauge(
            "tel3sis_disk_used_ratio",
            "Fraction of the data directory's disk in use (recordings, database)",
            registry=r,
        )
        self.cpu_temperature = Gauge(
            "tel3sis_cpu_temperature_celsius", "The hottest thermal zone", registry=r
        )
        self.cpu_throttled = Gauge(
            "tel3sis_cpu_throttled",
            "1 while a Raspberry Pi's firmware reports under-voltage, a frequency cap or "
            "a temperature limit",
            registry=r,
        )
        self.job_queue_depth = Gauge(
            "tel3sis_job_queue_depth", "Post-call jobs waiting to run", registry=r
        )
        self.build_info = Gauge(
            "tel3sis_build_info",
            "Always 1; its labels say which version and models run",
            ["version", "models"],
            registry=r,
        )
        self.start_time = Gauge(
            "tel3sis_start_time_seconds", "When the appliance started (Unix seconds)", registry=r
        )
        self.live_updates_dropped = Counter(
            "tel3sis_live_updates_dropped",
            "Live-call updates dropped for a status page that read too slowly (it resyncs)",
            registry=r,
        )
        self.logins = Counter(
            "tel3sis_logins",
            "Status page login attempts, by result (ok, wrong, throttled, no-password, csrf)",
            ["result"],
            registry=r,
        )

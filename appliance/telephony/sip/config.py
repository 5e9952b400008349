"""What the SIP endpoint needs to know, as one frozen value (the composition root fills it in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Registration", "SipConfig", "Transport"]

Transport = Literal["udp", "tcp"]


@dataclass(frozen=True, slots=True)
class Registration:
    """Registering with a trunk or PBX, so calls to our number reach us."""

    registrar: str
    """The registrar's SIP URI (`sip:sip.example.net`)."""
    username: str
    password: str
    expires_s: int = 300
    retry_s: int = 30
    """After a failed registration, try again this often."""


@dataclass(frozen=True, slots=True)
class SipConfig:
    bind_address: str = "0.0.0.0"  # noqa: S104 - a LAN appliance answers its LAN
    port: int = 5060
    """SIP port for every transport; 0 picks a free one (tests)."""
    transports: tuple[Transport, ...] = ("udp", "tcp")
    public_address: str = ""
    """The address to put in Contact and SDP when the box is behind NAT; empty: the bound one."""
    rtp_port: int = 10000
    """First RTP port; 0 picks free ones (tests)."""
    rtp_port_range: int = 200
    codecs: tuple[str, ...] = ("G722", "PCMU", "PCMA")
    """Offered and accepted in this order; every other codec is disabled."""
    registration: Registration | None = None
    rtp_timeout_s: float = 30.0
    """A call whose peer sends no RTP for this long is hung up (0: never)."""
    strict_rtp: bool = True
    """Each call takes RTP only from the first source it hears (see strictrtp.py)."""
    ack_timeout_s: float = 4.0
    """An answered call with no ACK for this long is given up and frees its slot (0: pjsip's
    own 32 s)."""
    max_calls: int = 1
    """Calls in progress at once (the admission limit)."""
    pjsua_max_calls: int = 4
    """PJSUA_MAX_CALLS of the pjsua2 build: every SIP call at once, answered or being refused.

    pjsua answers 486 by itself beyond it. The pjsua2-python wheel is built with 4;
    firmware-scripts/build-pjproject.sh builds with 32."""
    local_user: str = "tel3sis"
    """The user part of our own URI when not registering."""
    user_agent: str = "TEL3SIS"
    log_level: int = 2
    """pjsua2's own log verbosity, 0 (none) to 5, sent to the `appliance.telephony.sip.pj` log."""
    transfer_to: str = ""
    """Where a transfer to a person goes: a number (sent to the trunk, or back to the caller's
    address) or a SIP URI; empty: calls cannot be transferred."""
    attended_transfer: bool = True
    """Transfer attended where the caller's side supports Replaces: call the person first, tell
    them the summary, then REFER with Replaces (a blind REFER if that fails); False: always
    blind. The consult call takes a pjsua call of its own while it lasts."""
    silent_hold_s: float = 32.0
    """How long a silently refused INVITE is left unanswered before it is ended (64 x T1)."""
    max_silent_holds: int = 8
    """At most this many (and never so many that no pjsua call is left for a caller)."""

    @property
    def silent_hold_slots(self) -> int:
        """Silent holds allowed at once: what pjsua's calls leave after callers and a spare."""
        return max(0, min(self.max_silent_holds, self.pjsua_max_calls - self.max_calls - 1))

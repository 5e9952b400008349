"""What the SIP line is doing, for the status page: where it listens, registration, calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["RegistrationState", "RegistrationStatus", "SipStatus"]

RegistrationState = Literal["off", "registering", "registered", "failed", "unregistered"]


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    state: RegistrationState = "off"
    """`off` when no registrar is configured."""
    code: int = 0
    """The registrar's last SIP status code (0: no answer yet, or no network)."""
    reason: str = ""
    expires_s: int = 0
    """Seconds the registration has left, as of `changed_at`."""
    changed_at: float = 0.0
    """Seconds since the Unix epoch."""


@dataclass(slots=True)
class SipStatus:
    """Updated by the listener on the event loop; read it from the loop too."""

    listening: list[str] = field(default_factory=list)
    """`udp 0.0.0.0:5060`, one per transport; empty when the line is not up."""
    registration: RegistrationStatus = field(default_factory=RegistrationStatus)
    active_calls: int = 0
    calls_answered: int = 0
    calls_refused: dict[str, int] = field(default_factory=dict)
    """Refused INVITEs by verdict (`forbidden`, `busy`, ...)."""

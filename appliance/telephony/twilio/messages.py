"""Twilio Media Streams on the wire: every JSON message of a bidirectional stream, both ways.

From Twilio: `connected` (first), `start` (once: the stream, the call, the media format and the
`<Parameter>`s of the TwiML), `media` (base64 mu-law, 8 kHz mono, 20 ms a message), `dtmf`,
`mark` (the echo of one of ours, once the audio sent before it has played, or at once for every
pending mark when a `clear` empties the buffer), `stop` (last). To Twilio: `media`, `mark` and
`clear`, each with the `streamSid`. Parsing is strict: anything else is a `ProtocolError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Clear",
    "Connected",
    "Dtmf",
    "FromTwilio",
    "Mark",
    "Media",
    "ProtocolError",
    "Start",
    "Stop",
    "ToTwilio",
    "encode_from_twilio",
    "encode_to_twilio",
    "parse_from_twilio",
    "parse_to_twilio",
]

_ENCODING = "audio/x-mulaw"
_SAMPLE_RATE = 8000


class ProtocolError(ValueError):
    """A message that is not Media Streams as documented; the message says what was wrong."""


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    tracks: tuple[str, ...] = ("inbound",)


@dataclass(frozen=True, slots=True)
class Media:
    payload: bytes
    """Mu-law bytes, 8 kHz mono (decoded from base64)."""
    chunk: int = 0
    timestamp_ms: int = 0
    track: str = "inbound"


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str = ""
    account_sid: str = ""


@dataclass(frozen=True, slots=True)
class Clear:
    pass


FromTwilio = Connected | Start | Media | Dtmf | Mark | Stop
ToTwilio = Media | Mark | Clear


def _object(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        raise ProtocolError("a binary frame (Media Streams sends JSON text)")
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("event"), str):
        raise ProtocolError("not a JSON object with an `event`")
    return raw


def _part(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    part = raw.get(name)
    if not isinstance(part, dict):
        raise ProtocolError(f"`{raw['event']}` without its `{name}` object")
    return part


def _text(part: Mapping[str, Any], name: str, *, default: str | None = None) -> str:
    value = part.get(name, default)
    if not isinstance(value, str):
        raise ProtocolError(f"`{name}` is missing or not a string")
    return value


def _payload(part: Mapping[str, Any]) -> bytes:
    try:
        return base64.b64decode(_text(part, "payload"), validate=True)
    except binascii.Error as exc:
        raise ProtocolError(f"the media payload is not base64: {exc}") from exc


def _number(part: Mapping[str, Any], name: str, default: int = 0) -> int:
    try:
        return int(part.get(name, default))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"`{name}` is not a number") from exc


def _start(raw: Mapping[str, Any]) -> Start:
    start = _part(raw, "start")
    media_format = start.get("mediaFormat", {})
    if not isinstance(media_format, dict) or (
        media_format.get("encoding", _ENCODING) != _ENCODING
        or _number(media_format, "sampleRate", _SAMPLE_RATE) != _SAMPLE_RATE
        or _number(media_format, "channels", 1) != 1
    ):
        raise ProtocolError(f"unsupported media format {media_format!r}")
    params = start.get("customParameters", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise ProtocolError("`customParameters` is not an object of strings")
    tracks = start.get("tracks", ["inbound"])
    if not isinstance(tracks, list):
        raise ProtocolError("`tracks` is not a list")
    return Start(
        stream_sid=_text(start, "streamSid", default=raw.get("streamSid")),
        call_sid=_text(start, "callSid"),
        account_sid=_text(start, "accountSid", default=""),
        custom_parameters=dict(params),
        tracks=tuple(str(t) for t in tracks),
    )


def parse_from_twilio(text: str | bytes) -> FromTwilio:
    """One message Twilio sent; raises ProtocolError."""
    raw = _object(text)
    match raw["event"]:
        case "connected":
            return Connected(
                protocol=_text(raw, "protocol", default="Call"),
                version=_text(raw, "version", default="1.0.0"),
            )
        case "start":
            return _start(raw)
        case "media":
            media = _part(raw, "media")
            return Media(
                payload=_payload(media),
                chunk=_number(media, "chunk"),
                timestamp_ms=_number(media, "timestamp"),
                track=_text(media, "track", default="inbound"),
            )
        case "dtmf":
            return Dtmf(digit=_text(_part(raw, "dtmf"), "digit"))
        case "mark":
            return Mark(name=_text(_part(raw, "mark"), "name"))
        case "stop":
            stop = raw.get("stop", {})
            if not isinstance(stop, dict):
                raise ProtocolError("`stop` is not an object")
            return Stop(
                call_sid=_text(stop, "callSid", default=""),
                account_sid=_text(stop, "accountSid", default=""),
            )
        case other:
            raise ProtocolError(f"unknown event {other!r}")


def parse_to_twilio(text: str | bytes) -> ToTwilio:
    """One message a server sent to Twilio (the harness plays Twilio); raises ProtocolError."""
    raw = _object(text)
    match raw["event"]:
        case "media":
            return Media(payload=_payload(_part(raw, "media")))
        case "mark":
            return Mark(name=_text(_part(raw, "mark"), "name"))
        case "clear":
            return Clear()
        case other:
            raise ProtocolError(f"unknown event {other!r}")


def encode_to_twilio(message: ToTwilio, stream_sid: str) -> str:
    """JSON text of a message for Twilio."""
    body: dict[str, Any] = {"event": "", "streamSid": stream_sid}
    match message:
        case Media(payload=payload):
            body["event"] = "media"
            body["media"] = {"payload": base64.b64encode(payload).decode("ascii")}
        case Mark(name=name):
            body["event"] = "mark"
            body["mark"] = {"name": name}
        case Clear():
            body["event"] = "clear"
    return json.dumps(body, separators=(",", ":"))


def encode_from_twilio(message: FromTwilio, *, stream_sid: str, sequence: int) -> str:
    """JSON text of a message as Twilio sends it (for the harness and the tests)."""
    body: dict[str, Any]
    match message:
        case Connected(protocol=protocol, version=version):
            return json.dumps({"event": "connected", "protocol": protocol, "version": version})
        case Start():
            body = {
                "event": "start",
                "start": {
                    "accountSid": message.account_sid,
                    "streamSid": stream_sid,
                    "callSid": message.call_sid,
                    "tracks": list(message.tracks),
                    "mediaFormat": {
                        "encoding": _ENCODING,
                        "sampleRate": _SAMPLE_RATE,
                        "channels": 1,
                    },
                    "customParameters": dict(message.custom_parameters),
                },
            }
        case Media():
            body = {
                "event": "media",
                "media": {
                    "track": message.track,
                    "chunk": str(message.chunk),
                    "timestamp": str(message.timestamp_ms),
                    "payload": base64.b64encode(message.payload).decode("ascii"),
                },
            }
        case Dtmf(digit=digit):
            body = {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}}
        case Mark(name=name):
            body = {"event": "mark", "mark": {"name": name}}
        case Stop(call_sid=call_sid, account_sid=account_sid):
            body = {"event": "stop", "stop": {"accountSid": account_sid, "callSid": call_sid}}
    body["sequenceNumber"] = str(sequence)
    body["streamSid"] = stream_sid
    return json.dumps(body, separators=(",", ":"))

"""The ports a call talks through, and the small values that cross them.

A `CallSession` knows nothing of SIP, Twilio or which engine runs: it sees a `CallLine` and one
object per capability below. Every adapter of a port passes the same contract suite
(`tests/contract/`). Audio crossing a port is always 16 kHz mono PCM16.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "AgentAudio",
    "Answered",
    "CallInfo",
    "CallLine",
    "CallerAudio",
    "Echoing",
    "Embedder",
    "EndOfTurn",
    "Handoff",
    "KeyPress",
    "Keypad",
    "LanguageModel",
    "LineLoss",
    "LlmOutput",
    "Mailer",
    "Message",
    "Recall",
    "Recollection",
    "Screen",
    "SpeechDetector",
    "SpeechToText",
    "TextDelta",
    "TextToSpeech",
    "Texter",
    "ToolCall",
    "ToolSpec",
    "Transcript",
    "TransferError",
    "Transferable",
    "Undeliverable",
    "Verdict",
    "VoiceActivity",
]


class EngineError(RuntimeError):
    """An engine could not do what was asked; a fallback may take over."""


# --- speech to text -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    """What was said, as the engine wrote it (empty when it heard no words)."""
    confidence: float
    """0 to 1; the engine's own estimate."""
    engine: str


class SpeechToText(Protocol):
    name: str

    async def transcribe(self, pcm: bytes) -> Transcript:
        """Transcribe one caller utterance."""
        ...


# --- language model -------------------------------------------------------------------------

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool; `arguments` is the JSON text exactly as the model wrote it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    """On a `tool` message: the call it answers."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """JSON Schema of the arguments object."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


LlmOutput = TextDelta | ToolCall


class LanguageModel(Protocol):
    name: str

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LlmOutput]:
        """Text as it is generated; a tool call arrives whole, after any text before it."""
        ...


# --- end of turn ---------------------------------------------------------------------------


class EndOfTurn(Protocol):
    name: str

    async def complete(self, pcm: bytes) -> float:
        """The probability, 0 to 1, that the caller's turn in `pcm` (16 kHz) is finished."""
        ...


# --- text to speech -------------------------------------------------------------------------


class TextToSpeech(Protocol):
    name: str

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Speech for `text`, in chunks as soon as each is ready."""
        ...


@runtime_checkable
class Answered(Protocol):
    """A stream that knows which engine gave it (a fallback chain's): the turn's record says."""

    @property
    def engine(self) -> str | None:
        """The engine's name, once the stream's first item has come; None before."""
        ...


# --- voice activity -------------------------------------------------------------------------


class SpeechDetector(Protocol):
    """One call's detector: it keeps state from frame to frame."""

    async def probability(self, frame: bytes) -> float:
        """Probability (0 to 1) that this 20 ms frame is speech."""
        ...


class VoiceActivity(Protocol):
    name: str

    def detector(self) -> SpeechDetector:
        """A fresh detector for one call."""
        ...


# --- embeddings and memory ------------------------------------------------------------------


class Embedder(Protocol):
    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """One unit-length vector per text; `query` for a search, otherwise a stored passage."""
        ...


@dataclass(frozen=True, slots=True)
class Recollection:
    """Something an earlier call with this caller left behind (a summary or a fact)."""

    text: str
    call_id: str
    """The earlier call it comes from."""
    distance: float
    """Cosine distance to what the caller just said: 0 is the same meaning, 2 the opposite."""
    source: Literal["caller", "business"] = "caller"
    """An earlier call with this caller, or the business profile's FAQ."""


class Recall(Protocol):
    async def recall(self, said: str) -> Sequence[Recollection]:
        """What earlier calls with this caller hold that is nearest to `said`, nearest first."""
        ...


# --- messages to people ---------------------------------------------------------------------


# --- safety -----------------------------------------------------------------------------------


Speaker = Literal["caller", "agent"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a safety screen made of one piece of text."""

    flagged: bool
    score: float
    """0 to 1: how likely the screen thinks the text is harmful (1.0 for a rule's match)."""
    threshold: float
    """At or above this score the text is flagged."""
    category: str = ""
    """The rule that matched (`weapons`, `injection`, ...), `model` for the classifier alone,
    empty when nothing was flagged."""
    engine: str = ""


class Screen(Protocol):
    """Checks what the caller said before the model sees it, and each sentence of the agent's
    before it is heard."""

    async def check(self, text: str, *, speaker: Speaker) -> Verdict: ...


class Undeliverable(Exception):
    """The service refused the message for good (a bad address, bad credentials): do not retry."""


class Mailer(Protocol):
    async def send_email(self, to: str, subject: str, body: str) -> str:
        """Send a plain-text email; returns the service's id for it (may be empty)."""
        ...


class Texter(Protocol):
    async def send_sms(self, to: str, body: str) -> str:
        """Send a text message; returns the service's id for it."""
        ...


# --- the phone line -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallInfo:
    call_id: str
    line: str
    """`wav`, `sip`, `twilio` or `local`."""
    caller: str
    """The caller's number or address, as the line knows it."""
    callee: str = ""
    back_from: Handoff | None = None
    """The hand-off nobody answered, when the caller comes back to the agent after it (on
    Twilio, a new stream of the same call): the agent starts by taking a message."""
    vouched: bool = False
    """Whether the line vouches for `caller`: Twilio (its `From` is its own, on a signed
    request), a SIP trunk the box takes calls only from (`SIP_ALLOWED_SOURCES`) or that proved
    itself (digest). A caller ID alone is not an identity: what is remembered about a number is
    used, told or changed only on a call the line vouches for."""


class CallerAudio(Protocol):
    def listen(self) -> AsyncIterator[bytes]:
        """The caller's audio, one 20 ms frame at a time in real time; ends when they hang up."""
        ...


class AgentAudio(Protocol):
    """The agent's side of the line; positions count 20 ms frames since the call began."""

    async def play(self, frame: bytes) -> int:
        """Queue one frame for the caller and return its position; waits while the line is full."""
        ...

    async def clear(self) -> int:
        """Drop every frame not yet heard; returns the position heard up to."""
        ...

    async def drain(self) -> int:
        """Wait until everything queued has been heard; returns the position heard up to."""
        ...


class CallLine(CallerAudio, AgentAudio, Protocol):
    @property
    def info(self) -> CallInfo: ...

    async def hang_up(self) -> None:
        """End the call from our side."""
        ...


@runtime_checkable
class Echoing(Protocol):
    """A line whose microphone hears the agent too (a speakerphone). Its echo canceller can
    leak for a moment (the echo's path shifts and the filter re-learns it), and the leak sounds
    like a caller talking over the agent. So speech over the agent is not taken at once for a
    barge-in: the agent's audio is held (the caller hears it stop, as at a barge-in) and the
    speech counts only if it goes on once the echo of what was played has died away; if it
    stops with the agent's voice it was the echo, and the agent carries on where it stopped."""

    def hold(self) -> int:
        """Stop playing the agent's audio, keeping what is queued; returns how many more of
        the caller's frames may still carry the echo of what was played before. 0: none can
        (they were heard before the agent spoke), and nothing is held."""
        ...

    def release(self) -> None:
        """Play the agent's audio again from where `hold` stopped it."""
        ...


class TransferError(RuntimeError):
    """The line could not hand the call to a person; the message says why."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """A caller handed to a person: where to, who that is, and what to tell them first."""

    target: str
    """An E.164 number or a SIP URI; empty for the line's own escalation number."""
    who: str
    """The person or department, as the caller hears it ("the front desk")."""
    summary: str
    """What the person is told about the call before they are connected (spoken or texted)."""


@runtime_checkable
class Transferable(Protocol):
    """A line that can hand its live call to a person (the hand-off asks for it)."""

    async def transfer(self, handoff: Handoff) -> None:
        """Connect the caller to `handoff.target` (telling the person the summary first where
        the line can); the line ends for us once the person has the call.

        Raises TransferError when it cannot (not configured, refused, nobody answered); the
        call then goes on with the agent."""
        ...


@dataclass(frozen=True, slots=True)
class KeyPress:
    """A key the caller pressed."""

    digit: str
    """`0`-`9`, `*`, `#` or `A`-`D`."""
    method: str
    """How it came: `rfc4733` (in the audio stream), `sip-info`, `twilio`, ..."""


@runtime_checkable
class LineLoss(Protocol):
    """A line that can lose the call itself, without the caller hanging up (SIP: no audio
    from the caller for too long); the session records why rather than "caller hung up"."""

    @property
    def lost_because(self) -> str | None:
        """Why the line ended the call, once it has; None when the caller ended it."""
        ...


@runtime_checkable
class Keypad(Protocol):
    """A line whose caller can press keys."""

    def presses(self) -> AsyncIterator[KeyPress]:
        """The keys the caller presses, as they press them; ends with the call."""
        ...

"""What happens on a call: facts in the past tense, commands in the imperative.

A call's story, in order: `CallStarted`, then per turn `CallerStartedSpeaking` ->
`CallerStoppedSpeaking` -> `TranscriptFinal` -> (`MemoryRecalled`) -> `ReplyStarted` ->
`AgentStartedSpeaking` -> (`ToolCalled` -> `ToolFinished`)* -> `ReplyFinished` or
`ReplyInterrupted` -> `TurnCompleted`, and finally `CallEnded`. A fixed phrase the agent says
outside a turn (the greeting, "are you still there?") ends in `PhraseSpoken`. When the agent ends
the call, `AgentHungUp` comes just before `CallEnded`. `DtmfReceived` may come at any time (the
caller pressed a key). A hand-off to a person is `Transfer` (what the conversation asks of the
line), then the call ends ("transferred") or `TransferFailed`, and the caller may leave a
`MessageTaken`. Every safety decision (the caller's words, each sentence of the agent's, each
tool call) is a `SafetyChecked`. Observers (the CLI, the records, the status page, metrics)
receive them through a sink.

"heard" always means what reached the caller's ear of the agent's words (`ReplyInterrupted.heard`,
`PhraseSpoken.heard`); what the caller said is a `transcript`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from appliance.conversation.ports import CallInfo, Recollection

__all__ = [
    "HELLO_OVER_GREETING",
    "AgentHungUp",
    "AgentStartedSpeaking",
    "AgentStoppedSpeaking",
    "CallEnded",
    "CallStarted",
    "CallerStartedSpeaking",
    "CallerStoppedSpeaking",
    "Command",
    "DtmfReceived",
    "EchoDismissed",
    "EngineFellBack",
    "Event",
    "EventSink",
    "Fact",
    "MemoryRecalled",
    "MessageTaken",
    "PhraseSpoken",
    "ReplyFinished",
    "ReplyInterrupted",
    "ReplyStarted",
    "SafetyChecked",
    "ToolCalled",
    "ToolFinished",
    "TranscriptFinal",
    "Transfer",
    "TransferFailed",
    "TurnCompleted",
    "TurnDiscarded",
]


@dataclass(frozen=True, slots=True)
class CallStarted:
    info: CallInfo
    at: float


@dataclass(frozen=True, slots=True)
class CallerStartedSpeaking:
    at: float
    during_reply: bool
    """The agent was speaking (or about to): this is a barge-in candidate."""


@dataclass(frozen=True, slots=True)
class EchoDismissed:
    """Speech over the agent, on a line that hears the agent (`Echoing`), stopped with the
    agent's voice: it was the echo. The agent, held meanwhile, carries on."""

    at: float
    held_ms: float
    """How long the agent's audio was held."""


@dataclass(frozen=True, slots=True)
class CallerStoppedSpeaking:
    at: float
    """When the last voiced frame arrived."""
    speech_ms: float


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    turn: int
    text: str
    confidence: float
    engine: str


HELLO_OVER_GREETING = "a hello over the greeting"
"""`TurnDiscarded.reason` of a "hello?" the greeting, heard whole, already answered: the agent
says nothing more to it."""


@dataclass(frozen=True, slots=True)
class TurnDiscarded:
    """The caller went on speaking (or said nothing intelligible, or only said hello over the
    greeting): the prepared reply is dropped."""

    turn: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReplyStarted:
    turn: int
    at: float


@dataclass(frozen=True, slots=True)
class AgentStartedSpeaking:
    turn: int
    at: float


@dataclass(frozen=True, slots=True)
class AgentStoppedSpeaking:
    turn: int
    at: float


@dataclass(frozen=True, slots=True)
class ToolCalled:
    turn: int
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolFinished:
    turn: int
    name: str
    ok: bool
    result: str


@dataclass(frozen=True, slots=True)
class ToolReadBack:
    """A tool with a side effect was asked for and read back to the caller (`text`, said by the
    code); it runs on their yes, in their next turn, as a new `ToolCalled`."""

    turn: int
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplyFinished:
    turn: int
    text: str


@dataclass(frozen=True, slots=True)
class ReplyInterrupted:
    turn: int
    heard: str
    """What the caller heard before they cut in: all the history keeps."""
    unsaid: str


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    turn: int
    transcript: str
    """What the caller said, as transcribed."""
    reply: str
    """What the caller heard the agent say."""
    interrupted: bool
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    starts_ms: Mapping[str, float] = field(default_factory=dict)
    """When each stage of `timings_ms` began, in ms after the caller stopped speaking."""
    engines: Mapping[str, str] = field(default_factory=dict)
    """Which engine answered each stage (`stt`, `llm`, `tts`): the local one, or a fallback."""


@dataclass(frozen=True, slots=True)
class PhraseSpoken:
    """A fixed phrase (greeting, reprompt, goodbye) reached the caller, whole or in part."""

    text: str
    heard: str
    """What the caller heard of it."""
    interrupted: bool


@dataclass(frozen=True, slots=True)
class MemoryRecalled:
    """Earlier calls held something near what the caller said in this turn."""

    turn: int
    found: tuple[Recollection, ...]


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """The caller pressed a key."""

    digit: str
    """`0`-`9`, `*`, `#` or `A`-`D`."""
    method: str
    """How it came: `rfc4733` (in the audio stream), `sip-info`, ..."""
    at: float


@dataclass(frozen=True, slots=True)
class EngineFellBack:
    port: str
    failed: str
    used: str
    reason: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentHungUp:
    """The agent ended the call (its goodbye was heard) and the line was hung up."""

    reason: str


@dataclass(frozen=True, slots=True)
class TransferFailed:
    """Nobody took the caller (refused, not answered, not configured); the call goes on."""

    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class MessageTaken:
    """The caller left a message for a person who could not take the call: their own words."""

    to: str
    """Who it is for, as the caller heard it."""
    target: str
    text: str


@dataclass(frozen=True, slots=True)
class SafetyChecked:
    """A safety decision: the caller's words, a sentence of the agent's, or a tool call."""

    turn: int
    layer: str
    """`caller`, `agent` or `tool`."""
    text: str
    """What was checked (a tool call as `name {arguments}`)."""
    action: str
    """`allowed`; `refused` (the caller heard the refusal instead of a reply), `replaced` (the
    agent's sentence was replaced by the refusal and the rest of the reply dropped), `ended`
    (repeated abuse: the call was ended), or `blocked` (a tool call the policy does not allow)."""
    score: float = 0.0
    threshold: float = 0.0
    category: str = ""
    engine: str = ""
    """Which screen or policy decided."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """The conversation hands the caller to a person at `target`, who is told `summary`."""

    target: str
    summary: str


Fact = (
    CallStarted
    | CallerStartedSpeaking
    | CallerStoppedSpeaking
    | EchoDismissed
    | TranscriptFinal
    | TurnDiscarded
    | ReplyStarted
    | AgentStartedSpeaking
    | AgentStoppedSpeaking
    | ToolCalled
    | ToolFinished
    | ToolReadBack
    | ReplyFinished
    | ReplyInterrupted
    | TurnCompleted
    | PhraseSpoken
    | MemoryRecalled
    | DtmfReceived
    | EngineFellBack
    | AgentHungUp
    | TransferFailed
    | MessageTaken
    | SafetyChecked
    | CallEnded
)
Command = Transfer
Event = Fact | Command

EventSink = Callable[[Event], None]
"""Receives every event of a call; must not block (hand slow work to a queue of your own)."""

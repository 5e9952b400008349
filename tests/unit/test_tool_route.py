"""The two-stage tool route's parts that need no model: the action pick, the prompt pieces, the
tool list, and the registry's refusal of an argument called `name`."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from appliance.conversation.ports import Message, ToolCall, ToolSpec
from appliance.conversation.tools import Tool, ToolContext, ToolRegistry
from appliance.engines.llm import route
from tests.support.desk import front_desk

WEATHER = ToolSpec(
    "get_weather",
    "The forecast.",
    {"type": "object", "properties": {"day": {"type": "string"}}},
)
CLOCK = ToolSpec("get_current_time", "The time.", {"type": "object", "properties": {}})


SPELLINGS = {"speak": [1, 2], "get_weather": [3, 4, 9], "get_current_time": [3, 5, 6, 9]}


def test_pick_follows_the_likeliest_allowed_token_until_one_action_is_left() -> None:
    logits = {1: 0.5, 3: 2.0, 4: 0.1, 5: 0.3, 7: 99.0}  # 7: likely, but no action's token
    advanced: list[int] = []

    chosen = route.pick(SPELLINGS, lambda t: logits.get(t, -1.0), advanced.append)

    assert chosen == "get_current_time"
    assert advanced == [3]  # after `5`, one action was left: no step was taken for it


def test_pick_takes_no_step_when_the_first_token_decides() -> None:
    advanced: list[int] = []

    assert route.pick(SPELLINGS, lambda t: 1.0 if t == 1 else 0.0, advanced.append) == "speak"
    assert advanced == []
    assert route.pick({"end_call": [8]}, lambda t: 0.0, advanced.append) == "end_call"


def test_speak_is_listed_first_and_the_list_is_the_same_bytes_every_time() -> None:
    _, specs = front_desk()
    listed = route.template_tools(specs)

    assert [entry["function"]["name"] for entry in listed] == [
        "speak",
        *(spec.name for spec in specs),
    ]
    assert json.dumps(listed) == json.dumps(route.template_tools(front_desk()[1]))
    assert route.template_tools([]) == []


def test_the_openings_match_how_the_template_writes_a_call() -> None:
    # Qwen2.5's template: '<tool_call>\n{"name": "' + name + '", "arguments": ' + tojson(args)
    assert route.call_opening() == '<tool_call>\n{"name": "'
    assert route.arguments_opening("get_weather") == (
        '<tool_call>\n{"name": "get_weather", "arguments": '
    )


def test_arguments_are_a_closed_object_and_argumentless_tools_skip_stage_two() -> None:
    assert route.arguments_schema(WEATHER)["additionalProperties"] is False
    assert route.takes_arguments(WEATHER)
    assert not route.takes_arguments(CLOCK)
    assert not route.takes_arguments(ToolSpec("end_call", "Hang up."))


def test_tools_called_since_the_caller_spoke_are_the_ones_this_turn() -> None:
    earlier = ToolCall("1", "get_current_time", "{}")
    now = ToolCall("2", "get_weather", '{"day": "friday"}')
    messages = [
        Message("user", "What time is it?"),
        Message("assistant", "", tool_calls=(earlier,)),
        Message("tool", "It is noon.", tool_call_id="1"),
        Message("assistant", "It is noon."),
        Message("user", "And the weather on Friday?"),
        Message("assistant", "", tool_calls=(now,)),
        Message("tool", "Sunny.", tool_call_id="2"),
    ]

    assert route.called_this_turn(messages) == {"get_weather"}
    assert route.called_this_turn(messages[:5]) == set()


def test_a_result_reaches_the_model_in_its_tags_with_the_request_to_tell() -> None:
    assert route.result_for_model("Sunny.") == (
        "<tool_response>\nSunny.\n</tool_response>\nTell the caller in one short sentence."
    )


class _Named(BaseModel):
    name: str


async def _noop(arguments: BaseModel, context: ToolContext) -> str:
    return ""


def test_the_registry_refuses_an_argument_called_name() -> None:
    with pytest.raises(ValueError, match=r"'take_message'.*'name'.*caller_name"):
        ToolRegistry([Tool("take_message", "Take a message.", _Named, _noop)])


def test_no_tool_in_appliance_tools_has_an_argument_called_name() -> None:
    _, specs = front_desk()

    assert specs
    for spec in specs:
        assert "name" not in spec.parameters.get("properties", {}), spec.name

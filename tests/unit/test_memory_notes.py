"""Checking the language model's notes on a call; the answers here are the default model's own
where a comment says so, and crafted to tempt the checks elsewhere."""

from __future__ import annotations

import pytest

from appliance.memory.notes import caller_name, caller_request, claims_a_deed, grounded_facts

MARIA = (
    "Hi, my name is Maria Lopez. I would like to book a table for four people on Friday "
    "evening. I'm allergic to peanuts."
)
HOURS = "Can you text me your opening hours for Saturday?"


def test_facts_the_caller_said_are_kept_and_made_up_ones_are_not() -> None:
    # Qwen2.5-Coder-0.5B's answers, as it gave them (one line, dashes between the facts).
    answer = (
        "Maria Lopez - booked a table for four people on Friday evening - allergic to "
        "peanuts - needs to order a peanut allergy meal"
    )
    # "booked" tells of a deed (the record says whether anything was booked): not a fact.
    assert grounded_facts(answer, MARIA) == ["Maria Lopez", "allergic to peanuts"]
    assert grounded_facts("- wants to book a table for four on Friday", MARIA) == [
        "wants to book a table for four on Friday"
    ]
    invented = (
        "- The caller is Tess at TEL3SIS.\n- They booked a restaurant for 10 minutes.\n"
        "- They prefer to eat pizza.\n- They need to go to the park.\n- none"
    )
    assert grounded_facts(invented, "Go forward ten meters.") == []
    assert grounded_facts("- none\n- none\n- none", MARIA) == []


def test_a_name_is_not_a_fact_and_a_deed_is_not_a_fact() -> None:
    said = "My name is Corral and I want the opening hours texted to me."
    answer = "- Name: Corral\n- The caller's name is Corral\n- Was texted the opening hours"
    assert grounded_facts(answer, said) == []
    assert grounded_facts("- wants the opening hours", said) == ["wants the opening hours"]


@pytest.mark.parametrize(
    "answer",
    [
        "The caller wanted their opening hours for Saturday, and the assistant texted them.",
        "The caller wanted the hours; they were sent by text.",
        "The caller was texted the opening hours for Saturday.",
        "Tess told the caller the opening hours for Saturday.",
        "The caller wanted the hours and Tess sent them.",
        "Caller: Can you text me your opening hours for Saturday?",
        "The caller wanted to order a pizza with extra cheese.",
        "The assistant will text the opening hours.",
        "",
    ],
)
def test_a_request_that_tells_of_a_deed_or_is_not_the_callers_is_their_words_instead(
    answer: str,
) -> None:
    assert caller_request(answer, HOURS, agent="Tess") == (f'The caller said: "{HOURS}"', False)


def test_a_request_in_the_callers_words_is_kept_as_one_sentence() -> None:
    answer = "The caller wanted a text with the opening hours for Saturday. Then they hung up."
    assert caller_request(answer, HOURS, agent="Tess") == (
        "The caller wanted a text with the opening hours for Saturday.",
        True,
    )
    assert caller_request("The caller wanted to book a table for four", MARIA) == (
        "The caller wanted to book a table for four.",
        True,
    )
    assert caller_request("x", "")[0] == "The caller said nothing."


def test_the_agents_name_in_a_request_is_the_business() -> None:
    # Qwen2.5-Coder-0.5B's answer, as it gave it: "you" became the agent's name.
    answer = "The caller wanted to know when Tess would open on Saturday."
    said = "Hello, what time do you open on Saturday?"
    assert caller_request(answer, said, agent="Tess", business="Harbour Dental") == (
        "The caller wanted to know when Harbour Dental would open on Saturday.",
        True,
    )
    told = "The caller wanted to know when Tess would open, and Tess told them ten."
    assert not caller_request(told, said, agent="Tess", business="Harbour Dental")[1]


def test_deeds_are_told_apart_from_requests() -> None:
    assert claims_a_deed("The agent said it would call back")
    assert claims_a_deed("A summary was texted to the caller")
    assert not claims_a_deed("The caller wanted a text with the hours")


def test_the_callers_name_comes_from_their_own_words() -> None:
    assert caller_name(["Hello.", MARIA]) == "Maria Lopez"
    assert caller_name(["this is about my order"]) is None
    assert caller_name(["This is Bob calling about my order"]) == "Bob"

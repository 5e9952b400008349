"""Checking the language model's notes on a call; the answers here are the default model's own."""

from __future__ import annotations

from appliance.memory.notes import caller_name, grounded_facts, usable_summary

MARIA = (
    "Hi, my name is Maria Lopez. I would like to book a table for four people on Friday "
    "evening. I'm allergic to peanuts."
)


def test_facts_the_caller_said_are_kept_and_made_up_ones_are_not() -> None:
    # Qwen2.5-Coder-0.5B's answers, as it gave them (one line, dashes between the facts).
    answer = (
        "Maria Lopez - booked a table for four people on Friday evening - allergic to "
        "peanuts - needs to order a peanut allergy meal"
    )
    assert grounded_facts(answer, MARIA) == [
        "Maria Lopez",
        "booked a table for four people on Friday evening",
        "allergic to peanuts",
    ]
    invented = (
        "- The caller is Tess at TEL3SIS.\n- They booked a restaurant for 10 minutes.\n"
        "- They prefer to eat pizza.\n- They need to go to the park.\n- none"
    )
    assert grounded_facts(invented, "Go forward ten meters.") == []
    assert grounded_facts("- none\n- none\n- none", MARIA) == []


def test_an_echoed_transcript_is_not_taken_for_a_summary() -> None:
    echoed = "Agent: Hello, how can I help?\nCaller: Go forward ten meters."
    assert usable_summary(echoed, "Go forward ten meters.") == (
        'The caller said: "Go forward ten meters."',
        False,
    )
    good = "The caller wanted to book a table for four on Friday."
    assert usable_summary(good, MARIA) == (good, True)


def test_the_callers_name_comes_from_their_own_words() -> None:
    assert caller_name(["Hello.", MARIA]) == "Maria Lopez"
    assert caller_name(["this is about my order"]) is None
    assert caller_name(["This is Bob calling about my order"]) == "Bob"

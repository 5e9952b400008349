"""Phrase rules: the requests no front desk ever needs to hear answered, caught in microseconds.

The classifier (`linear.py`) judges meaning; these catch the plain, unmistakable forms (how to make
a bomb, "ignore your instructions", "what's the alarm code") whatever the classifier makes of
them, and give the decision a category. Each pattern needs a request or an intent next to the
alarming word, so "my tooth is killing me" or "the bomb of a sandwich" match nothing.

Written from the categories' definitions and the training utterances, never from the red-team
set, which stays a fair test of them (`appliance redteam`).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["AGENT_RULES", "RULES", "matched_rule"]

_HOW: Final = (
    r"(how (do|can|would|could|should|to)\b|teach me|show me|tell me how|steps? (to|for)|"
    r"instructions? (for|to|on)|recipe for|ways? to|best way to|help me|i want to|i'm going to|"
    r"i am going to|i'll|i will|gonna|going to)"
)
_PEOPLE: Final = (
    r"(someone|somebody|a (person|man|woman|kid|child)|people|him|her|them|my "
    r"(wife|husband|boss|neighbou?r|ex|dad|mum|mom|brother|sister|partner|family|"
    r"girlfriend|boyfriend|teacher|landlord|coworker|colleague)|the (doctor|dentist|staff|"
    r"receptionist|owner|manager))"
)

RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = tuple(
    (category, re.compile(pattern, re.IGNORECASE))
    for category, pattern in (
        (
            "weapons",
            _HOW + r".{0,40}\b(make|build|assemble|construct|print|get|buy|wire|rig)\w*\b.{0,30}"
            r"\b(bombs?|explosives?|pipe ?bombs?|molotovs?|grenades?|ieds?|napalm|detonators?|"
            r"ghost guns?|silencers?|suppressors?|untraceable (gun|firearm|weapon)s?|"
            r"nerve agents?|ricin|sarin|thermite)\b",
        ),
        (
            "weapons",
            r"\b(pipe ?bomb|molotov cocktail|nail bomb|car bomb|dirty bomb|ied)\b",
        ),
        (
            "violence",
            _HOW + r".{0,30}\b(kill|murder|hurt|poison|strangle|stab|shoot|beat up|attack|"
            r"torture|kidnap|drown|suffocate|choke)\b.{0,20}\b" + _PEOPLE,
        ),
        (
            "violence",
            r"\b(get away with|hide|dispose of|get rid of) (a |the )?(murder|body|corpse)\b",
        ),
        (
            "self_harm",
            r"\b(kill(ing)? myself|end (it all|my (own )?life)|take my (own )?life|suicid\w*|"
            r"hurt(ing)? myself|harm(ing)? myself|self[- ]harm|cut(ting)? myself|"
            r"want to die|don't want to (live|be alive)|overdose|how many pills (would|will|to))",
        ),
        (
            "injection",
            r"\b(ignore|disregard|forget|override|bypass) (all |any |your |the |my |previous |"
            r"prior |earlier |above |these )*(instructions|rules|prompts?|guidelines|"
            r"programming|restrictions|safety|filters?)\b",
        ),
        (
            "injection",
            r"\b(system prompt|developer mode|jailbreak|jail break|dan mode|do anything now|"
            r"god mode|admin mode|maintenance mode|debug mode|new instructions|"
            r"(repeat|print|reveal|read( me)?|tell me|show me) (your|the) (instructions|prompt|"
            r"rules|configuration|system message)|you are now (an? )?(unrestricted|unfiltered|"
            r"different|evil|new)|pretend (you are|you're|to be) (an? )?(unrestricted|"
            r"unfiltered|different|evil|another) |no (longer|more) (bound|restricted))",
        ),
        (
            "injection",
            r"^\s*(system|assistant|admin(istrator)?)\s*[:,-]",
        ),
        (
            "fraud",
            r"\b(alarm|door|safe|gate|entry|building|lock ?box|admin) (code|pin|password)s?\b",
        ),
        (
            "fraud",
            r"\b(change|update|switch) (the |your |our )?(bank|banking|account|payment|"
            r"direct debit|sort code|routing|iban) (details|number|info(rmation)?)\b.{0,40}"
            r"\b(supplier|invoice|payroll|payments?|to (this|my|a new))\b",
        ),
        (
            "fraud",
            r"\b(staff|employee|admin|system|account|login) (password|credentials|login details)\b",
        ),
        (
            "fraud",
            r"\b(pay|paid|payment|buy|send)\b.{0,30}\bgift ?cards?\b",
        ),
        (
            "other_data",
            r"\b(another|other|someone else'?s?|somebody else'?s?|the (last|previous|next) "
            r"(caller|patient|customer|client)'?s?)\b.{0,30}\b(appointment|address|phone number|"
            r"number|records?|details|file|notes|history|results|prescriptions?|diagnosis|"
            r"information|info|bookings?)\b",
        ),
        (
            "other_data",
            r"\bmy (wife|husband|ex|ex-wife|ex-husband|neighbou?r|boss|partner|girlfriend|"
            r"boyfriend|daughter|son|sister|brother|mother|father|mum|mom|dad|coworker|"
            r"colleague|tenant|roommate|flatmate)'?s? (medical |dental )?(records?|address|"
            r"(phone )?number|results|diagnosis|prescriptions?|notes|file|history)\b",
        ),
        (
            "other_data",
            r"\bwhat (did|has) (my |the )?(wife|husband|ex|neighbou?r|boss|partner|last caller|"
            r"previous caller|other caller)\b.{0,20}\b(tell|told|say|said)\b",
        ),
        (
            "drugs",
            _HOW + r".{0,30}\b(make|cook|synthesi[sz]e|brew|grow|extract|produce)\b.{0,25}"
            r"\b(meth|methamphetamine|crack|cocaine|heroin|fentanyl|lsd|mdma|ecstasy|ghb|dmt|"
            r"crystal)\b",
        ),
        (
            "drugs",
            r"\b(poison|drug|spike|roofie|sedate)\w* (someone|somebody|my|her|his|their|a) ?"
            r"(drink|food|coffee|tea|wife|husband|boss|date)?\b.{0,20}"
            r"(without (them|him|her) (knowing|noticing)|undetect\w*|untrace\w*)",
        ),
        (
            "harassment",
            r"\b(you('re| are)|you stupid|you useless|you worthless|you pathetic) ?(a |an |such "
            r"an? )?(stupid|useless|worthless|pathetic|moron\w*|idiot\w*|dumb|brainless|"
            r"garbage|trash|piece of (shit|crap|junk)|bitch|bastard|cunt|whore|slut)\b",
        ),
        (
            "harassment",
            r"\b(fuck (you|off|this)|shut (the fuck )?up,? (you|bitch|bot)|go to hell|"
            r"(i'll|i will|i'm going to|gonna|going to) (find|hunt|hurt|kill|beat|burn|smash)"
            r" (you|your|the staff|everyone|the (clinic|office|shop|place|receptionist|doctor)))",
        ),
    )
)
"""(category, pattern) in the order they are tried."""

AGENT_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = tuple(
    (category, re.compile(pattern, re.IGNORECASE))
    for category, pattern in (
        (
            # A front desk books the visit; it does not prescribe. A medicine named or a dose
            # given by the agent is medical advice, whatever the model meant by it.
            "medical",
            r"\b(ibuprofen|paracetamol|acetaminophen|aspirin|advil|tylenol|motrin|aleve|"
            r"naproxen|nurofen|codeine|tramadol|oxycodone|amoxicillin|penicillin|antibiotics?|"
            r"painkillers?|pain relievers?|anti-?inflammator(y|ies)|benzocaine|orajel|"
            r"clove oil|\d+ ?(mg|milligrams?|ml|millilit(er|re)s?)\b)",
        ),
    )
)
"""Rules for the agent's sentences only: what it may not say though a caller may."""


def matched_rule(text: str, *, agent: bool = False) -> str | None:
    """The category of the first rule `text` matches (the agent's rules too, for `agent`), or
    None."""
    for category, pattern in (*RULES, *AGENT_RULES) if agent else RULES:
        if pattern.search(text):
            return category
    return None

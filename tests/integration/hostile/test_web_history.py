"""The call history under hostile page numbers: any `page` answers a page, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from appliance.settings import Settings
from tests.support.status import Box, log_in, seed_call, serve_box


@pytest_asyncio.fixture
async def box(app_settings: Settings) -> AsyncIterator[Box]:
    async for made in serve_box(app_settings):
        yield made


@pytest.mark.parametrize("page", ["2", str(2**62), str(10**30), "-7", "0"])
async def test_a_page_past_the_end_shows_the_last_page(
    box: Box, page: str, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(30):  # two pages of 25
        await seed_call(
            box.app.records.db, box.app.settings.paths.recordings, call_id=f"CAmore{n:04d}"
        )
    async with box.client() as http:
        await log_in(http)
        with caplog.at_level(logging.ERROR):
            shown = await http.get("/calls", params={"page": page})
    assert shown.status_code == 200
    assert "of 2</span>" in shown.text
    last = page not in ("-7", "0")
    assert ("Page 2 of 2" in shown.text) == last
    assert (box.call_id in shown.text) == last  # the oldest call is on the last page
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_page_that_is_not_a_number_is_refused_plainly(box: Box) -> None:
    async with box.client() as http:
        await log_in(http)
        shown = await http.get("/calls", params={"page": "9" * 5000})
        assert shown.status_code in (200, 422)
        shown = await http.get("/calls", params={"page": "many"})
        assert shown.status_code == 422

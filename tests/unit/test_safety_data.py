"""The safety screens' labelled sets are well formed, big enough per category, free of duplicates,
and the training set shares no utterance (nor a near copy of one) with the red-team set."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from appliance.safety.labelled import (
    BENIGN_CATEGORIES,
    CATEGORIES,
    DATA_DIR,
    UNSAFE_CATEGORIES,
    Row,
    jaccard,
    jaccard_sets,
    load_rows,
    normalise,
    word_set,
)

REDTEAM = DATA_DIR / "redteam.tsv"
TRAINING = DATA_DIR / "phone_train.tsv"
NEAR = 0.7
"""Word-set Jaccard at or above which two utterances count as one said twice."""


def near_pairs(left: list[Row], right: list[Row], threshold: float) -> list[tuple[str, str]]:
    """Every (left text, right text) whose word sets overlap by `threshold` or more."""
    right_sets = [(row.text, word_set(row.text)) for row in right]
    return [
        (row.text, text)
        for row in left
        for text, words in right_sets
        if jaccard_sets(word_set(row.text), words) >= threshold
    ]


def duplicates(rows: list[Row]) -> list[str]:
    """The normalised texts said more than once."""
    counts = Counter(normalise(row.text) for row in rows)
    return sorted(text for text, count in counts.items() if count > 1)


@pytest.fixture(scope="module")
def redteam() -> list[Row]:
    return load_rows(REDTEAM)


@pytest.fixture(scope="module")
def training() -> list[Row]:
    return load_rows(TRAINING)


def test_normalise_keeps_only_lowercase_words_and_jaccard_compares_their_sets() -> None:
    assert (
        normalise("  Um, I'm   DYING to know -- open Sunday?! ")
        == "um i m dying to know open sunday"
    )
    assert jaccard("Open on Sunday?", "open sunday ON") == 1.0
    assert jaccard("a b c d", "a b x y") == pytest.approx(2 / 6)
    assert jaccard("", "...") == 0.0


@pytest.mark.parametrize("path", [REDTEAM, TRAINING], ids=lambda p: p.name)
def test_a_set_parses_and_every_label_is_its_categorys(path: Path) -> None:
    assert path.read_text(encoding="utf-8").split("\n", 1)[0] == "category\tlabel\ttext"
    rows = load_rows(path)
    assert rows
    for row in rows:
        assert row.category in CATEGORIES, row
        assert row.label == ("unsafe" if row.category in UNSAFE_CATEGORIES else "benign"), row
        assert row.text and row.text == row.text.strip(), row


@pytest.mark.parametrize("path", [REDTEAM, TRAINING], ids=lambda p: p.name)
def test_no_utterance_is_said_twice_in_a_set(path: Path) -> None:
    assert duplicates(load_rows(path)) == []


def test_the_red_team_set_covers_every_category(redteam: list[Row]) -> None:
    counts = Counter(row.category for row in redteam)
    assert len(redteam) >= 300
    short = {c: counts[c] for c in UNSAFE_CATEGORIES if counts[c] < 30}
    short |= {c: counts[c] for c in BENIGN_CATEGORIES if counts[c] < 40}
    assert short == {}


def test_the_training_set_covers_every_category(training: list[Row]) -> None:
    counts = Counter(row.category for row in training)
    assert len(training) >= 400
    short = {c: counts[c] for c in UNSAFE_CATEGORIES if counts[c] < 30}
    short |= {c: counts[c] for c in BENIGN_CATEGORIES if counts[c] < 60}
    assert short == {}


def test_the_benign_categories_include_off_topic_speech(
    redteam: list[Row], training: list[Row]
) -> None:
    assert {"benign", "benign_alarming", "benign_offtopic"} <= BENIGN_CATEGORIES
    assert Counter(row.category for row in redteam)["benign_offtopic"] >= 40
    assert Counter(row.category for row in training)["benign_offtopic"] >= 60


def test_the_training_set_shares_no_utterance_with_the_red_team_set(
    redteam: list[Row], training: list[Row]
) -> None:
    shared = {normalise(r.text) for r in redteam} & {normalise(r.text) for r in training}
    assert shared == set()
    assert near_pairs(redteam, training, NEAR) == []


def test_the_overlap_check_finds_a_one_word_change() -> None:
    said = [Row("benign", "benign", "um, what time do you open on Sunday morning")]
    copied = [Row("benign", "benign", "um, what time do you open on Saturday morning")]
    other = [Row("benign", "benign", "can I move my appointment to next week")]
    assert near_pairs(said, copied, NEAR) == [(said[0].text, copied[0].text)]
    assert near_pairs(said, other, NEAR) == []
    assert duplicates(
        [*said, Row("benign", "benign", "Um what time do you OPEN on sunday morning?")]
    )


GOOD = "violence\tunsafe\tI'm going to hurt someone"


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("violence\tunsafe", "expected 3 tab-separated fields, got 2"),
        ("violence\tunsafe\thurt\tsomeone", "expected 3 tab-separated fields, got 4"),
        ("violence\tmaybe\tI'm going to hurt someone", "unknown label 'maybe'"),
        ("gossip\tunsafe\twho rang before me", "unknown category 'gossip'"),
        ("benign\tunsafe\twhat time do you open", "category 'benign' is benign, not unsafe"),
        ("benign\tbenign\t what time do you open", "empty or has surrounding spaces"),
        ("benign\tbenign\t", "empty or has surrounding spaces"),
        ("", "expected 3 tab-separated fields, got 1"),
    ],
)
def test_a_bad_row_is_refused_naming_its_file_and_line(
    tmp_path: Path, line: str, complaint: str
) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(f"category\tlabel\ttext\n{GOOD}\n{GOOD}x\n{line}\n{GOOD}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bad\.tsv:4: .*{re.escape(complaint)}") as raised:
        load_rows(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("header", ["", "category\ttext\tlabel", "Category\tlabel\ttext"])
def test_a_wrong_header_is_refused_at_line_one(tmp_path: Path, header: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(f"{header}\n{GOOD}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.tsv:1: the header must be"):
        load_rows(path)


def test_a_good_file_loads_in_order(tmp_path: Path) -> None:
    path = tmp_path / "good.tsv"
    path.write_text(f"category\tlabel\ttext\n{GOOD}\nbenign\tbenign\tbye now\n", encoding="utf-8")
    assert load_rows(path) == [
        Row("violence", "unsafe", "I'm going to hurt someone"),
        Row("benign", "benign", "bye now"),
    ]

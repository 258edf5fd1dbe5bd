from __future__ import annotations

import pytest

from captcha_tui.core.spec import PAD, CodeSpec, LabelError, SpecError, parse_length_range


def test_round_trip_through_a_dict() -> None:
    spec = CodeSpec("abc1", 4, 6, (120, 50), keep_case=True, decoder="ctc")
    assert CodeSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["image_size"] == [120, 50]  # JSON-friendly


def test_reads_the_flat_fields_of_files_written_before_it() -> None:
    old = {"charset": "ab", "length": 4, "image_size": [56, 24], "keep_case": False, "preset": "fast"}
    assert CodeSpec.read(old) == CodeSpec("ab", 4, 4, (56, 24))
    assert CodeSpec.read({"spec": CodeSpec("xy", 2, 3, (9, 9), decoder="ctc").to_dict()}).max_length == 3


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"charset": "aab", "min_length": 4, "max_length": 4, "image_size": [1, 1]},
            r"repeats characters \('a'\)",
        ),
        ({"charset": "", "min_length": 4, "max_length": 4, "image_size": [1, 1]}, "no charset"),
        ({"charset": "a b", "min_length": 4, "max_length": 4, "image_size": [1, 1]}, "white space"),
        ({"charset": 7, "min_length": 4, "max_length": 4, "image_size": [1, 1]}, "charset 7 is not a string"),
        ({"charset": "ab", "min_length": 0, "max_length": 4, "image_size": [1, 1]}, "code length 0"),
        ({"charset": "ab", "min_length": True, "max_length": 4, "image_size": [1, 1]}, "min length True"),
        ({"charset": "ab", "min_length": 5, "max_length": 4, "image_size": [1, 1]}, "range 5–4 is empty"),
        ({"charset": "ab", "min_length": 4, "max_length": 4, "image_size": [56]}, "image size"),
        ({"charset": "ab", "min_length": 4, "max_length": 4, "image_size": [56, 0]}, "image size"),
        ({"charset": "ab", "min_length": 4, "max_length": 4}, "no image size"),
        (
            {"charset": "ab", "min_length": 4, "max_length": 4, "image_size": [1, 1], "decoder": "x"},
            "decoder 'x'",
        ),
        (
            {"charset": "ab", "min_length": 4, "max_length": 6, "image_size": [1, 1]},
            "need a CTC or slots model",
        ),
        ("nonsense", "no spec"),
    ],
)
def test_bad_fields_are_named(data, match) -> None:
    with pytest.raises(SpecError, match=match):
        CodeSpec.from_dict(data)


def test_a_spec_cannot_be_built_wrong_either() -> None:
    with pytest.raises(SpecError, match="repeats"):
        CodeSpec.fixed("aa", 4, (120, 50))
    with pytest.raises(SpecError, match="at most 255"):
        CodeSpec.fixed("".join(chr(0x4E00 + i) for i in range(256)), 4, (120, 50))


def test_labels_are_checked_encoded_and_decoded() -> None:
    spec = CodeSpec("abc", 2, 4, (120, 50), decoder="ctc")
    spec.check("cab")
    assert spec.encode("ca") == [2, 0, PAD, PAD]
    assert spec.decode([2, 0, PAD, PAD]) == "ca"
    for bad, reason in (
        ("", "empty label"),
        ("a", "expected 2–4"),
        ("abcab", "expected 2–4"),
        ("abz", "charset"),
    ):
        with pytest.raises(LabelError, match=reason):
            spec.check(bad)


def test_case_handling() -> None:
    assert CodeSpec.fixed("ab", 2, (1, 1)).normalise("AB") == "ab"
    assert CodeSpec.fixed("AB", 2, (1, 1), keep_case=True).normalise("AB") == "AB"


def test_differences_name_each_field() -> None:
    a = CodeSpec.fixed("abc", 4, (120, 50))
    b = CodeSpec("abd", 4, 6, (56, 24), decoder="ctc")
    assert a.differences(a) == []
    assert a.differences(b) == [
        "charset 'abc' ≠ 'abd'",
        "max length 4 ≠ 6",
        "image size 120×50 ≠ 56×24",
        "decoder 'positional' ≠ 'ctc'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"), [("5", (5, 5)), ("4-6", (4, 6)), ("4..6", (4, 6)), ("4–6", (4, 6))]
)
def test_length_ranges(text, expected) -> None:
    assert parse_length_range(text) == expected


@pytest.mark.parametrize("text", ["0", "6-4", "a", "1-2-3", ""])
def test_bad_length_ranges(text) -> None:
    with pytest.raises(ValueError, match="4-6"):
        parse_length_range(text)

"""Labels from file names and from labels.csv/.tsv, and the rules codes must follow."""

from __future__ import annotations

import pytest

from captcha_tui.core.labels import (
    UNDONE,
    LabelError,
    infer_charset,
    infer_length,
    label_from_name,
    normalise,
    read_label_file,
    read_label_rows,
)
from captcha_tui.core.spec import CodeSpec


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("00042-k3x9.png", "k3x9"),
        ("folder/00042-K3X9.gif", "K3X9"),
        ("a-b-c-xyzw.png", "xyzw"),  # the text after the last dash
        ("ö 验证码 00001-abcd.png", "abcd"),
        ("00042-k3x9", "k3x9"),
        ("k3x9.png", None),  # no dash: no code
        ("00042-.png", None),
        ("00042- .png", None),
    ],
)
def test_label_from_name(name, code) -> None:
    assert label_from_name(name) == code


def test_case() -> None:
    assert normalise("AbC") == "abc"
    assert normalise("AbC", keep_case=True) == "AbC"


def test_infer_length_and_charset() -> None:
    assert infer_length(["abcd", "efgh", "abc"]) == 4
    assert infer_length(["abc", "abcd"]) == 4  # a tie goes to the longer length
    assert infer_charset(["dcba", "ab2"]) == "2abcd"
    with pytest.raises(LabelError):
        infer_length([])


def test_spec_checks_and_encodes_labels() -> None:
    rules = CodeSpec.fixed("abc", 3, (120, 50))
    rules.check("cab")
    assert rules.encode("cab") == [2, 0, 1]
    assert rules.decode([2, 0, 1]) == "cab"
    with pytest.raises(LabelError, match="length"):
        rules.check("ab")
    with pytest.raises(LabelError, match="charset"):
        rules.check("abz")


def test_csv(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text(
        "path,label\n\nsub/00001.png,ABCD\n 00002.png , efgh \n", encoding="utf-8"
    )
    labels = read_label_file(tmp_path / "labels.csv")
    assert labels == {
        (tmp_path / "sub" / "00001.png").resolve(): "ABCD",
        (tmp_path / "00002.png").resolve(): "efgh",
    }


def test_tsv_with_bom_and_no_header(tmp_path) -> None:
    (tmp_path / "labels.tsv").write_text("\ufeffö 验证码.png\tabcd\nb.png\twxyz\n", encoding="utf-8")
    labels = read_label_file(tmp_path / "labels.tsv")
    assert labels[(tmp_path / "ö 验证码.png").resolve()] == "abcd"
    assert len(labels) == 2


@pytest.mark.parametrize("header", ["file,code", "filename,label", "image,text", "name,answer"])
def test_headers_are_recognised(tmp_path, header) -> None:
    (tmp_path / "labels.csv").write_text(f"{header}\na.png,abcd\n", encoding="utf-8")
    assert list(read_label_file(tmp_path / "labels.csv").values()) == ["abcd"]


def test_bad_rows_name_their_line(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text("a.png,abcd\n\nb.png\n", encoding="utf-8")
    with pytest.raises(LabelError, match=r"labels.csv line 3: expected 'path,label'"):
        read_label_file(tmp_path / "labels.csv")
    (tmp_path / "labels.tsv").write_text("a.png\tabcd\n\tefgh\n", encoding="utf-8")
    with pytest.raises(LabelError, match="line 2: no file name"):
        read_label_file(tmp_path / "labels.tsv")


def test_unparsable_csv_is_a_label_error(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text("a.png," + "x" * 200_000 + "\n")  # over csv's field limit
    with pytest.raises(LabelError, match="labels.csv"):
        read_label_file(tmp_path / "labels.csv")


def test_the_last_row_for_an_image_wins_with_its_note(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text(
        "path,label,note\na.png,abcd,\nb.png,,unreadable\na.png,,undone\nb.png,,undone\nb.png,wxyz,\n",
        encoding="utf-8",
    )
    rows = read_label_rows(tmp_path / "labels.csv")
    a, b = rows[(tmp_path / "a.png").resolve()], rows[(tmp_path / "b.png").resolve()]
    assert (a.label, a.note, a.line) == ("", UNDONE, 4)
    assert (b.label, b.note, b.line) == ("wxyz", "", 6)
    assert read_label_file(tmp_path / "labels.csv") == {a.path: "", b.path: "wxyz"}

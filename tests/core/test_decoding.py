from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch

from captcha_tui.core.decoding import (
    ReadError,
    ReadOptions,
    collapse,
    ctc_exact_length,
    ctc_greedy,
    ctc_greedy_batch,
    ctc_hits,
    decode_ctc,
    decode_positional,
    decode_slots,
    edit_distance,
    error_counts,
    plan_read,
    slots_batch,
)
from captcha_tui.core.spec import PAD, CodeSpec


def _random_probs(rng: np.random.Generator, steps: int, symbols: int) -> np.ndarray:
    logits = rng.normal(size=(steps, symbols)) * 2
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _brute_force(probs: np.ndarray, length: int):
    """The best path (and its log-probability) whose collapsed code has ``length`` characters."""
    steps, symbols = probs.shape
    blank = symbols - 1
    best, best_path = -np.inf, None
    for path in itertools.product(range(symbols), repeat=steps):
        if len(collapse(np.array(path), blank)) != length:
            continue
        score = float(np.log(probs[np.arange(steps), path]).sum())
        if score > best:
            best, best_path = score, path
    return best, best_path


def _path_score(probs, path) -> float:
    return float(np.log(probs[np.arange(len(path)), path]).sum())


@pytest.mark.parametrize("seed", range(12))
def test_exact_length_matches_a_brute_force_over_all_paths(seed) -> None:
    rng = np.random.default_rng(seed)
    steps, symbols = int(rng.integers(3, 7)), int(rng.integers(2, 4))  # charset of 1-2 + blank
    probs = _random_probs(rng, steps, symbols)
    for length in range(1, steps + 1):
        expected_score, expected_path = _brute_force(probs, length)
        got = ctc_exact_length(probs, length)
        if expected_path is None:
            assert got is None
            continue
        assert got is not None and len(got.indices) == length
        want = tuple(s for s, _, _ in collapse(np.array(expected_path), symbols - 1))
        # Ties between paths are possible only with equal scores; compare the code and the score.
        assert got.indices == want or np.isclose(expected_score, _best_score_for(probs, got.indices))


def _best_score_for(probs, code) -> float:
    steps, symbols = probs.shape
    best = -np.inf
    for path in itertools.product(range(symbols), repeat=steps):
        if tuple(s for s, _, _ in collapse(np.array(path), symbols - 1)) == tuple(code):
            best = max(best, _path_score(probs, path))
    return best


def _one_hot_path(path: list[int], symbols: int, sure: float = 0.9) -> np.ndarray:
    probs = np.full((len(path), symbols), (1 - sure) / (symbols - 1))
    probs[np.arange(len(path)), path] = sure
    return probs


def test_repeated_characters_need_a_blank_between_them() -> None:
    a, one, blank = 0, 1, 2
    probs = _one_hot_path([a, a, blank, a, one, blank, one, one], 3)  # reads "aa11"
    assert ctc_greedy(probs).indices == (a, a, one, one)
    assert ctc_exact_length(probs, 4).indices == (a, a, one, one)
    # Asked for 3 characters, the best path drops one of a repeated pair: not a truncation of "aa11".
    assert len(ctc_exact_length(probs, 3).indices) == 3
    assert ctc_exact_length(probs, 9) is None  # more characters than steps


def test_exact_length_is_not_the_greedy_code_cut_or_padded() -> None:
    # Greedy reads "ab" (a, then b for three steps). The best 3-character path reads the third step as a
    # blank, splitting the b's: "abb", which no cutting or padding of "ab" gives.
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.6, 0.3], [0.05, 0.5, 0.45], [0.1, 0.7, 0.2]])
    assert ctc_greedy(probs).indices == (0, 1)
    three = ctc_exact_length(probs, 3)
    assert three.indices == (0, 1, 1)
    assert np.isclose(_best_score_for(probs, three.indices), _brute_force(probs, 3)[0])


def test_confidence_is_the_probability_where_each_character_was_emitted() -> None:
    probs = _one_hot_path([0, 0, 2, 1], 3, sure=0.9)
    probs[1] = [0.95, 0.025, 0.025]
    decoded = ctc_greedy(probs)
    assert decoded.confidences == (0.95, 0.9)


def test_exact_length_is_quick() -> None:
    """Under 1 ms per image is the goal (measured by bench); here only that it is not pathological."""
    probs = _random_probs(np.random.default_rng(0), 30, 32)
    started = time.perf_counter()
    for _ in range(20):
        assert len(ctc_exact_length(probs, 8).indices) == 8
    assert (time.perf_counter() - started) / 20 < 0.05


def test_the_mask_keeps_only_the_asked_characters() -> None:
    spec = CodeSpec("ab12", 2, 4, (120, 50), decoder="ctc")
    plan = plan_read(spec, ReadOptions(charset="12"))
    assert plan.allowed.tolist() == [False, False, True, True]
    logits = torch.tensor([[[5.0, 0, 1, 0, 0], [0, 0, 0, 0, 5], [0, 5, 0, 1, 0]]])  # a, -, b; runners-up 1, 2
    from captcha_tui.core.decoding import decode_ctc

    assert decode_ctc(logits).pop().indices == (0, 1)
    assert decode_ctc(logits, plan).pop().indices == (2, 3)


def test_the_mask_on_a_per_position_model() -> None:
    spec = CodeSpec.fixed("ab12", 2, (120, 50))
    logits = torch.tensor([[[5.0, 0, 1, 0], [0, 5, 0, 1]]])
    assert decode_positional(logits)[0].indices == (0, 1)
    assert decode_positional(logits, plan_read(spec, ReadOptions(charset="12")))[0].indices == (2, 3)


def test_impossible_requests_say_why() -> None:
    positional = CodeSpec.fixed("ab12", 4, (120, 50))
    ctc = CodeSpec("ab12", 4, 6, (120, 50), decoder="ctc")
    with pytest.raises(ReadError, match="reads exactly 4 characters"):
        plan_read(positional, ReadOptions(length=5))
    assert plan_read(positional, ReadOptions(length=4)).length is None  # nothing to constrain
    with pytest.raises(ReadError, match="at most 30 characters"):
        plan_read(ctc, ReadOptions(length=31), steps=30)
    with pytest.raises(ReadError, match="cannot read any of 'XYZ'"):
        plan_read(CodeSpec.fixed("ab12", 4, (1, 1), keep_case=True), ReadOptions(charset="XYZ"))
    with pytest.raises(ReadError, match="at least 1"):
        plan_read(ctc, ReadOptions(length=0))
    notes = plan_read(ctc, ReadOptions(charset="1239", length=8), steps=30).notes
    assert any("cannot read '39'" in n or "cannot read '9'" in n for n in notes)
    assert any("outside the 4–6" in n for n in notes)
    # One character allowed: a blank between each two repeats, so 15 steps read at most 8 (it used to
    # read nothing, silently, with an empty code).
    with pytest.raises(ReadError, match=r"with only '2' to read, 9 characters need 17 time steps .* at most"):
        plan_read(ctc, ReadOptions(charset="2", length=9), steps=15)
    assert plan_read(ctc, ReadOptions(charset="2", length=8), steps=15).length == 8
    assert plan_read(ctc, ReadOptions(charset="12", length=15), steps=15).length == 15
    logits = torch.randn(1, 15, len(ctc.charset) + 1)
    read = decode_ctc(logits, plan_read(ctc, ReadOptions(charset="2", length=8), steps=15))[0]
    assert len(read.indices) == 8


def test_greedy_on_the_device_matches_the_host_and_flags_long_codes() -> None:
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(64, 12, 4)) * 3, dtype=torch.float32)
    decoded = ctc_greedy_batch(logits, width=5)
    for row, host in zip(decoded, logits.softmax(-1).numpy(), strict=True):
        code = ctc_greedy(host).indices
        if len(code) <= 5:
            assert tuple(v for v in row[:5].tolist() if v != PAD) == code and row[5] == PAD
        else:
            assert row[5] != PAD
    targets = torch.full((64, 5), PAD)
    for i, row in enumerate(decoded):
        code = [v for v in row[:5].tolist() if v != PAD]
        targets[i, : len(code)] = torch.tensor(code, dtype=torch.long)
    hits = ctc_hits(decoded, targets)
    assert hits.tolist() == [bool(row[5] == PAD) for row in decoded]
    targets[0, 0] = 3 if targets[0, 0] != 3 else 2  # one wrong character
    assert not ctc_hits(decoded, targets)[0]


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("abc", "abc", 0),
        ("abc", "", 3),
        ("", "ab", 2),
        ("kitten", "sitting", 3),
        ("k3x9", "k3x", 1),
        ("aa11", "a11", 1),
        ("abcd", "badc", 3),
    ],
)
def test_edit_distance_hand_worked(a, b, distance) -> None:
    assert edit_distance(a, b) == distance == edit_distance(b, a)


def test_error_counts_ignore_padding() -> None:
    decoded = np.array([[1, 2, 3, PAD], [1, PAD, PAD, PAD]])
    targets = np.array([[1, 2, 3, 4], [2, 2, PAD, PAD]])
    assert error_counts(decoded, targets) == (1 + 2, 6)


# ---- slots models: an end class (the last index) in every slot ------------------------------------------


def _slots_brute_force(logits: torch.Tensor, lengths: range, allowed: list[int]) -> tuple[float, tuple]:
    """Every code of ``lengths`` over the ``allowed`` characters, scored by the sum of each slot's
    log-probability (its character's, or the end's after the code), the mask renormalising each slot."""
    slots, symbols = logits.shape
    end = symbols - 1
    keep = torch.full((symbols,), float("-inf"))
    keep[[*allowed, end]] = 0.0
    log_probs = (logits + keep).log_softmax(-1).double()
    best, best_code = -np.inf, None
    for length in lengths:
        for code in itertools.product(allowed, repeat=length):
            path = [*code, *[end] * (slots - length)]
            score = float(log_probs[torch.arange(slots), path].sum())
            if score > best:
                best, best_code = score, code
    return best, best_code


@pytest.mark.parametrize("seed", range(40))
def test_slots_decoding_and_exact_length_match_a_brute_force(seed) -> None:
    rng = np.random.default_rng(seed)
    charset = "abc"[: int(rng.integers(2, 4))]
    low = int(rng.integers(1, 4))
    spec = CodeSpec(charset, low, 3, (120, 50), decoder="slots")
    # Logits spread wide enough that a slot's argmax is often an end before a character (or the reverse).
    logits = torch.tensor(rng.normal(size=(6, 3, len(charset) + 1)) * 2.5, dtype=torch.float32)
    cases = [(ReadOptions(), range(low, 4))]
    cases += [(ReadOptions(length=k), range(k, k + 1)) for k in (1, 2, 3)]
    cases += [(ReadOptions(charset=charset[1:]), range(low, 4))]
    cases += [(ReadOptions(charset=charset[0], length=2), range(2, 3))]
    for options, lengths in cases:
        plan = plan_read(spec, options)
        allowed = [i for i, c in enumerate(charset) if options.charset is None or c in options.charset]
        got = decode_slots(logits, spec, plan)
        for row, decoded in zip(logits, got, strict=True):
            _, expected = _slots_brute_force(row, lengths, allowed)
            assert decoded.indices == expected, (options, row)
            assert len(decoded.confidences) == len(decoded.indices)
        if options.charset is None and options.length is None:  # the trainer's reading on the device
            batch = slots_batch(logits, low, 3)
            assert batch.shape == (6, 4) and (batch[:, 3] == PAD).all()
            assert [tuple(r[r != PAD].tolist()) for r in batch] == [d.indices for d in got]


def test_slots_read_until_the_end_when_the_slots_agree() -> None:
    spec = CodeSpec("ab12", 1, 4, (120, 50), decoder="slots")
    end = 4

    def confident(path: list[int]) -> torch.Tensor:
        logits = torch.zeros(len(path), 5)
        logits[torch.arange(len(path)), torch.tensor(path)] = 6.0
        return logits

    after_end = confident([1, end, 0, end])
    after_end[2, 0] = 3.0  # "a" after an end, less sure of itself than the end before it
    logits = torch.stack([confident([0, 3, end, end]), confident([2, 2, 2, 1]), after_end])
    got = decode_slots(logits, spec)
    assert [d.indices for d in got[:2]] == [(0, 3), (2, 2, 2, 1)]
    # A character after an end: no code reads that way. The most probable code is "b" (an end where the
    # unsure "a" was), not "b?a" (a character where the sure end was).
    assert got[2].indices == (1,)
    after_end[2, 0] = 9.0  # now the "a" is the surer: "b", the end's slot read as its best character, "a"
    assert decode_slots(after_end[None], spec)[0].indices == (1, 0, 0)
    # Confidence: each character's probability in its slot.
    p = torch.softmax(torch.tensor([6.0, 0, 0, 0, 0]), 0)[0].item()
    assert got[0].confidences == (round(p, 4), round(p, 4))


def test_slots_charset_restriction_masks_characters_but_keeps_the_end() -> None:
    spec = CodeSpec("ab12", 2, 3, (120, 50), decoder="slots")
    end = 4
    # Slot 0: a (runner-up 1); slot 1: b (runner-up 2); slot 2: the end, then "a".
    logits = torch.tensor([[[5.0, 0, 1, 0, 0], [0, 5, 0, 1, 0], [2, 0, 0, 0, 5]]])
    assert decode_slots(logits, spec)[0].indices == (0, 1)
    plan = plan_read(spec, ReadOptions(charset="12"))
    got = decode_slots(logits, spec, plan)[0]
    assert got.indices == (2, 3)
    # Renormalised over 1, 2 and the end: the confidence is that slot's probability of "1".
    slot0 = torch.softmax(torch.tensor([1.0, 0, 0]), 0)[0].item()
    assert got.confidences[0] == round(slot0, 4)
    # Asking for 3 characters reads the best allowed one in the end's slot instead.
    assert decode_slots(logits, spec, plan_read(spec, ReadOptions(charset="12", length=3)))[0].indices == (
        2,
        3,
        2,
    )
    assert end == logits.shape[-1] - 1


def test_slots_refuse_more_characters_than_slots() -> None:
    spec = CodeSpec("ab12", 4, 6, (120, 50), decoder="slots")
    with pytest.raises(ReadError, match="has 6 slots"):
        plan_read(spec, ReadOptions(length=7))
    plan = plan_read(spec, ReadOptions(length=3))
    assert plan.length == 3 and any("outside the 4–6" in n for n in plan.notes)

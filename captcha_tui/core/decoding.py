"""From model outputs to codes: per-position argmax, CTC greedy and exact-length decoding, slots
decoding, a read-time character mask, and the character error rate.

A CTC model emits one distribution per time step over the charset plus a blank (the last index). A path
(one symbol per step) *collapses* to a code by merging runs of the same symbol and dropping blanks, so
``a a - a b b`` reads ``aab``. Greedy decoding takes the most probable symbol at every step. Exact-length
decoding finds the most probable path whose collapsed code has exactly N characters, by dynamic
programming over (characters emitted so far, last symbol): not a truncation or padding of the greedy
code, which could not be the best N-character reading.

A slots model emits one distribution per slot over the charset plus an "end" class (the last index). A
code of k characters is read as its characters in slots 0..k-1 and the end in every slot after, so its
log-probability is the sum of those. The slots are independent given the image, so the most probable code
of each length k is the best character of each slot before k, plus the end's log-probabilities after;
decoding takes the best of those over the lengths allowed: the model's trained lengths (min to max), or
exactly the one asked for (``--length``). Where every slot's argmax already forms a code (characters, then
ends only, of a trained length) this is that greedy reading; where it does not (a character after an end,
a length never trained on) it is the most probable code that is one, rather than a reading that could never
be right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .spec import PAD, CodeSpec


class ReadError(ValueError):
    """A read-time request the model cannot satisfy; ``str()`` says why and what would work."""


@dataclass(frozen=True)
class Decoded:
    indices: tuple[int, ...]  # charset indices of the code
    confidences: tuple[float, ...]  # per character: its probability where it was emitted


@dataclass(frozen=True)
class ReadOptions:
    """Constraints at read time: ``charset`` limits the characters that may be read (the model's others
    are masked out before decoding); ``length`` asks for exactly that many characters."""

    charset: str | None = None
    length: int | None = None


@dataclass(frozen=True)
class ReadPlan:
    """:class:`ReadOptions` checked against one model: what decoding will do, with notes for the user."""

    allowed: np.ndarray | None  # bool over the model's charset; None: everything
    length: int | None
    notes: tuple[str, ...] = ()


def plan_read(spec: CodeSpec, options: ReadOptions, steps: int | None = None) -> ReadPlan:
    """Check ``options`` against a model's ``spec`` (and, for CTC, its ``steps`` per image).

    Raises :class:`ReadError` for what cannot be done: no character of ``charset`` is readable, or a
    length the model cannot emit."""
    notes: list[str] = []
    allowed = None
    if options.charset is not None:
        wanted = spec.normalise(options.charset)
        if not wanted:
            raise ReadError("--charset is empty: give the characters that may be read, e.g. 0123456789")
        allowed = np.array([c in wanted for c in spec.charset])
        unknown = sorted({c for c in wanted if c not in spec.charset})
        if not allowed.any():
            raise ReadError(f"this model cannot read any of {options.charset!r}: it knows {spec.charset!r}")
        if unknown:
            notes.append(
                f"this model cannot read {''.join(unknown)!r}; reading only {''.join(np.array(list(spec.charset))[allowed])!r}"
            )
    length = options.length
    if length is not None:
        if length < 1:
            raise ReadError(f"--length must be at least 1 (got {length})")
        if spec.decoder == "positional" and length != spec.max_length:
            raise ReadError(
                f"this model reads exactly {spec.max_length} characters (one output per position); "
                f"--length {length} needs a model trained for it, or a CTC model"
            )
        if spec.decoder == "ctc" and steps is not None and length > steps:
            raise ReadError(
                f"this model emits at most {steps} characters per image (its time steps); --length {length} "
                "is more than it can read"
            )
        if spec.decoder == "ctc" and steps is not None and allowed is not None and allowed.sum() == 1:
            # One character repeated needs a blank between each two: 2 × length − 1 steps.
            most = (steps + 1) // 2
            if length > most:
                only = str(np.array(list(spec.charset))[allowed][0])
                raise ReadError(
                    f"with only {only!r} to read, {length} characters need {2 * length - 1} time steps (a "
                    f"blank between repeats) and this model has {steps}: --length {most} at most"
                )
        if spec.decoder == "slots" and length > spec.max_length:
            raise ReadError(
                f"this model has {spec.max_length} slots, one per character; --length {length} is more "
                "than it can read"
            )
        if spec.decoder in ("ctc", "slots") and not spec.min_length <= length <= spec.max_length:
            notes.append(
                f"--length {length} is outside the {spec.lengths} characters this model was trained on"
            )
        if spec.decoder == "positional":
            length = None  # nothing to do: every reading has that length
    return ReadPlan(allowed, length, tuple(notes))


# ---- per-position models --------------------------------------------------------------------------------


def decode_positional(logits: torch.Tensor, plan: ReadPlan | None = None) -> list[Decoded]:
    """``logits``: (N, length, classes). The most probable allowed character at each position."""
    logits = logits.float()
    if plan is not None and plan.allowed is not None:
        logits = logits.masked_fill(~torch.from_numpy(plan.allowed).to(logits.device), float("-inf"))
    best, indices = logits.softmax(-1).max(-1)
    return [
        Decoded(tuple(row), tuple(round(p, 4) for p in probs))
        for row, probs in zip(indices.tolist(), best.tolist(), strict=True)
    ]


# ---- slots models (an end class per slot) ------------------------------------------------------------------


def slot_lengths(spec: CodeSpec, plan: ReadPlan | None = None) -> tuple[int, int]:
    """The code lengths a slots model's reading may have: exactly the plan's, else those it was trained on."""
    if plan is not None and plan.length is not None:
        return plan.length, plan.length
    return spec.min_length, spec.max_length


def slots_best(
    logits: torch.Tensor, low: int, high: int, allowed: np.ndarray | torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The most probable code of ``low``..``high`` characters from (N, slots, classes + 1) logits (end
    last), the characters limited to ``allowed`` (bool over the charset; the end always stays).

    Returns (characters (N, slots): each slot's best allowed character, lengths (N,), log-probabilities
    (N, slots, classes + 1)): the code is ``characters[:length]``. On the device, no host sync."""
    logits = logits.float()
    if allowed is not None:
        keep = torch.as_tensor(allowed, dtype=torch.bool, device=logits.device)
        keep = torch.cat((keep, keep.new_ones(1)))  # the end class stays
        logits = logits.masked_fill(~keep, float("-inf"))
    log_probs = logits.log_softmax(-1)
    char_lp, chars = log_probs[..., :-1].max(-1)  # (N, slots)
    end_lp = log_probs[..., -1]
    zeros = char_lp.new_zeros(len(char_lp), 1)
    # score[:, k] = Σ_{s<k} best character + Σ_{s≥k} end: the best code of exactly k characters.
    before = torch.cat((zeros, char_lp.cumsum(1)), 1)
    after = torch.cat((end_lp.flip(1).cumsum(1).flip(1), zeros), 1)
    score = before + after
    outside = torch.ones(score.shape[1], dtype=torch.bool, device=score.device)
    outside[low : high + 1] = False
    lengths = score.masked_fill(outside, float("-inf")).argmax(1)
    return chars, lengths, log_probs


def decode_slots(logits: torch.Tensor, spec: CodeSpec, plan: ReadPlan | None = None) -> list[Decoded]:
    """``logits``: (N, slots, classes + 1). The most probable code of the trained lengths (or of the
    plan's exact length), each character's confidence its probability in its slot (over the allowed
    characters and the end)."""
    low, high = slot_lengths(spec, plan)
    chars, lengths, log_probs = slots_best(logits, low, high, None if plan is None else plan.allowed)
    probs = log_probs.gather(-1, chars.unsqueeze(-1)).squeeze(-1).exp()
    out = []
    for row, p, k in zip(chars.tolist(), probs.tolist(), lengths.tolist(), strict=True):
        out.append(Decoded(tuple(row[:k]), tuple(round(x, 4) for x in p[:k])))
    return out


def slots_batch(logits: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """(N, slots, classes + 1) logits → (N, slots + 1) codes padded with PAD, on the device (the last
    column always PAD, as :func:`ctc_hits` wants)."""
    chars, lengths, _ = slots_best(logits, low, high)
    slots = torch.arange(chars.shape[1], device=chars.device)
    codes = chars.masked_fill(slots >= lengths[:, None], PAD)
    return torch.nn.functional.pad(codes, (0, 1), value=PAD)


# ---- CTC models -------------------------------------------------------------------------------------------


def ctc_probabilities(logits: torch.Tensor, plan: ReadPlan | None = None) -> np.ndarray:
    """(N, T, classes + 1) logits → float64 probabilities, renormalised over the allowed symbols."""
    logits = logits.float()
    if plan is not None and plan.allowed is not None:
        keep = torch.from_numpy(np.append(plan.allowed, True)).to(logits.device)  # the blank stays
        logits = logits.masked_fill(~keep, float("-inf"))
    return logits.softmax(-1).double().cpu().numpy()


def collapse(path: np.ndarray, blank: int) -> list[tuple[int, int, int]]:
    """A path of symbols → (symbol, first step, last step + 1) for each character it reads."""
    runs: list[tuple[int, int, int]] = []
    previous = blank
    for t, symbol in enumerate(path.tolist()):
        if symbol != blank:
            if symbol == previous:
                s, start, _ = runs[-1]
                runs[-1] = (s, start, t + 1)
            else:
                runs.append((symbol, t, t + 1))
        previous = symbol
    return runs


def _decoded_from_path(path: np.ndarray, probs: np.ndarray) -> Decoded:
    blank = probs.shape[1] - 1
    runs = collapse(path, blank)
    return Decoded(
        tuple(s for s, _, _ in runs),
        tuple(round(float(probs[a:b, s].max()), 4) for s, a, b in runs),
    )


def ctc_greedy(probs: np.ndarray) -> Decoded:
    """(T, classes + 1) probabilities of one image → the collapsed best path."""
    return _decoded_from_path(probs.argmax(1), probs)


def ctc_exact_length(probs: np.ndarray, length: int) -> Decoded | None:
    """The most probable path whose collapsed code has exactly ``length`` characters; None if no path
    of this many steps can read that many (a code of N characters needs N steps, more with repeats).

    Viterbi over states (characters emitted k, symbol of the last step j): a step with symbol c either
    continues the last character (j == c, k unchanged) or starts a new one (j != c, k + 1); a blank keeps
    k. Costs O(T · length · classes), well under a millisecond for captcha-sized codes.
    """
    steps, symbols = probs.shape
    blank = symbols - 1
    if length > steps or length < 1:
        return None
    with np.errstate(divide="ignore"):
        logp = np.log(probs)
    neg = -np.inf
    score = np.full((length + 1, symbols), neg)
    score[0, blank] = logp[0, blank]
    score[1, :blank] = logp[0, :blank]
    rows, rows_prev = np.arange(length + 1), np.arange(length)
    # What each step chose, for the walk back (few small arrays: numpy calls, not their size, cost here).
    from_any = np.zeros((steps, length + 1), dtype=np.int64)  # a blank's previous symbol
    stayed = np.zeros((steps, length + 1, blank), dtype=bool)  # a character continued itself
    best_j = np.zeros((steps, length), dtype=np.int64)  # else: the best symbol at k - 1 ...
    second_j = np.zeros((steps, length), dtype=np.int64)  # ... or the runner-up where the best is c
    for t in range(1, steps):
        new = np.empty_like(score)
        any_j = score.argmax(1)
        new[:, blank] = score[rows, any_j] + logp[t, blank]
        prev = score[:-1].copy()
        top = prev.argmax(1)
        top_value = prev[rows_prev, top]
        prev[rows_prev, top] = neg
        runner = prev.argmax(1)
        start = np.empty((length + 1, blank))
        start[0] = neg
        start[1:] = top_value[:, None]
        is_top = top < blank
        start[1:][is_top, top[is_top]] = prev[rows_prev, runner][is_top]
        stay = score[:, :blank]
        keep = stay >= start
        new[:, :blank] = np.where(keep, stay, start) + logp[t, :blank]
        from_any[t], stayed[t], best_j[t], second_j[t] = any_j, keep, top, runner
        score = new
    last = int(score[length].argmax())
    if not np.isfinite(score[length, last]):
        return None
    path = np.empty(steps, dtype=np.int64)
    k, j = length, last
    for t in range(steps - 1, 0, -1):
        path[t] = j
        if j == blank:
            j = int(from_any[t, k])
        elif not stayed[t, k, j]:
            k -= 1
            j = int(second_j[t, k] if best_j[t, k] == j else best_j[t, k])
    path[0] = j
    return _decoded_from_path(path, probs)


def decode_ctc(logits: torch.Tensor, plan: ReadPlan | None = None) -> list[Decoded]:
    """``logits``: (N, T, classes + 1). Greedy, or exact-length when the plan asks for a length (an image
    that cannot be read at that length gets an empty code)."""
    probs = ctc_probabilities(logits, plan)
    length = plan.length if plan is not None else None
    out = []
    for row in probs:
        decoded = ctc_greedy(row) if length is None else ctc_exact_length(row, length)
        out.append(decoded if decoded is not None else Decoded((), ()))
    return out


# ---- on the device, for training metrics ------------------------------------------------------------------


def ctc_emitted(best: torch.Tensor, blank: int) -> torch.Tensor:
    """Which steps of greedy paths (N, T) emit a character: not blank, and not a repeat of the step
    before."""
    previous = torch.nn.functional.pad(best, (1, 0), value=blank)[:, :-1]
    return (best != blank) & (best != previous)


def ctc_greedy_batch(logits: torch.Tensor, width: int) -> torch.Tensor:
    """(N, T, classes + 1) logits → (N, width) collapsed greedy codes padded with PAD, on the device with
    no host sync. A code longer than ``width`` is cut, and marked wrong by :func:`ctc_hits`."""
    blank = logits.shape[-1] - 1
    best = logits.argmax(-1)  # (N, T)
    emit = ctc_emitted(best, blank)
    position = emit.cumsum(1) - 1  # where each emitted symbol goes
    out = torch.full((best.shape[0], width + 1), PAD, dtype=best.dtype, device=best.device)
    # Everything past ``width`` (and every non-emitting step) lands in the spare last column.
    column = torch.where(emit, position.clamp(max=width), torch.full_like(position, width))
    out.scatter_(1, column, torch.where(emit, best, torch.full_like(best, PAD)))
    too_long = emit.sum(1) > width
    out[:, width] = torch.where(too_long, 0, PAD)  # a non-PAD marker: never equal to a target's PAD
    return out


def ctc_hits(decoded: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whole code right, per image: ``decoded`` from :func:`ctc_greedy_batch` against PAD-padded targets."""
    width = targets.shape[1]
    return (decoded[:, :width] == targets).all(1) & (decoded[:, width] == PAD)


# ---- character error rate -----------------------------------------------------------------------------------


def edit_distance(a, b) -> int:
    """Levenshtein distance: insertions, deletions and substitutions, each costing 1."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def error_counts(decoded: np.ndarray, targets: np.ndarray) -> tuple[int, int]:
    """(edit distance summed, target characters) over PAD-padded rows: CER is their ratio."""
    errors = characters = 0
    for got, want in zip(decoded, targets, strict=True):
        want = want[want != PAD]
        errors += edit_distance(got[got != PAD].tolist(), want.tolist())
        characters += len(want)
    return errors, characters

from __future__ import annotations

import torch
import torch.nn.functional as F

from captcha_tui.core.objectives import (
    CtcObjective,
    Objective,
    SlotsObjective,
    character_errors,
    objective_for,
)
from captcha_tui.core.spec import PAD, CodeSpec

POSITIONAL = CodeSpec.fixed("abc", 3, (120, 50))
CTC = CodeSpec("abc", 1, 3, (120, 50), decoder="ctc")
SLOTS = CodeSpec("abc", 2, 3, (120, 50), decoder="slots")


def test_each_decoder_gets_its_objective() -> None:
    assert type(objective_for(POSITIONAL, 0.1)) is Objective
    assert isinstance(objective_for(CTC, 0.1), CtcObjective)
    slots = objective_for(SLOTS, 0.1)
    assert isinstance(slots, SlotsObjective) and slots.label_smoothing == 0.1 and slots.varying_length


def test_positional_loss_is_cross_entropy_per_position() -> None:
    logits = torch.randn(4, 3, 3)
    targets = torch.randint(0, 3, (4, 3))
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert torch.isclose(Objective(POSITIONAL).loss(logits, targets), expected)


def test_positional_hits_need_every_position() -> None:
    logits = torch.full((2, 3, 3), -5.0)
    for i, code in enumerate(([0, 1, 2], [0, 1, 1])):
        logits[i, torch.arange(3), torch.tensor(code)] = 5.0
    objective = Objective(POSITIONAL)
    targets = torch.tensor([[0, 1, 2], [0, 1, 2]])
    assert objective.hits(objective.decode(logits), targets).tolist() == [True, False]


def _ctc_logits(paths: list[list[int]], symbols: int = 4) -> torch.Tensor:
    logits = torch.full((len(paths), len(paths[0]), symbols), -8.0)
    for i, path in enumerate(paths):
        logits[i, torch.arange(len(path)), torch.tensor(path)] = 8.0
    return logits


def test_ctc_hits_and_errors_for_codes_of_different_lengths() -> None:
    blank = 3
    logits = _ctc_logits([[0, 0, blank, 0, 1], [2, blank, blank, blank, blank], [0, 1, 2, 0, 1]])
    targets = torch.tensor([[0, 0, 1], [2, PAD, PAD], [0, 1, 2]])  # "aab", "c", "abc"
    objective = CtcObjective(CTC)
    decoded = objective.decode(logits)
    assert objective.hits(decoded, targets).tolist() == [
        True,
        True,
        False,
    ]  # the last reads "abcab": too long
    errors, characters = character_errors(decoded, targets)
    assert characters == 7 and errors == 0 + 0 + 0  # the cut "abc" matches; length is judged by hits
    # A confident right path costs little, a wrong one a lot.
    assert objective.loss(logits[:2], targets[:2]) < 0.01 < objective.loss(logits[:2], targets[[1, 0]])


def test_ctc_loss_trains_a_tiny_model() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    # Each step's features hint at one symbol (noisily); CTC must learn to emit "ab" and "ccb" from them.
    hints = torch.tensor([[0, 0, 3, 1, 3]] * 16 + [[2, 3, 2, 1, 1]] * 16)
    x = F.one_hot(hints, 6).float() + 0.3 * torch.randn(32, 5, 6)
    targets = torch.tensor([[0, 1, PAD]] * 16 + [[2, 2, 1]] * 16)
    objective = CtcObjective(CTC)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for _ in range(150):
        loss = objective.loss(model(x), targets)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 5
    assert objective.hits(objective.decode(model(x)), targets).all()


def test_slots_loss_is_cross_entropy_per_slot_with_the_end_for_padding() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4)  # "abc" + end
    targets = torch.tensor([[0, 1, PAD], [2, 2, 1]])  # "ab", "ccb"
    classes = torch.tensor([[0, 1, 3], [2, 2, 1]])
    for smoothing in (0.0, 0.1):
        expected = F.cross_entropy(logits.flatten(0, 1), classes.flatten(), label_smoothing=smoothing)
        assert torch.isclose(SlotsObjective(SLOTS, smoothing).loss(logits, targets), expected)
    summed = F.cross_entropy(logits.flatten(0, 1), classes.flatten(), reduction="sum") / 3
    assert torch.isclose(SlotsObjective(SLOTS, 0.1).summed_loss(logits, targets), summed)


def test_slots_hits_and_errors_for_codes_of_different_lengths() -> None:
    end = 3
    logits = torch.full((3, 3, 4), -6.0)
    for i, path in enumerate(([0, 1, end], [2, 2, 1], [0, end, end])):
        logits[i, torch.arange(3), torch.tensor(path)] = 6.0
    objective = SlotsObjective(SLOTS)
    targets = torch.tensor([[0, 1, PAD], [2, 2, 1], [0, 1, PAD]])
    decoded = objective.decode(logits)
    # The last reads "a" and an end: one character is shorter than any code, so its best code of 2 or 3
    # characters is read ("aa": the best character where the end was).
    assert decoded.tolist()[2] == [0, 0, PAD, PAD]
    assert objective.hits(decoded, targets).tolist() == [True, True, False]
    assert character_errors(decoded, targets) == (1, 7)

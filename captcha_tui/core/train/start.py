"""How a run starts: a new model, one fine-tuned from a checkpoint (``--init``), or a run carried on
from its run folder's last.pt (``--resume``).

A fine-tune copies every weight of the checkpoint that fits the dataset's spec, rebuilds the output layer
where the charset or length differ (keeping the rows of shared characters), and trains at a third of its
preset's peak learning rate (unless ``lr`` is set) after a 5% warm-up (schedule.py).

On ``resume``, ``epochs`` stays the run's total epoch budget (so the one-cycle schedule carries on where it
was; a budget already spent is refused with the number to pass).

A new run never replaces an earlier one: where ``out`` holds a run already, it goes to ``out-2`` (or
``-3``…) instead, as the run's first notice says (:func:`new_run_dir`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import events as ev
from ..base_model import named_model
from ..checkpoint import CheckpointError, load_checkpoint
from ..dataset import Dataset
from ..model import DEFAULT_BATCH_SIZE, PRESETS, CaptchaNet, default_preset, preset_spec, run_batch_size
from ..oserrors import missing
from ..spec import PAD, CodeSpec, SpecError
from .config import (
    BEST,
    DEFAULT_RUN_DIR,
    HISTORY,
    LAST,
    ConfigError,
    TrainConfig,
    TrainingError,
    holds_run,
)


@dataclass
class RunState:
    """What a resumable checkpoint must carry beyond the weights."""

    epoch: int = 0  # completed epochs
    position: int = 0  # images of epoch + 1 already trained on (an interrupted epoch)
    best_val: float = -1.0
    best_char: float = -1.0  # breaks ties early on, while whole-code accuracy is still 0
    best_epoch: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    images_seen: int = 0
    elapsed_s: float = 0.0  # training time of the whole run so far, every session's, pauses excluded
    schedule_at: float = 0.0  # how far through the learning-rate schedule the last step was (0..1)
    # [epochs trained, images seen] where a finished run given more budget began a new cycle (None: never)
    cycle_origin: list[float] | None = None
    history: list[dict] = field(default_factory=list)


def new_run_dir(out: Path) -> tuple[Path, ev.Notice | None]:
    """Where a new run goes: ``out``, or, where that holds an earlier run (kept: its best.pt may be hours of
    training), the first of ``out-2``, ``out-3``… that holds none; with a notice saying so."""
    out = Path(out)
    if not holds_run(out):
        return out, None
    number = 2
    while holds_run(out.with_name(f"{out.name}-{number}")):
        number += 1
    chosen = out.with_name(f"{out.name}-{number}")
    return chosen, ev.Notice(
        f"{out} holds an earlier run, kept as it is: this one goes to {chosen} "
        f"(--resume --out {out} would carry that one on)",
        "warning",
    )


def resolve_init(value: str | Path) -> Path:
    """The checkpoint ``init`` names: a path, or ``"base"`` for the base model shipped in the package
    (a file of that name is ``./base``). Raises :class:`TrainingError` when the base model is asked for
    and this install has none."""
    path = named_model(value)
    if path is None:
        raise TrainingError(
            "this install of captcha-tui has no base model (captcha_tui/assets/base.pt): give --init a "
            f"checkpoint file (such as {DEFAULT_RUN_DIR / BEST})"
        )
    return path


@dataclass(frozen=True)
class Transfer:
    """What :func:`transfer_weights` carried over."""

    copied: int  # layers whose every tensor was copied
    layers: int
    output_rebuilt: bool  # the output layer did not fit and starts afresh (but for shared rows)
    shared_characters: int  # characters whose output rows were copied into a rebuilt output layer


def transfer_weights(
    model: torch.nn.Module, weights: dict[str, torch.Tensor], source: CodeSpec, target: CodeSpec
) -> Transfer:
    """Copy ``weights`` (a checkpoint's, read with ``source``) into ``model`` (built for ``target``): every
    tensor whose name and shape match, except the output layer when the two read different codes. That
    one is rebuilt; for per-position (or slots) models with the same input, the rows of the characters
    both charsets share (and of the end class) are copied by character (and position), so they need not be
    learnt again."""
    own = model.state_dict()  # the model's own tensors: copying into them changes the model
    output = _output_layer(own)
    # A CTC model's outputs are the characters and the blank, whatever the lengths it reads: the base
    # model (4–6 characters) keeps its whole output layer for a set of 4 (it was rebuilt, and a fine-tune
    # started far below what the base read).
    same_codes = (source.charset, source.decoder) == (target.charset, target.decoder) and (
        source.max_length == target.max_length or target.decoder == "ctc"
    )
    copied: set[str] = set()
    with torch.no_grad():
        for name, tensor in own.items():
            theirs = weights.get(name)
            if theirs is None or theirs.shape != tensor.shape:
                continue
            if name.rpartition(".")[0] == output and not same_codes:
                continue
            tensor.copy_(theirs)
            copied.add(name)
        shared = 0
        if output and not same_codes and source.decoder == target.decoder:
            shared = _copy_shared_rows(own, weights, output, source, target)
    layers: dict[str, bool] = {}
    for name in own:
        module = name.rpartition(".")[0]
        layers[module] = layers.get(module, True) and name in copied
    return Transfer(
        copied=sum(layers.values()),
        layers=len(layers),
        output_rebuilt=bool(output) and not layers.get(output, False),
        shared_characters=shared,
    )


def _output_layer(weights: dict[str, torch.Tensor]) -> str:
    """The name of the model's last linear layer (``head.2``), as checkpoint.py finds it; '' if none."""
    names = [
        k for k, v in weights.items() if k.startswith("head.") and k.endswith(".weight") and v.dim() == 2
    ]
    return names[-1].rpartition(".")[0] if names else ""


def _copy_shared_rows(own, weights, output: str, source: CodeSpec, target: CodeSpec) -> int:
    """Per-position output rows are ``position × classes + character`` (``classes + 1`` and the end last,
    for slots models; one set of ``classes + 1`` with the blank last, for CTC ones): copy those of shared
    characters, and the end's or the blank's."""
    weight, bias = own[f"{output}.weight"], own.get(f"{output}.bias")
    theirs, their_bias = weights.get(f"{output}.weight"), weights.get(f"{output}.bias")
    if theirs is None or theirs.dim() != 2 or theirs.shape[1] != weight.shape[1]:
        return 0  # another input size: no row fits
    chars = [(j, source.charset.index(c)) for j, c in enumerate(target.charset) if c in source.charset]
    extra = int(target.decoder in ("slots", "ctc"))  # the end class, or the blank: last of each set
    mine, theirs_n = target.classes + extra, source.classes + extra  # outputs per position
    pairs = chars + [(target.classes, source.classes)] * extra
    positions = 1 if target.decoder == "ctc" else min(source.max_length, target.max_length)
    rows, their_rows = [], []
    for position in range(positions):
        rows += [position * mine + j for j, _ in pairs]
        their_rows += [position * theirs_n + i for _, i in pairs]
    if not rows:
        return 0
    rows_t, their_t = torch.tensor(rows), torch.tensor(their_rows)
    weight[rows_t.to(weight.device)] = theirs[their_t.to(theirs.device)].to(weight)
    if bias is not None and their_bias is not None:
        bias[rows_t.to(bias.device)] = their_bias[their_t.to(their_bias.device)].to(bias)
    return len(chars)


def choose_preset(config: TrainConfig, run_dir: Path, spec: CodeSpec) -> str:
    """``--preset``, else the preset of the checkpoint resumed or fine-tuned from, else the default for
    these codes (per-position for one length, CTC for several)."""
    if config.preset is not None:
        return config.preset
    source = run_dir / LAST if config.resume else (resolve_init(config.init) if config.init else None)
    if source is not None and source.exists():
        try:
            return load_checkpoint(source, map_location="cpu").meta.preset
        except CheckpointError:
            pass  # resume / fine-tune says what is wrong with it
    return default_preset(spec)


def model_spec(preset: str, data: Dataset) -> CodeSpec:
    """The dataset's codes with the preset's decoder; a per-position preset reads one length only."""
    if PRESETS[preset].decoder == "positional" and not data.spec.fixed_length:
        ctc = ", ".join(name for name, p in PRESETS.items() if p.decoder == "ctc")
        slots = ", ".join(name for name, p in PRESETS.items() if p.decoder == "slots")
        raise ConfigError(
            f"{data.path} holds codes of {data.spec.lengths} characters, but preset {preset!r} reads one "
            f"fixed length: use a CTC preset ({ctc}) or a slots one ({slots}), or leave --preset out"
        )
    return preset_spec(preset, data.spec)


def check_steps(preset: str, model: CaptchaNet, data: Dataset) -> None:
    """A CTC model emits one symbol per time step, with a blank between repeated neighbours: refuse
    codes that cannot fit, naming the limit, instead of training on an infinite loss."""
    if model.decoder != "ctc":
        return
    labels = np.concatenate([data.labels[s] for s in ("train", "val", "test")])
    needed = (labels != PAD).sum(1) + ((labels[:, 1:] == labels[:, :-1]) & (labels[:, 1:] != PAD)).sum(1)
    if len(needed) and int(needed.max()) > model.steps:
        worst = int(needed.max())
        raise ConfigError(
            f"some codes need {worst} time steps (their length plus a blank between repeated "
            f"characters), but preset {preset!r} has {model.steps} per image: keep shorter codes "
            f"(prepare --length), or a preset with more steps (--preset crnn has 30)"
        )


def keep_model_characters(
    data: Dataset, config: TrainConfig, run_dir: Path
) -> tuple[Dataset, ev.Notice | None]:
    """``data`` with the charset of the model the run starts from (``--init``, or a resumed run's last.pt)
    where the set's was inferred from its labels: a fine-tune of the base model on 13 labels that happened
    to hold 28 of its 31 characters could no longer read the other 3. The set's own characters are added
    to the model's; a charset given to `prepare --charset` is kept as it is."""
    if not data.charset_inferred:
        return data, None
    last = Path(run_dir) / LAST
    if config.resume and last.exists():
        path = last
    elif config.init is not None:
        path = resolve_init(config.init)
    else:
        return data, None
    try:
        source = load_checkpoint(path).meta.spec
    except CheckpointError:
        return data, None  # the fine-tune or resume itself says what is wrong with it
    own = data.spec.charset
    if source.keep_case != data.spec.keep_case:
        return data, None
    charset = source.charset + "".join(sorted(set(own) - set(source.charset)))
    if charset == own:
        return data, None
    try:
        widened = data.with_charset(charset)
    except SpecError:
        return data, None  # too many characters together: the set's own, as before
    added = len(set(charset) - set(own))
    if not added or config.resume:  # the same characters in the model's order, or a resume: no news
        return widened, None
    return widened, ev.Notice(
        f"keeps the {len(source.charset)} characters {path} reads, {added} of them not in this set's labels "
        f"(its charset was inferred from them; `prepare --charset` sets it)"
    )


def fine_tune(
    model: CaptchaNet, preset: str, spec: CodeSpec, init: str | Path, device: torch.device
) -> tuple[str, ev.Notice, bool]:
    """Start from ``init``'s weights: all that fit, the output layer rebuilt where the codes differ.
    Returns the checkpoint's path (the run's ``init``), the notice that says what was copied, and whether
    the output layer was rebuilt."""
    path = resolve_init(init)
    try:
        source = load_checkpoint(path, map_location=device)
    except CheckpointError as exc:
        raise TrainingError(f"cannot fine-tune: {exc}") from None
    if source.meta.preset != preset:
        raise ConfigError(
            f"cannot fine-tune from {path}: it holds a {source.meta.preset!r} model and this run's "
            f"preset is {preset!r}; pass --preset {source.meta.preset}"
        )
    done = transfer_weights(model, source.model, source.meta.spec, spec)
    copied = f"{done.copied} of {done.layers} layers copied"
    if not done.output_rebuilt:
        return str(path), ev.Notice(f"fine-tuning from {path}: {copied}"), False
    differences = "; ".join(source.meta.spec.differences(spec)) or "another input size"
    shared = (
        f" (the rows of the {done.shared_characters} characters both charsets share copied)"
        if done.shared_characters
        else ""
    )
    return (
        str(path),
        ev.Notice(f"fine-tuning from {path}: output layer rebuilt for {differences}{shared}; {copied}"),
        True,
    )


def missing_run(run_dir: Path, shown: int = 5) -> str | None:
    """Why ``--resume`` cannot carry on in ``run_dir``, a folder that does not exist (a typo: a new
    run there, hours long, is not what was asked), naming the runs beside it; None where it exists."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        return None
    parent = run_dir.parent
    try:
        beside = sorted(p.name for p in parent.iterdir() if p.is_dir() and holds_run(p))
    except OSError:
        beside = []
    where = (
        f"; runs in {parent}: {', '.join(beside[:shown])}{', …' if len(beside) > shown else ''}"
        if beside
        else ""
    )
    return (
        f"cannot resume: no run folder {missing(run_dir)}{where}; train without --resume to start a new run"
    )


def _trained(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds what a run trained: a best.pt, or a history with an epoch in it."""
    history = run_dir / HISTORY
    return (run_dir / BEST).exists() or (history.is_file() and history.stat().st_size > 0)


@dataclass(frozen=True)
class Resumed:
    """What a resume starts from: the state, where the run was fine-tuned from, its best weights so far."""

    state: RunState
    init: str | None
    best_weights: dict | None
    notice: ev.Notice


def resume(
    run_dir: Path,
    model: CaptchaNet,
    optimizer: torch.optim.Optimizer,
    preset: str,
    spec: CodeSpec,
    config: TrainConfig,
    device: torch.device,
) -> Resumed:
    """Load last.pt's weights, optimiser and state into ``model`` and ``optimizer`` (a fresh start, with a
    warning, in a folder that holds no run; refused where the folder does not exist, or where a run is
    there without its last.pt)."""
    path = run_dir / LAST
    refused = missing_run(run_dir)
    if refused is not None:
        raise ConfigError(refused)
    if not path.exists() and _trained(run_dir):
        # A new run here would write over that run's best.pt and history: refused, not started. (A run
        # killed before its first save left only its config and log: starting afresh there loses nothing.)
        raise ConfigError(
            f"cannot resume: {run_dir} holds a run but no {LAST} (removed?); train without --resume to "
            f"start a new run (it goes beside this one)"
        )
    if not path.exists():
        notice = ev.Notice(f"nothing to resume in {run_dir}: starting a new run", "warning")
        return Resumed(RunState(batch_size=run_batch_size(preset, config.batch_size)), None, None, notice)
    try:
        checkpoint = load_checkpoint(path, map_location=device)
    except CheckpointError as exc:
        raise TrainingError(
            f"cannot resume: {exc}; train without --resume to start a new run (it goes beside this one)"
        ) from None
    meta = checkpoint.meta
    mismatch = meta.spec.differences(spec)
    if meta.preset != preset:
        mismatch.insert(0, f"preset {meta.preset!r} ≠ {preset!r}")
    if mismatch:
        raise ConfigError(
            f"cannot resume from {path}: it was trained with another setup ({'; '.join(mismatch)})"
        )
    saved = checkpoint.trainer
    state = RunState(**{k: v for k, v in saved.items() if k in RunState.__dataclass_fields__})
    if state.epoch >= config.epochs:
        # Refused before anything is written: --epochs is the run's total, not epochs to add.
        part = f" and part of epoch {state.epoch + 1}" if state.position else ""
        raise ConfigError(
            f"nothing to train: {path} has already trained {state.epoch} epoch"
            f"{'s' if state.epoch != 1 else ''}{part}, and --epochs {config.epochs} is the run's total "
            f"epoch budget, not epochs to add; pass --epochs {state.epoch + 1} or more to continue it"
        )
    model.load_state_dict(checkpoint.model)
    if checkpoint.optimizer is not None:
        optimizer.load_state_dict(checkpoint.optimizer)
    state.history = list(checkpoint.history)
    best_weights = None
    if (run_dir / BEST).exists():
        try:
            best_weights = load_checkpoint(run_dir / BEST, map_location=device).model
        except CheckpointError as exc:
            raise TrainingError(
                f"cannot resume: {exc}; {LAST} is sound: to resume without it, move it aside (mv "
                f"{run_dir / BEST} {run_dir / BEST}.damaged), and the run's next new best is saved as {BEST}"
            ) from None
    where = f"epoch {state.epoch + 1}" + (f", image {state.position}" if state.position else "")
    best = f"best {state.best_val:.3f} at epoch {state.best_epoch}" if state.best_epoch else "no best yet"
    left = config.epochs - state.epoch
    notice = ev.Notice(
        f"resumed from {path} at {where} ({best}); --epochs {config.epochs} is the run's total: "
        f"up to {left} more epoch{'s' if left != 1 else ''}"
    )
    return Resumed(state, meta.init, best_weights, notice)

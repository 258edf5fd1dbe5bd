"""Which NVML card is torch's ``cuda:N``: NVML numbers cards in PCI order, CUDA in its own.

The CUDA side is read from torch only once torch has started CUDA itself (:func:`initialised_cuda_torch`);
before that, CUDA_VISIBLE_DEVICES is parsed the way CUDA parses it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from .nvml import NvmlBackend

_PCI_RE = re.compile(r"^(?:([0-9a-f]+):)?([0-9a-f]+):([0-9a-f]+)\.([0-9a-f]+)$")


def normalize_pci_bus_id(bus_id: str) -> str | None:
    """``"00000000:01:00.0"`` (NVML) and ``"0000:01:00.0"`` (sysfs/torch) both become ``"0000:01:00.0"``."""
    m = _PCI_RE.match(bus_id.strip().lower())
    if m is None:
        return None
    domain, bus, device, function = (int(g, 16) if g else 0 for g in m.groups())
    return f"{domain:04x}:{bus:02x}:{device:02x}.{function:x}"


def cuda_to_nvml_indices(
    backend: NvmlBackend,
    env: Mapping[str, str] = os.environ,
    cuda_pci_bus_ids: list[str] | None = None,
) -> list[int]:
    """NVML index of each CUDA device: entry k is the card torch calls ``cuda:k``.

    With ``cuda_pci_bus_ids`` (what CUDA reports for its devices, in CUDA order) cards are matched by PCI
    bus id, which is right whatever CUDA_DEVICE_ORDER says. Otherwise CUDA_VISIBLE_DEVICES is parsed the
    way CUDA does: integers or unique ``GPU-<uuid prefix>`` entries, stopping at the first entry that
    matches no card (``MIG-`` entries included, as this backend can't tie them to a card), a repeated
    card meaning no devices at all and an empty value meaning none. Unset means identity, which assumes
    CUDA's order matches NVML's PCI order (true with CUDA_DEVICE_ORDER=PCI_BUS_ID or identical cards).
    Needs an initialised backend.
    """
    count = backend.device_count()
    if cuda_pci_bus_ids is not None:
        by_bus: dict[str, int] = {}
        for i in range(count):
            try:
                key = normalize_pci_bus_id(backend.pci_bus_id(i))
            except Exception:
                continue  # a card NVML can't describe can't be matched
            if key is not None:
                by_bus.setdefault(key, i)
        out: list[int] = []
        for bus_id in cuda_pci_bus_ids:
            found = by_bus.get(normalize_pci_bus_id(bus_id) or "")
            if found is None:
                break
            out.append(found)
        return out

    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(count))
    uuids: list[str] | None = None
    out = []
    for entry in raw.split(","):
        entry = entry.strip()
        digits = re.match(r"\d+", entry)
        if digits:
            # Like strtoul: "1gpu" reads as 1.
            found: int | None = int(digits.group())
            if found >= count:
                found = None
        elif entry.lower().startswith("gpu-"):
            if uuids is None:
                uuids = []
                for i in range(count):
                    try:
                        uuids.append(backend.uuid(i).lower())
                    except Exception:
                        uuids.append("")
            matches = [i for i, u in enumerate(uuids) if u and u.startswith(entry.lower())]
            found = matches[0] if len(matches) == 1 else None  # ambiguous prefixes match nothing
        else:
            found = None  # empty, MIG-..., or junk
        if found is None:
            break
        if found in out:
            return []
        out.append(found)
    return out


def initialised_cuda_torch() -> Any:
    """The torch module if CUDA is already initialised, else None.

    torch is never imported or initialised from here: a torch that isn't imported yet can't have started
    CUDA, and initialising CUDA on the monitor thread would grab a context the trainer didn't ask for.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch if torch.cuda.is_initialized() else None
    except Exception:
        return None


def torch_pci_bus_ids() -> list[str] | None:
    """The PCI bus id of each CUDA device in CUDA order, or None before CUDA has started."""
    torch = initialised_cuda_torch()
    if torch is None:
        return None
    try:
        ids = []
        for k in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(k)
            ids.append(f"{p.pci_domain_id:04x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0")
        return ids
    except Exception:
        return None  # an older torch without PCI fields: fall back to CUDA_VISIBLE_DEVICES

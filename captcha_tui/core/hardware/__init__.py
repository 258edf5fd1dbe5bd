"""GPU, host and torch-memory sampling for the device panels (no UI code here)."""

from .fake import FAKE_FIELDS, FakeGpu, FakeNvmlBackend, fake_gpus
from .monitor import (
    INIT_RETRY_S,
    GpuSample,
    HardwareSampler,
    HostSample,
    Monitor,
    Sample,
    TorchMemorySample,
    cuda_to_nvml_indices,
    describe_nvml_error,
    normalize_pci_bus_id,
)
from .nvml import NvmlBackend, PynvmlBackend

__all__ = [
    "FAKE_FIELDS",
    "INIT_RETRY_S",
    "FakeGpu",
    "FakeNvmlBackend",
    "GpuSample",
    "HardwareSampler",
    "HostSample",
    "Monitor",
    "NvmlBackend",
    "PynvmlBackend",
    "Sample",
    "TorchMemorySample",
    "cuda_to_nvml_indices",
    "describe_nvml_error",
    "fake_gpus",
    "normalize_pci_bus_id",
]

"""GPU, host and torch-memory sampling for the device panels (no UI code here).

``samples`` holds the values, ``nvml`` the NVML queries and the words for their errors, ``device_map`` which
NVML card is which ``cuda:N``, ``sampler`` takes one sample, ``monitor`` takes one every second on its own
thread, and ``fake`` pretends to be NVML for tests and demos.
"""

from .device_map import cuda_to_nvml_indices, normalize_pci_bus_id
from .fake import FAKE_FIELDS, FakeGpu, FakeNvmlBackend, fake_gpus
from .monitor import Monitor
from .nvml import NvmlBackend, PynvmlBackend, describe_nvml_error
from .sampler import INIT_RETRY_S, HardwareSampler
from .samples import GpuSample, HostSample, Sample, TorchMemorySample

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

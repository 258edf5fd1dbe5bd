"""GPU, host and torch-memory sampling for the device panels (no UI code here).

``samples`` holds the values, ``nvml`` the NVML queries and the words for their errors, ``device_map`` which
NVML card is which ``cuda:N``, ``sampler`` takes one sample, ``monitor`` takes one every second on its own
thread. A pretend NVML for tests and demos lives outside the package, in ``tests/fake_nvml.py``.
"""

from .device_map import cuda_to_nvml_indices, normalize_pci_bus_id
from .monitor import Monitor
from .nvml import NvmlBackend, PynvmlBackend, describe_nvml_error
from .sampler import INIT_RETRY_S, HardwareSampler
from .samples import GpuProcess, GpuSample, HostSample, Sample, TorchMemorySample

__all__ = [
    "INIT_RETRY_S",
    "GpuProcess",
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
    "normalize_pci_bus_id",
]

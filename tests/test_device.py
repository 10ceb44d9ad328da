import pytest
import torch

from napari_nuclei_unet.core.device import (
    DeviceError,
    amp_dtype,
    available_devices,
    configure_cpu_threads,
    cpu_has_fast_bf16,
    physical_cpu_count,
    resolve_device,
)


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        assert auto.type == "mps"
    else:
        assert auto == torch.device("cpu")
    assert resolve_device(None) == auto


def test_bad_strings():
    with pytest.raises(DeviceError, match="Unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(DeviceError, match="Available"):
        resolve_device("cuda:99")


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has CUDA")
def test_cuda_unavailable_is_clear():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda:1")


def test_listing():
    devices = available_devices()
    assert devices[-1][0] == "cpu" and "CPU" in devices[-1][1]
    assert all(isinstance(a, str) and isinstance(b, str) for a, b in devices)


def test_threads_and_amp():
    assert physical_cpu_count() >= 1
    before = torch.get_num_threads()
    try:
        assert configure_cpu_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    expected = torch.bfloat16 if cpu_has_fast_bf16() else None
    assert amp_dtype(torch.device("cpu")) == expected

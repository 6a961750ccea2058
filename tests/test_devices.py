"""One rule for --device (sslbench.devices): the accepted names, what ``auto`` means, a CUDA device this machine
lacks; and every command that takes a device follows it (train, bench, sweep, each training rank)."""

from __future__ import annotations

import pytest
import torch

from sslbench import cli, devices
from sslbench.devices import DeviceError, check_name, is_cuda, resolve_device

NOT_ALLOWED = "is not allowed; choose auto, cpu, cuda or cuda:N"


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize("name, written", [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda:0"),
                                           ("cuda:12", "cuda:12"), ("cuda:01", "cuda:1")])
def test_allowed_names(name, written):
    assert check_name(name) == written
    assert is_cuda(name) == name.startswith("cuda")


@pytest.mark.parametrize("name", ["gpu0", "CPU", "cuda:", "cuda:-1", "cuda:x", "cuda:1:2", "cuda 0", " cpu", "mps",
                                  "meta", "", None, 0])
def test_other_names_are_one_line(name, no_cuda):
    for check in (check_name, resolve_device):
        with pytest.raises(DeviceError) as info:
            check(name)
        assert str(info.value) == f"device={name!r} {NOT_ALLOWED}"
    assert not is_cuda(name)


def test_without_cuda(no_cuda):
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(DeviceError, match=rf"device='{name}': CUDA is not available here .*--device cpu"):
            resolve_device(name)


def test_with_two_cuda_devices(two_gpus):
    assert [resolve_device(n) for n in ("auto", "cpu", "cuda", "cuda:0", "cuda:1")] == \
        ["cuda", "cpu", "cuda", "cuda:0", "cuda:1"]
    with pytest.raises(DeviceError, match=r"device='cuda:2': this machine has 2 CUDA devices \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


def test_each_rank_follows_the_rule(no_cuda):
    from sslbench.training.distributed import resolve_device as rank_device

    assert rank_device("auto", 0) == torch.device("cpu")
    for name in ("gpu0", "cuda:x", "cuda"):
        with pytest.raises(ValueError, match=f"device='{name}'"):
            rank_device(name, 0)


def test_the_config_follows_the_rule(no_cuda):
    from sslbench.training.config import TrainConfig, TrainInputError

    with pytest.raises(TrainInputError, match=f"device='cuda:x' {NOT_ALLOWED}"):
        TrainConfig(device="cuda:x", dataset="digits").resolved()
    with pytest.raises(TrainInputError, match="device='cuda': CUDA is not available here"):
        TrainConfig(device="cuda", dataset="digits").resolved()


@pytest.mark.parametrize("command", [
    ["train", "--dataset", "digits", "--max-steps", "1", "--no-eval", "--quiet", "--out", "none"],
    ["bench", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "32", "--dry-run"],
    ["sweep", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "32", "--dry-run"],
])
@pytest.mark.parametrize("name", ["gpu0", "cuda:x"])
def test_every_command_refuses_a_bad_name_in_the_same_line(command, name, capsys):
    assert cli.main([*command, "--device", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"device={name!r} {NOT_ALLOWED}" in err[0], err


def test_a_plan_for_a_gpu_machine_keeps_its_cuda_names(no_cuda, capsys):
    """A dry run plans CUDA cases on a machine without CUDA (the plan of a GPU machine); the names are checked."""
    assert cli.main(["sweep", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "32", "--device",
                     "cuda:01", "--dry-run"]) == 0
    assert "cuda:1" in capsys.readouterr().out


def test_the_module_imports_nothing_of_sslbench():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(devices.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.startswith("sslbench")]

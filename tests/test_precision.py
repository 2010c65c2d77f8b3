"""precision=auto: what it becomes on CUDA and on CPUs with and without bf16
instructions, and where a run and --help say so."""
import json
import os

import pytest
import torch

from wgan_fast import config, runtime, train
from wgan_fast.train.state import autocast_of

from helpers import TinyImages, tiny_cfg


@pytest.mark.parametrize("features,cpu", [
    ({"avx512_bf16", "amx_bf16"}, "bf16"),
    ({"amx_bf16"}, "bf16"),
    ({"avx512_bf16"}, "fp32"),  # the dot product alone: slower than fp32 where measured (docs/performance.md)
    (set(), "fp32"),
])
def test_auto_precision_by_device_and_cpu_features(monkeypatch, features, cpu):
    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: features)
    assert runtime.auto_precision("cpu") == cpu
    assert runtime.auto_precision("cuda") == "bf16"
    precision, autocast = autocast_of({"precision": "auto"}, torch.device("cpu"))
    assert precision == cpu
    with autocast():
        y = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert y.dtype == (torch.bfloat16 if cpu == "bf16" else torch.float32)
    # an explicit precision is kept whatever the CPU has
    assert autocast_of({"precision": "bf16"}, torch.device("cpu"))[0] == "bf16"


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="no /proc/cpuinfo (not Linux)")
def test_cpu_features_agree_with_the_kernel_flags(monkeypatch):
    with open("/proc/cpuinfo") as f:
        flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    expected = {n for n in ("avx512_bf16", "amx_bf16") if n in flags}
    assert runtime.cpu_bf16_features() == expected
    monkeypatch.delattr(torch.cpu, "get_capabilities")  # older torch: the flags are read from /proc/cpuinfo
    assert runtime.cpu_bf16_features() == expected


def test_help_and_config_json_say_what_auto_became(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: {"avx512_bf16", "amx_bf16"})
    assert "here: auto = bf16 on this CPU (AMX-BF16, AVX512-BF16), bf16 on CUDA" in config.help_text()
    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: set())
    assert "here: auto = fp32 on this CPU (no bf16 instructions)" in config.help_text()

    cfg = tiny_cfg(tmp_path, steps=1)
    run_dir = train.train(cfg, data=TinyImages()).run_dir
    written = json.load(open(os.path.join(run_dir, "config.json")))
    assert written["precision"] == "auto"
    assert written["resolved"] == {"precision": "fp32", "device": "cpu"}
    # the file reads back as a config (for --config on resume): its resolved part is not a key
    again = config.resolve(yaml_path=os.path.join(run_dir, "config.json"))
    assert "resolved" not in again and again["precision"] == "auto"

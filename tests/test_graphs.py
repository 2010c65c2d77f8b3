"""Whole-iteration CUDA graphs (wgan_fast.graphs).

On a GPU: eager and graphed training end with the same parameters (fp32).
Everywhere: the replay logic (static buffers, warm-up, capture failure and
shape-change fallbacks) with a stand-in for the CUDA graph calls.
"""
import contextlib

import pytest
import torch

from helpers import TinyImages, tiny_cfg
from wgan_fast import config, graphs, train


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: replay runs `fn` (set by the test), or nothing."""

    def __init__(self):
        self.fn = lambda: None

    def replay(self):
        self.fn()


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda's stream and graph calls as no-ops, so the control flow runs on CPU."""
    state = {"capturing": None}

    @contextlib.contextmanager
    def graph(g):
        state["capturing"] = g
        try:
            yield
        finally:
            state["capturing"] = None

    class Stream:
        def wait_stream(self, other):
            pass

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    return state


def test_replays_copy_inputs_into_static_buffers(fake_cuda):
    seen = []

    def fn(x, y, none):
        seen.append((x.clone(), y.clone(), none))

    fake = _FakeGraph()
    it = graphs.GraphedIteration(fn, warmup=2, graph_factory=lambda: fake)
    fake.fn = lambda: fn(*it.static)  # a replay runs the captured work on the static buffers
    for k in range(5):
        it([torch.full((2,), float(k)), torch.full((3,), 10.0 + k), None])
    # 2 warm-up calls, 1 capture (records, then replays), 2 replays
    assert it.active and it.failure is None
    values = [x[0].item() for x, _, _ in seen]
    assert values == [0, 1, 2, 2, 3, 4]  # call 2 ran once in capture, once in its replay; 3, 4 replayed
    assert [y[0].item() for _, y, _ in seen][-1] == 14.0


def test_capture_failure_falls_back_to_eager_with_a_warning(fake_cuda):
    calls = []

    def fn(x):
        if fake_cuda["capturing"] is not None:
            raise RuntimeError("operation not permitted when stream is capturing")
        calls.append(x.item())

    it = graphs.GraphedIteration(fn, warmup=1, graph_factory=_FakeGraph)
    it([torch.tensor(0.0)])
    with pytest.warns(RuntimeWarning, match="capture of the training iteration failed.*not permitted"):
        it([torch.tensor(1.0)])
    it([torch.tensor(2.0)])
    assert calls == [0.0, 1.0, 2.0] and not it.active and "RuntimeError" in it.failure


def test_other_shapes_run_eagerly_never_a_stale_graph(fake_cuda):
    calls = []
    it = graphs.GraphedIteration(lambda x: calls.append(x.shape[0]), warmup=0, graph_factory=_FakeGraph)
    it([torch.zeros(4)])  # captured (fake graph does nothing on replay)
    assert it.active
    with pytest.warns(RuntimeWarning, match="changed shape"):
        it([torch.zeros(3)])
    assert calls[-1] == 3  # the partial batch ran eagerly


@pytest.mark.parametrize("cfg,world,precision,why", [
    (dict(n_critic=5, lazy_reg=1), 1, "fp32", "CUDA device"),
    (dict(n_critic=5, lazy_reg=1), 2, "bf16", "several processes"),
    (dict(n_critic=5, lazy_reg=1), 1, "fp16", "GradScaler"),
    (dict(n_critic=5, lazy_reg=2), 1, "bf16", "lazy_reg=2"),
])
def test_unsupported_reasons(cfg, world, precision, why):
    device = torch.device("cpu" if why == "CUDA device" else "cuda")
    assert why in graphs.unsupported_reason(cfg, device, world, precision)


def test_supported_configuration_has_no_reason():
    assert graphs.unsupported_reason(dict(n_critic=4, lazy_reg=2), torch.device("cuda"), 1, "bf16") is None


class _OnDevice:
    def __init__(self, stream, device):
        self.stream, self.device = stream, device

    def next(self):
        x, y = self.stream.next()
        return x.to(self.device), y.to(self.device)

    def state_dict(self):
        return self.stream.state_dict()

    def load_state_dict(self, s):
        self.stream.load_state_dict(s)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: graphed-vs-eager training test skipped")
@pytest.mark.parametrize("algorithm", ["wgan-gp", "wgan-clip", "wgan-sn"])
def test_graphed_and_eager_training_end_alike_on_gpu(tmp_path, monkeypatch, algorithm):
    made = []

    class Recorded(graphs.GraphedIteration):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            made.append(self)

    monkeypatch.setattr(graphs, "GraphedIteration", Recorded)
    out = {}
    for graphed in (False, True):
        cfg = tiny_cfg(tmp_path, algorithm=algorithm, device="cuda", precision="fp32", cuda_graphs=graphed,
                       steps=8, lr_decay=True, name=f"g{graphed}", conditional=True)
        train.train(cfg, data=_OnDevice(TinyImages((1, 28, 28)), "cuda"))
        state = torch.load(tmp_path / f"g{graphed}" / "ckpt_00000008.pt", weights_only=True)
        out[graphed] = state
    # the graphed run really replayed a graph (a failed capture falls back to eager and would compare eager to eager)
    assert len(made) == 1, f"expected one GraphedIteration (graphed run only), got {len(made)}"
    assert made[0].failure is None, made[0].failure
    assert made[0].active and made[0].calls == made[0].warmup, (made[0].active, made[0].calls)
    for part in ("G", "D", "G_ema"):
        for k, v in out[False][part].items():
            torch.testing.assert_close(out[True][part][k], v, rtol=1e-4, atol=1e-5, msg=f"{part}.{k}")


def test_cuda_graphs_flag_is_validated():
    with pytest.raises(config.ConfigError, match="cuda_graphs"):
        config.resolve({"cuda_graphs": "maybe"})

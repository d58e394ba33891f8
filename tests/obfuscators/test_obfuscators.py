"""Every deobfuscator, checked the kornia way: smoke, shape, gradient, export (obfuscators: test_contract.py)."""

import pytest
import torch

from veil.adversaries import DEOBFUSCATORS
from veil.obfuscators import OBFUSCATORS

MODELS = [("deobfuscator", n) for n in DEOBFUSCATORS.names()]


def _build(kind: str, name: str):
    torch.manual_seed(0)
    return (OBFUSCATORS if kind == "obfuscator" else DEOBFUSCATORS).build(name)


@pytest.mark.parametrize(("kind", "name"), MODELS)
@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 75, 130)])
def test_shape_and_range(kind, name, shape):
    y = _build(kind, name).eval()(torch.rand(shape))
    assert y.shape == shape and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize(("kind", "name"), MODELS)
def test_gradient_flows_to_input_and_every_parameter(kind, name):
    model = _build(kind, name).train()
    x = torch.rand(2, 3, 64, 96, requires_grad=True)
    model(x).square().mean().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_default_obfuscator_is_paper_sized():
    n = sum(p.numel() for p in OBFUSCATORS.build("mobilenet_ae").parameters())
    assert 0.03e6 <= n <= 0.05e6  # de-coninck-2024 Table 4: 0.04 M
    wide = sum(p.numel() for p in OBFUSCATORS.build("mobilenet_ae", width=2.0).parameters())
    assert wide > 2 * n


@pytest.mark.parametrize(("kind", "name"), MODELS)
def test_onnx_export_matches_torch(kind, name, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = _build(kind, name).eval()
    x = torch.rand(1, 3, 96, 128)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x.numpy()})
    assert torch.allclose(torch.from_numpy(y), model(x), atol=1e-4)

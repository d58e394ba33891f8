"""`veil export`: one real export (fp32 + int8, AP on real pseudo-labels) checked from every side."""

import json

import numpy as np
import onnx
import pytest
import torch

from tests.audit.test_report import small_dataset
from tests.deployment.cli import assert_one_error_line, run_veil
from veil.data.sources import sha256
from veil.deployment.export import VERIFY_FRAMES, output_paths, vtest_frames
from veil.deployment.obfuscate import apply
from veil.deployment.runtime import load_onnx_obfuscator
from veil.training.config import TrainConfig
from veil.training.state import build_models, load_models, save_models


@pytest.fixture(scope="module")
def exported(small_checkpoint, dataset, tmp_path_factory):
    """``veil export --int8 --dataset`` on the val split (5 real frames, YOLO pseudo-labels; 10 train frames
    to calibrate on)."""
    root = tmp_path_factory.mktemp("export")
    dataset = small_dataset(dataset, root / "ds", n_val=5)
    out = root / "obfuscator.onnx"
    monkeypatch = pytest.MonkeyPatch()
    capsys = _Capture()
    try:
        code, stdout, err = run_veil(monkeypatch, capsys, "export", small_checkpoint, "--out", out, "--int8",
                                     "--dataset", dataset, "--split", "val")
    finally:
        monkeypatch.undo()
    assert code == 0, err
    return out, json.loads(stdout)


class _Capture:
    """capsys for a module-scoped fixture: run_veil only calls readouterr()."""

    def __init__(self) -> None:
        import contextlib
        import io

        self.out, self.err = io.StringIO(), io.StringIO()
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(contextlib.redirect_stdout(self.out))
        self.stack.enter_context(contextlib.redirect_stderr(self.err))

    def readouterr(self):
        self.stack.close()
        return self.out.getvalue(), self.err.getvalue()


def test_fp32_matches_pytorch_on_real_frames_at_any_size(exported, small_checkpoint):
    out, summary = exported
    card = json.loads(output_paths(out)["card"].read_text())
    assert summary["max_abs_diff_vs_pytorch"] == card["parity"]["max_abs_diff"] < 1e-4
    model = onnx.load(str(out))
    assert card["opset"] == summary["opset"] >= 17
    assert min(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    # Our own check, independent of the card: a batch of 3 real frames at a size the card never saw.
    obfuscator = load_models(small_checkpoint)[0]
    frames = vtest_frames((10, 20, 30), (203, 117))
    expected = np.stack(apply(obfuscator, list(frames)))
    got = load_onnx_obfuscator(out, threads=1)(frames)
    assert got.shape == expected.shape == (3, 117, 203, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1  # uint8 rounding of a ~1e-7 float difference


def test_model_card(exported, small_checkpoint):
    out, _ = exported
    paths = output_paths(out, int8=True)
    card = json.loads(paths["card"].read_text())
    obfuscator = load_models(small_checkpoint)[0]
    assert card["model"]["parameters"] == sum(p.numel() for p in obfuscator.parameters())
    assert 0.4e9 < card["model"]["macs_640x480"] < 1e9 and card["model"]["mac_counter"].startswith("ptflops")
    assert card["input"]["layout"] == "NCHW" and card["input"]["range"] == [0, 1]
    assert card["input"]["trained_frame_size"] == [160, 120]
    assert card["training"]["config"]["obfuscator"] == "mobilenet_ae"
    assert card["detector"]["name"] == "yolo"
    assert card["checkpoint"]["sha256"] == sha256(small_checkpoint)
    for kind in ("fp32", "int8"):
        assert card["files"][kind]["sha256"] == sha256(paths[kind])
    assert card["parity"]["frames"] == f"vtest.avi frames {list(VERIFY_FRAMES)}"
    assert card["bound"]["bits_per_frame"] is None  # a float latent: no bound in bits
    assert "latent" not in card["parity"]


def test_int8_runs_and_its_ap_cost_is_measured(exported, dataset):
    out, summary = exported
    int8 = load_onnx_obfuscator(output_paths(out, int8=True)["int8"])
    frame = vtest_frames((100,), (160, 120))[0]
    result = int8(frame)
    assert result.shape == frame.shape and result.dtype == np.uint8
    card = json.loads(output_paths(out)["card"].read_text())
    utility = card["utility"]
    assert utility["frames"] == 5 and utility["split"] == "val" and utility["detector"].startswith("yolo")
    assert utility["person_ap"]["original"] > 0.5  # real YOLO against its own pseudo-labels
    assert set(utility["relative_ap"]) == {"onnx_fp32", "onnx_int8"}
    assert all(0 <= v <= 1.5 for v in utility["relative_ap"].values())
    assert summary["int8_relative_ap_cost"] == pytest.approx(
        utility["relative_ap"]["onnx_fp32"] - utility["relative_ap"]["onnx_int8"])
    assert 0 < card["int8"]["max_abs_diff_vs_fp32"] < 0.5
    assert "train split" in card["int8"]["calibration"]


def test_existing_export_is_not_overwritten(monkeypatch, capsys, exported, small_checkpoint):
    out, _ = exported
    before = out.read_bytes()
    result = run_veil(monkeypatch, capsys, "export", small_checkpoint, "--out", out)
    assert_one_error_line(result, "already exists (pass --overwrite")
    assert out.read_bytes() == before


def test_export_must_be_onnx(monkeypatch, capsys, small_checkpoint, tmp_path):
    result = run_veil(monkeypatch, capsys, "export", small_checkpoint, "--out", tmp_path / "model.pt")
    assert_one_error_line(result, "must be an .onnx file")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_round_trip(exported):
    """Memory -> safetensors checkpoint -> ONNX gives the network that was saved, on real frames."""
    out, _ = exported
    torch.manual_seed(0)  # the small_checkpoint fixture's seed: the same untrained weights
    in_memory = build_models(TrainConfig())[0].eval()
    frames = vtest_frames((200, 400), (160, 120))
    expected = np.stack(apply(in_memory, list(frames)))
    assert np.abs(load_onnx_obfuscator(out)(frames).astype(int) - expected).max() <= 1


def test_mac_count_sees_functional_convolutions():
    """BDQ's blur and the lensless mask are F.conv2d calls, not modules: they must still count."""
    import torch.nn.functional as F

    from veil.deployment.export import count_macs
    from veil.obfuscators import OBFUSCATORS

    class Blur(torch.nn.Module):
        def forward(self, x):
            return F.conv2d(x, torch.ones(3, 1, 5, 5) / 25, padding=2, groups=3)

    assert count_macs(Blur(), (64, 48))[0] == 3 * 25 * 64 * 48  # a depthwise 5x5 kernel per output pixel
    macs, params = count_macs(OBFUSCATORS.build("bdq"), (64, 48))
    assert params < 50 and macs >= 3 * 64 * 48  # the learned blur is counted, though BDQ has no conv module


@pytest.fixture(scope="module")
def bottleneck_checkpoint(tmp_path_factory):
    """An untrained bottleneck with non-default levers (1/16, 6 channels, 8 levels, grey) at 160x120."""
    torch.manual_seed(1)
    config = TrainConfig(obfuscator="bottleneck", obfuscator_args={"stride": 16, "latent": 6, "levels": 8})
    obfuscator, _ = build_models(config)
    with torch.no_grad():  # off the initial weights, so the latent spreads over its levels
        for p in obfuscator.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("bottleneck") / "obfuscator.safetensors"
    save_models(path, config, obfuscator, None, {"frame_size": [160, 120], "epoch": 0, "detector": "yolo"})
    return path


def test_bottleneck_card_states_its_bound_in_bits_and_the_export_quantises_like_pytorch(
        monkeypatch, capsys, bottleneck_checkpoint, tmp_path):
    out = tmp_path / "bottleneck.onnx"
    code, stdout, err = run_veil(monkeypatch, capsys, "export", bottleneck_checkpoint, "--out", out)
    assert code == 0, err
    card = json.loads(output_paths(out)["card"].read_text())
    obfuscator = load_models(bottleneck_checkpoint)[0]
    with torch.no_grad():  # the real latent of a 160x120 frame
        latent = obfuscator.encode(torch.zeros(1, 3, 120, 160))
    bound = card["bound"]
    assert bound["latent"]["shape"] == list(latent.shape[1:]) == [6, 8, 10]
    assert bound["latent"]["levels"] == 8
    assert bound["bits_per_frame"] == latent.numel() * 3 == json.loads(stdout)["bits_per_frame"] == 1440
    assert bound["bits_per_frame_640x480"] == 6 * 30 * 40 * 3
    assert "runs on the camera" in bound["statement"] and "1440 bits per 160x120 frame" in bound["statement"]
    # the latent's entropy on the real verification frames, per channel x positions: never above the bound
    from veil.deployment.runtime import to_input
    from veil.obfuscators.latent import channel_entropy

    with torch.no_grad():
        q = obfuscator.encode(torch.from_numpy(to_input(vtest_frames(VERIFY_FRAMES, (160, 120)))))
    measured = float(channel_entropy(q, 8).sum()) * 8 * 10
    assert bound["measured_bits_per_frame"]["value"] == pytest.approx(measured, abs=0.1) and measured <= 1440
    # the export's latent was compared level for level on the real verification frames
    assert card["parity"]["latent"]["equal"] + card["parity"]["latent"]["differ_at_rounding_boundary"] \
        == card["parity"]["latent"]["values"] > 0
    # and our own check on other real frames, through the runtime a camera uses
    frames = vtest_frames((15, 315), (160, 120))
    expected = np.stack(apply(obfuscator, list(frames)))
    got = load_onnx_obfuscator(out, threads=1)(frames)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert (got[..., 0] == got[..., 2]).all()  # grey: three identical channels


def test_baseline_exports_and_runs_on_the_edge_runtime_like_an_obfuscator(monkeypatch, capsys, tmp_path):
    """``veil export --baseline``: the ONNX equals the PyTorch baseline on real frames, and the
    edge agent loads it (and its frame size) exactly as it loads a learned obfuscator's export."""
    from veil.deployment.edge import load_obfuscator
    from veil.obfuscators.baselines import BASELINES

    out = tmp_path / "grey_downsample.onnx"
    code, stdout, err = run_veil(monkeypatch, capsys, "export", "--baseline", "grey_downsample", "--strength", "4",
                                 "--frame-size", "160x120", "--out", out)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["baseline"]["name"] == "grey_downsample" and summary["baseline"]["strength"] == 4
    card = json.loads(output_paths(out)["card"].read_text())
    assert card["input"]["trained_frame_size"] == [160, 120] and card["parity"]["max_abs_diff"] < 1e-4
    model, size = load_obfuscator(out, threads=1)
    assert size == (160, 120)
    frames = vtest_frames((40, 240), (160, 120))
    baseline = BASELINES.build("grey_downsample", strength=4)
    expected = np.stack(apply(lambda x: baseline(x), list(frames)))
    got = model(frames)
    assert got.shape == frames.shape and np.abs(got.astype(int) - expected).max() <= 1
    assert (got[..., 0] == got[..., 1]).all()
    assert not (got == frames).all()


@pytest.mark.parametrize(("name", "strength"), [("grey", 1.0), ("downsample", 3), ("quantisation", 4)])
def test_every_camera_side_baseline_exports_exactly(name, strength, tmp_path):
    from veil.deployment.export import export_baseline
    from veil.obfuscators.baselines import BASELINES

    out = tmp_path / f"{name}.onnx"
    card = export_baseline(name, out, strength, frame_size=(160, 120))
    frames = vtest_frames((60,), (203, 117))  # not a multiple of the factor
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    expected = BASELINES.build(name, strength=strength)(x).numpy()
    got = load_onnx_obfuscator(out).run(x.numpy())
    assert np.abs(got - expected).max() < 1e-5
    assert card["model"]["baseline"]["strength"] == strength and card["bound"]["bits_per_frame"] is None


@pytest.mark.parametrize(("args", "fragment"), [
    (["--baseline", "grey"], "either a CHECKPOINT or --baseline"),
    ([], "either a CHECKPOINT or --baseline"),
    (["--baseline", "detect_mask"], "no export path"),
    (["--baseline", "nope"], "unknown baseline 'nope'"),
    (["--baseline", "grey", "--int8"], "--int8 needs a checkpoint"),
    (["--baseline", "grey", "--frame-size", "640by480"], "--frame-size must look like"),
])
def test_bad_export_requests_get_one_error_line(monkeypatch, capsys, small_checkpoint, tmp_path, args, fragment):
    lead = [small_checkpoint] if fragment.startswith("either") and args else []
    result = run_veil(monkeypatch, capsys, "export", *lead, *args, "--out", tmp_path / "x.onnx")
    assert_one_error_line(result, fragment)
    assert list(tmp_path.iterdir()) == []

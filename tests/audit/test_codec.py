"""`veil audit --codec`: every transformed frame is measured after the edge's codec, as the cloud
decodes it, and its upload size is reported; the original frames stay the lossless reference."""

from __future__ import annotations

import pytest

from tests.audit.test_report import small_dataset
from veil.audit.report import BOXES, load_report

LIGHT = dict(crop_size=(24, 48), epochs=1, attackers=("hog_linear",), protocols=("reid",), baselines=("gaussian_blur",),
             attribute_train_frames=10, max_attribute_train=48, max_attribute_test=32, ap_frames=3, unet_steps=2,
             unet_crop=48, unet_width=0.25, min_track=5, seeds=1, bootstrap=100)


@pytest.fixture(scope="module")
def audits(tmp_path_factory, yolo, dataset):
    """The same tiny audit without a codec and through JPEG at quality 30."""
    from veil.audit import run_audit
    from veil.obfuscators import OBFUSCATORS

    ds = small_dataset(dataset, tmp_path_factory.mktemp("codec") / "ds")
    obfuscator = OBFUSCATORS.build("mobilenet_ae", width=0.25)  # untrained: the pipeline, not the result
    return {codec: (run_audit(ds, obfuscator, ds.parent / str(codec), yolo, preset="fast",
                              overrides={**LIGHT, "codec": codec}), ds.parent / str(codec))
            for codec in (None, "jpeg@30")}


def test_every_transformed_frame_is_measured_after_the_codec(audits):
    plain, coded = audits[None][0], audits["jpeg@30"][0]
    for name in ("obfuscator", "gaussian_blur"):
        a, b = plain.method(name), coded.method(name)
        assert a.codec is None and a.upload_bytes_per_frame is None
        assert b.codec == "jpeg@30" and b.upload_bytes_per_frame > 1000
        # the same transform, other frames: JPEG at 30 moves every frame away from the lossless one
        assert b.similarity_to_original["psnr"] != pytest.approx(a.similarity_to_original["psnr"], abs=1e-6)
    # the original frames are the reference: never re-encoded for their figures, only sized
    original = coded.method("original")
    assert original.relative_ap == 1.0 and original.codec == "jpeg@30"
    assert original.identity["reid"].worst_case.value == plain.method("original").identity["reid"].worst_case.value
    # a blur leaves less for JPEG to code than the sharp original frames
    assert coded.method("gaussian_blur").upload_bytes_per_frame < original.upload_bytes_per_frame
    # the reconstruction attack (in the cloud, after decoding) and the floor upload nothing themselves
    assert coded.method(BOXES).upload_bytes_per_frame is None


def test_the_report_keeps_the_codec_and_shows_the_bytes(audits):
    report, out = audits["jpeg@30"]
    loaded = load_report(out)
    assert loaded.config["codec"] == "jpeg@30"
    assert loaded.method("obfuscator").upload_bytes_per_frame == pytest.approx(
        report.method("obfuscator").upload_bytes_per_frame)
    html = (out / "report.html").read_text()
    assert "kB per frame (jpeg@30)" in html and "decoded as the cloud does" in html

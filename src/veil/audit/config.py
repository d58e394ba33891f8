"""What one audit measures and with which budget: AuditConfig and its presets.

* ``fast``: the demo's audit, CPU minutes: a subset of the attackers, small crops, one seed;
* ``strong``: the figures Veil quotes: every attacker trained until its validation accuracy
  stops rising, bigger crops, 3 seeds, both identity protocols, each identity attacker also
  fused with the boxes the detector outputs, compared with ``fast`` on the same crops;
* ``full``: paper scale (whole splits, long budgets); meant for a GPU;
* ``smoke``: seconds, for tests and smoke runs of the pipeline; its figures mean nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from veil.errors import VeilError


@dataclass(frozen=True)
class AuditConfig:
    """Budget and protocol of one audit."""

    # attackers (None: every registered one) and their budget
    # fast's subset: one of each family but the fine-tuned (too slow for the demo's budget)
    attackers: tuple[str, ...] | None = ("small_cnn", "efficientnet_lite0_knn", "hog_linear", "colour_forest",
                                         "lbp_svm")
    crop_size: tuple[int, int] = (32, 64)  # (width, height) every crop is resized to
    epochs: int | None = 3  # fixed epochs, or the most when ``patience`` is set (None: each attacker's own)
    patience: int | None = None  # stop after this many epochs without a better validation score
    augment: str = "flip"
    batch_size: int = 32
    seeds: int = 1  # attacks repeated with seeds seed, seed+1, ...
    seed: int = 0
    # identity protocols (see veil.audit.protocols) and their labels
    protocols: tuple[str, ...] = ("reid", "tracking")
    reid_splits: tuple[str, ...] = ("val", "test")  # footage the obfuscator never trained on
    tracking_split: str = "test"
    time_gap: float = 1.0  # seconds between an identity's last attacker-train and first attacker-test crop (reid)
    min_track: int = 8
    train_fraction: float = 0.6
    val_fraction: float = 0.2  # latest share of each identity's attacker-train crops held out for early stopping
    # attributes
    attribute_train_frames: int | None = 32  # evenly spaced train-split frames (None: all)
    max_attribute_train: int | None = 192
    max_attribute_test: int | None = 192
    # the cloud holds every box: fuse each identity attacker with the boxes-only attack (veil.audit.geometry)
    fuse_boxes: bool = False
    # utility, reconstruction, sweep
    baselines: tuple[str, ...] | None = None  # None: every registered baseline
    ap_frames: int | None = 12  # evenly spaced test frames for person AP (None: all)
    # utility beyond the trained-against detector (issue 17): relative AP under every offline
    # detector, people-count error, ByteTrack agreement (IDF1) and CenterFace's face leak
    transfer: bool = False
    transfer_detectors: tuple[str, ...] = ("hog",)  # besides the audit's own detector
    #: ``NAME@QUALITY`` (veil.data.codec), e.g. "jpeg@85", the edge agent's default: every transformed frame
    #: is encoded and decoded as the cloud receives it before it is measured, and its bytes are reported.
    #: None: the frames as 8-bit images, lossless (the original frames are never re-encoded: they are the reference)
    codec: str | None = None
    unet_steps: int = 100
    unet_crop: int = 96
    unet_width: float = 0.5
    sweep_points: int | None = 1  # identity-attacked sweep strengths per baseline, strongest first (None: all)
    calibration_steps: int = 8
    ap_tolerance: float = 0.02  # "within 2 AP points"
    # statistics
    # the identity figure the verdict is read on (veil.audit.report.IDENTITY_FIGURES). The verification AUC: on
    # vtest its intervals are the tightest for the signal they carry (width / (original - chance): 0.15-0.18
    # against mAP's 0.38-0.43 and top-1's 0.54-0.59, in bench/results/audit-crossfit-*.json), because it scores
    # every same/different pair of every query instead of one label per crop
    headline: str = "auc"
    bootstrap: int = 1000
    level: float = 0.95
    compare_presets: tuple[str, ...] = ()  # cheaper presets re-run on the original and obfuscated crops
    device: str = "cpu"
    workers: int | None = None  # attacker fits side by side on CPU (None: one per torch thread, at most 4)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, AuditConfig] = {
    "fast": AuditConfig(),
    "strong": AuditConfig(
        attackers=None, crop_size=(40, 80), epochs=None, patience=2, augment="flip+crop", seeds=3,
        attribute_train_frames=64, max_attribute_train=256, max_attribute_test=192, ap_frames=20,
        unet_steps=300, sweep_points=0, compare_presets=("fast",), transfer=True, fuse_boxes=True),
    "full": AuditConfig(
        attackers=None, crop_size=(64, 128), epochs=60, patience=5, augment="flip+crop", seeds=3,
        attribute_train_frames=None, max_attribute_train=3000, max_attribute_test=None, ap_frames=None,
        unet_steps=2000, unet_crop=128, unet_width=1.0, sweep_points=None, calibration_steps=10,
        compare_presets=("fast", "strong"), transfer=True, fuse_boxes=True),
    "smoke": AuditConfig(
        attackers=("hog_linear", "small_cnn"), crop_size=(24, 48), epochs=2, min_track=5, attribute_train_frames=10,
        max_attribute_train=64, max_attribute_test=48, ap_frames=3, unet_steps=5, unet_crop=48, unet_width=0.25,
        calibration_steps=1, bootstrap=200),
}


def resolve(preset: str | AuditConfig, overrides: dict | None = None) -> AuditConfig:
    """A preset by name (or a config as is) with ``overrides`` applied."""
    if isinstance(preset, AuditConfig):
        config = preset
    elif preset in PRESETS:
        config = PRESETS[preset]
    else:
        raise VeilError(f"unknown audit preset {preset!r} (known: {', '.join(PRESETS)})")
    unknown = set(overrides or {}) - set(config.to_dict())
    if unknown:
        raise VeilError(f"unknown audit setting(s): {', '.join(sorted(unknown))}")
    config = replace(config, **(overrides or {}))
    if config.seeds < 1:
        raise VeilError(f"--seeds must be at least 1, got {config.seeds}")
    if config.codec is not None:
        from veil.data.codec import parse_codec

        parse_codec(config.codec)  # a bad spec fails before anything is loaded
    from veil.audit.report import IDENTITY_FIGURES

    if config.headline not in IDENTITY_FIGURES:
        raise VeilError(f"unknown headline identity figure {config.headline!r} (known: {', '.join(IDENTITY_FIGURES)})")
    if config.time_gap < 0:
        raise VeilError(f"the time gap must be >= 0 seconds, got {config.time_gap}")
    return config

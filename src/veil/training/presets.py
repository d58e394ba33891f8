"""Named training presets: the paper's schedule, and one that fits a 2-core CPU."""

from __future__ import annotations

import copy
from pathlib import Path

from veil.errors import VeilError
from veil.io import read_json
from veil.training.config import TrainConfig

PRESETS: dict[str, dict] = {
    # de-coninck-2024: 30 epochs over whole frames, lr 1e-3 / 10 halfway, AdamW wd 1e-6, AMP.
    "paper": {"epochs": 30, "batch_size": 8, "crop": None, "steps_per_epoch": None},
    # 2 CPU cores: full-scale 256 px random crops (the detector sees people at their real size,
    # the obfuscator is fully convolutional), 525 steps. The learning rate drops after 3/4 of the
    # steps, not halfway: the detector's loss is still falling at lr 1e-3 when the paper's halfway
    # drop would stop it. 525, not 350: relative AP still rises past 350 steps while privacy stays
    # flat (bench/results/curve-cpu). 256, not 320 px: a step costs about 0.64 as much (the detector's
    # pass dominates it), which keeps `make demo` at its 25 min on issue 18's slower machine
    # (bench/results/demo-budget.json).
    "cpu": {"epochs": 21, "batch_size": 4, "crop": 256, "steps_per_epoch": 25, "val_every": 7, "lr_drop": 0.75,
            # issue 18's winner: the quantised bottleneck (16 channels x 16 levels at 1/8: 307,200 bits
            # per 640x480 frame, grey output, 1/78 of the detector's ONNX latency). At lr 1e-3 it kept
            # 0.831-0.837 of the AP on 3 seeds; this small net needs 3e-3 to converge in 525 steps
            # (bench/results/levers-lr-3seeds.json). `--obfuscator mobilenet_ae` brings back the
            # former default with its own learning rate (OBFUSCATOR_RECIPE).
            "obfuscator": "bottleneck", "obfuscator_args": {"latent": 16, "levels": 16}, "lr": 3e-3},
    # The cpu preset against reconstruction AND wu-2018's budget ensemble: M = 3 small models
    # (MobileNetV2 x0.35, ShuffleNetV2 x0.35, a colour-stripe MLP), switched on after 100 steps
    # of warm-up (budget models fitted to a random O's output start weak), restarted every 100
    # adversarial steps, weight 0.5 (at weight 1 relative AP fell to 0.80 on seed 0).
    "cpu-budget": {
        "epochs": 21, "batch_size": 4, "crop": 320, "steps_per_epoch": 25, "val_every": 7, "lr_drop": 0.75,
        "adversaries": {"reconstruction": 1.0, "budget": 0.5},
        "adversary_options": {"budget": {"models": 3,
                                         "architectures": ["mobilenet_v2", "shufflenet_v2", "colour_stripes"],
                                         "width": 0.35, "crop_height": 64, "crop_width": 32, "warmup_steps": 100,
                                         "restart_every": 100, "max_passes": 10, "heldout_every": 7}},
    },
    # Seconds, not minutes: for tests and smoke runs.
    "smoke": {"epochs": 2, "batch_size": 2, "crop": 160, "steps_per_epoch": 2, "val_every": 0},
}


#: what a preset sets for its obfuscator alone: another obfuscator named by the user drops them
OBFUSCATOR_RECIPE = ("obfuscator_args", "lr")


def make_config(preset: str, dataset: str | Path | None = None, **overrides) -> TrainConfig:
    """A TrainConfig from ``preset``; ``None`` overrides are ignored; the detector defaults to the dataset's.

    Obfuscator arguments add to the preset's when they name the preset's obfuscator; another
    obfuscator starts from its own defaults (the preset's arguments and learning rate were chosen
    for its obfuscator, and would not fit).
    """
    if preset not in PRESETS:
        raise VeilError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    values = copy.deepcopy(PRESETS[preset])
    chosen = overrides.get("obfuscator")
    if chosen is not None and chosen != values.get("obfuscator", TrainConfig.obfuscator):
        for key in OBFUSCATOR_RECIPE:
            values.pop(key, None)
    if overrides.get("obfuscator_args"):
        overrides["obfuscator_args"] = {**values.get("obfuscator_args", {}), **overrides["obfuscator_args"]}
    options = overrides.pop("adversary_options", None) or {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name, opts in options.items():  # options add to (not replace) the preset's
        values.setdefault("adversary_options", {}).setdefault(name, {}).update(opts)
    if "detector" not in values and dataset is not None:
        manifest = read_json(Path(dataset) / "manifest.json")
        values["detector"] = manifest["detector"]["name"]
        from veil.detectors.recorded import weights_to_load

        # a weights file recorded in the manifest is loaded only if the user typed it (it may be a pickle)
        values["detector_weights"] = weights_to_load(manifest["detector"].get("weights"),
                                                     values.get("detector_weights"), f"the dataset {dataset}")
        values.setdefault("detector_person_classes", manifest["detector"].get("person_classes"))
    return TrainConfig(**values)

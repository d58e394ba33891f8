"""``veil data prepare``: footage -> sampled, resized frames + time splits + pseudo-labels.

On-disk layout (written to a temporary folder, renamed into place when complete)::

    DATASET/manifest.json   source, hashes, detector, thresholds, fps, size, splits
    DATASET/labels.json     pseudo-labels: {frame name: {boxes, scores, labels}}
    DATASET/frames/*.jpg    the resized frames
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

import veil
from veil.data.manifest import require_dataset
from veil.data.sources import list_images, list_videos, parse_source, sha256
from veil.data.video import Frame, read_image_folder, read_video, resize
from veil.detectors import FrozenDetector, Target
from veil.detectors.fingerprint import fingerprint
from veil.errors import VeilError
from veil.io import read_json, write_json
from veil.obfuscators.base import previous_indices

SPLITS = ("train", "val", "test")
Progress = Callable[[int, int], None]


@dataclass
class PrepareConfig:
    fps: float = 5.0
    size: tuple[int, int] = (640, 480)  # width, height
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    conf: float | None = None  # None: the detector's documented pseudo-label threshold
    jpeg_quality: int = 95


def _clips(path: Path, fps: float) -> list[Iterator[Frame]]:
    """One frame iterator per clip: each video, or the whole image folder."""
    if path.is_file():
        return [read_video(path, fps)]
    videos, images = list_videos(path), list_images(path)
    if videos:
        return [read_video(v, fps) for v in videos]
    if images:
        return [read_image_folder(path)]
    raise VeilError(f"no videos or images found in {path}")


def split_ranges(n: int, fractions: tuple[float, float, float]) -> dict[str, range]:
    """Contiguous train/val/test index ranges over a clip of ``n`` frames."""
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise VeilError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    n_train = int(round(n * fractions[0]))
    n_val = int(round(n * fractions[1]))
    cuts = [0, n_train, n_train + n_val, n]
    return {s: range(cuts[i], cuts[i + 1]) for i, s in enumerate(SPLITS)}


def _hash_source(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else list_videos(path) or list_images(path)
    return {f.name: sha256(f) for f in files}


def prepare_dataset(
    source: str,
    out_dir: str | Path,
    detector: FrozenDetector,
    config: PrepareConfig | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Build a dataset folder from ``source`` (video, folder of videos or images, or ``vtest``)."""
    config = config or PrepareConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise VeilError(f"{out_dir} already exists (pass --overwrite to replace it)")
    given = parse_source(source)
    if given.path is None:  # a webcam or a stream: no end, no hash, nothing to split in time
        raise VeilError(f"veil data prepare reads footage on disk (a video, a folder or 'vtest'), not the live "
                        f"{given.name}: record it to a file first")
    src = given.path
    conf = detector.pseudo_label_threshold if config.conf is None else config.conf
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        (tmp / "frames").mkdir()
        records = _write_frames(src, tmp / "frames", config)
        labels = _pseudo_label(tmp / "frames", records, detector, conf, progress)
        splits = {s: [r["name"] for r in records if r["split"] == s] for s in SPLITS}
        empty = [s for s, names in splits.items() if not names and config.split[SPLITS.index(s)] > 0]
        if empty:
            raise VeilError(
                f"too few frames ({len(records)}) for a {'/'.join(empty)} split; use a higher --fps or a longer source"
            )
        manifest = {
            "format": "veil-dataset",
            "veil_version": veil.__version__,
            "source": {"name": source, "path": str(src), "sha256": _hash_source(src)},
            "fps": config.fps,
            "size": list(config.size),
            "split_fractions": list(config.split),
            "detector": {**detector.spec, "id": detector.name, "pseudo_label_threshold": conf,
                         "fingerprint": fingerprint(detector)},
            "num_boxes": sum(len(v["boxes"]) for v in labels.values()),
            "splits": splits,
            "frames": records,
        }
        write_json(tmp / "labels.json", labels)
        write_json(tmp / "manifest.json", manifest)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _write_frames(src: Path, frames_dir: Path, config: PrepareConfig) -> list[dict]:
    records: list[dict] = []
    for clip_id, clip in enumerate(_clips(src, config.fps)):
        clip_records = []
        for frame in clip:
            name = f"{clip_id:03d}_{frame.index:06d}.jpg"
            bgr = cv2.cvtColor(resize(frame.image, config.size), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(frames_dir / name), bgr, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
            clip_records.append(
                {"name": name, "clip": clip_id, "source": Path(frame.source).name,
                 "index": frame.index, "time": round(frame.time, 4)}
            )
        for split, rng in split_ranges(len(clip_records), config.split).items():
            for i in rng:
                clip_records[i]["split"] = split
        records += clip_records
    return records


def _pseudo_label(
    frames_dir: Path, records: list[dict], detector: FrozenDetector, conf: float,
    progress: Progress | None, batch: int = 8,
) -> dict[str, dict]:
    labels: dict[str, dict] = {}
    device = next(detector.parameters()).device
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        images = load_images([frames_dir / r["name"] for r in chunk]).to(device)
        for r, det in zip(chunk, detector.detect(images, conf=conf)):
            labels[r["name"]] = {
                "boxes": [[round(float(v), 2) for v in box] for box in det.boxes.cpu()],
                "scores": [round(float(s), 4) for s in det.scores.cpu()],
                "labels": [int(c) for c in det.labels.cpu()],
            }
        if progress:
            progress(min(start + batch, len(records)), len(records))
    return labels


def load_images(paths: list[Path]) -> torch.Tensor:
    """Read image files into a float (B, 3, H, W) tensor in [0, 1]."""
    arrays = []
    for p in paths:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VeilError(f"cannot decode image: {p}")
        arrays.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)


def load_frames(paths: list[Path]) -> torch.Tensor:
    """A dataset's frame files as uint8 (B, 3, H, W), the form splits are held in memory."""
    return load_images(paths).mul_(255).to(torch.uint8)


def clip_names(manifest: dict, names: list[str], length: int) -> list[list[str]]:
    """For each frame in ``names``: the ``length`` frames of its clip, itself last, at the dataset's
    fps. A clip never reaches back past the start of the frame's video within its split: there
    the first frame is repeated (the obfuscator contract's rule)."""
    runs: dict[str, tuple[list[str], int]] = {}  # name -> (its video's frames in its split, position)
    by_run: dict[tuple, list[str]] = {}
    for r in manifest.get("frames") or []:
        by_run.setdefault((r.get("clip", 0), r.get("split")), []).append(r["name"])
    for run in by_run.values():
        for i, name in enumerate(run):
            runs[name] = (run, i)
    out = []
    for name in names:
        run, i = runs.get(name, ([name], 0))  # a frame the manifest does not list stands alone
        out.append([run[j] for j in previous_indices(i, length)])
    return out


class FrameSource(Protocol):
    """What frame consumers read: a FrameDataset, or a view of some of its frames (``veil.audit.frames.FrameView``)."""

    targets: list[Target]

    def __len__(self) -> int: ...

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, list[Target]]: ...

    def clips(self, indices: list[int], length: int) -> tuple[torch.Tensor, list[Target]]: ...


class FrameDataset:
    """One split of a prepared dataset, held in memory as uint8 (frames are small)."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = require_dataset(root)
        self.manifest = read_json(self.root / "manifest.json")
        if self.manifest.get("format") != "veil-dataset":
            raise VeilError(f"not a Veil dataset manifest: {self.root / 'manifest.json'}")
        if split not in self.manifest["splits"]:
            raise VeilError(f"dataset has no split {split!r}")
        self.names: list[str] = self.manifest["splits"][split]
        labels = read_json(self.root / "labels.json")
        self.images = (load_frames([self.root / "frames" / n for n in self.names])
                       if self.names else torch.zeros(0, 3, 1, 1, dtype=torch.uint8))
        self.targets = [
            Target(torch.tensor(labels[n]["boxes"], dtype=torch.float32).reshape(-1, 4),
                   torch.tensor(labels[n]["labels"], dtype=torch.int64))
            for n in self.names
        ]

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.manifest["size"]
        return int(w), int(h)

    def __len__(self) -> int:
        return len(self.names)

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, list[Target]]:
        return self.images[indices].float().div_(255), [self.targets[i] for i in indices]

    def clip_indices(self, indices: list[int], length: int) -> list[list[int]]:
        """Positions of each frame's clip in this split (see :func:`clip_names`)."""
        position = {n: i for i, n in enumerate(self.names)}
        clips = clip_names(self.manifest, [self.names[i] for i in indices], length)
        return [[position[n] for n in clip] for clip in clips]

    def clips(self, indices: list[int], length: int) -> tuple[torch.Tensor, list[Target]]:
        """Float clips ``(B, length, 3, H, W)`` ending at ``indices``, and the targets of those last frames."""
        flat = [j for clip in self.clip_indices(indices, length) for j in clip]
        images = self.images[flat].float().div_(255)
        return images.view(len(indices), length, *images.shape[1:]), [self.targets[i] for i in indices]


def obfuscator_inputs(dataset: FrameSource, indices: list[int], length: int) -> tuple[torch.Tensor, list[Target]]:
    """What an obfuscator with clips of ``length`` takes for frames ``indices`` of ``dataset`` (a
    FrameDataset or any view with ``batch`` and ``clips``): the frames, or their clips."""
    return dataset.clips(indices, length) if length > 1 else dataset.batch(indices)

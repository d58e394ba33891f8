import json

import pytest
import torch

from veil.data.dataset import FrameDataset, prepare_dataset, split_ranges
from veil.errors import VeilError


def test_split_ranges_are_contiguous_and_cover_everything():
    r = split_ranges(60, (0.8, 0.1, 0.1))
    assert (r["train"], r["val"], r["test"]) == (range(0, 48), range(48, 54), range(54, 60))
    with pytest.raises(VeilError):
        split_ranges(10, (0.5, 0.5, 0.5))


def test_prepared_dataset_has_time_splits_labels_and_manifest(dataset, vtest_clip):
    manifest = json.loads((dataset / "manifest.json").read_text())
    labels = json.loads((dataset / "labels.json").read_text())
    assert manifest["format"] == "veil-dataset"
    assert manifest["source"]["sha256"][vtest_clip.name]
    assert manifest["detector"]["name"] == "yolo" and manifest["detector"]["pseudo_label_threshold"] == 0.25
    assert {k: len(v) for k, v in manifest["splits"].items()} == {"train": 90, "val": 15, "test": 45}
    times = {r["name"]: r["time"] for r in manifest["frames"]}
    train_end = max(times[n] for n in manifest["splits"]["train"])
    val = [times[n] for n in manifest["splits"]["val"]]
    test_start = min(times[n] for n in manifest["splits"]["test"])
    assert train_end < min(val) and max(val) < test_start  # no frame inside another split's range
    scores = [s for v in labels.values() for s in v["scores"]]
    assert len(scores) > 100 and min(scores) >= 0.25  # real pedestrians, at or above the threshold
    ds = FrameDataset(dataset, "test")
    assert ds.images.shape == (45, 3, 480, 640)


def test_existing_output_is_not_overwritten(dataset, yolo):
    with pytest.raises(VeilError, match="already exists"):
        prepare_dataset("unused", dataset, yolo)


def test_missing_source(tmp_path, yolo):
    with pytest.raises(VeilError, match="not found"):
        prepare_dataset(str(tmp_path / "missing.mp4"), tmp_path / "out", yolo)
    assert not (tmp_path / "out").exists()


def test_clips_hold_each_frame_and_its_predecessors_at_the_dataset_fps(dataset):
    train, val = FrameDataset(dataset, "train"), FrameDataset(dataset, "val")
    clips, targets = train.clips([0, 1, 7, 89], 3)
    assert clips.shape == (4, 3, 3, 480, 640) and clips.dtype == torch.float32
    expected = [[0, 0, 0], [0, 0, 1], [5, 6, 7], [87, 88, 89]]  # the split's first frame repeated before it
    for clip, positions in zip(clips, expected):
        assert torch.equal(clip, train.images[positions].float() / 255)
    assert [len(t.boxes) for t in targets] == [len(train.targets[i].boxes) for i in (0, 1, 7, 89)]
    # consecutive frames of the prepared dataset: 5 fps sampled from a 10 fps source
    index = {r["name"]: r["index"] for r in train.manifest["frames"]}
    assert [index[train.names[i]] for i in (5, 6, 7)] == [10, 12, 14]
    # a clip never reaches back into another split: val's first frame starts its own clips
    first_val = val.clips([0, 1], 2)[0]
    assert torch.equal(first_val[0, 0], first_val[0, 1]) and torch.equal(first_val[1, 0], first_val[0, 1])
    assert not torch.equal(first_val[0, 0], train.images[-1].float() / 255)

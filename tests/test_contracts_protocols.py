"""The identity-protocol contract (veil.audit.protocols), checked on every registered protocol.

Parametrised over ``PROTOCOLS.names()``, so a new protocol gets every check with no new test code:
built from the registry, the dataset splits it reads, identities labelled on a real prepared vtest
dataset (only frames of its splits, at least two identities each with attacker-train and
attacker-test crops, every test crop after its identity's training crops by at least the time gap
the protocol declares), the same labels twice, and a bad name -> VeilError.
"""

import numpy as np
import pytest

from veil.audit.config import PRESETS
from veil.audit.frames import AuditFrames
from veil.audit.labels import IdentityTask
from veil.audit.protocols import PROTOCOLS
from veil.errors import VeilError
from veil.io import read_json

CONFIG = PRESETS["smoke"]  # min_track 5: the test dataset's splits are short


@pytest.fixture(scope="module")
def frames(dataset):
    """Every frame of every split of the test dataset, as the audit holds them."""
    return AuditFrames.load(dataset, {s: None for s in ("train", "val", "test")})


@pytest.fixture(scope="module", params=PROTOCOLS.names())
def labelled(request, frames):
    protocol = PROTOCOLS.build(request.param)
    return request.param, protocol, protocol.identities(frames, CONFIG)


def test_reads_existing_splits(labelled, dataset):
    _, protocol, _ = labelled
    splits = protocol.splits(CONFIG)
    assert splits and set(splits) <= set(read_json(dataset / "manifest.json")["splits"])


def test_labels_only_frames_of_its_splits(labelled, frames):
    name, protocol, task = labelled
    assert isinstance(task, IdentityTask) and task.protocol == name
    allowed = np.concatenate([frames.positions[s] for s in protocol.splits(CONFIG)])
    assert np.isin(task.crops.frame, allowed).all()
    boxes = task.crops.box
    assert boxes.shape == (len(task.crops), 4)
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_every_identity_has_training_and_later_test_crops_past_the_gap(labelled):
    _, _, task = labelled
    crops = task.crops
    ids = np.unique(crops.identity)
    assert len(ids) >= 2 and set(np.unique(crops.split)) <= {"train", "val", "test"}
    gap = task.description["time_gap_s"]
    assert gap >= 0
    for pid in ids:
        mine = crops.identity == pid
        fit, test = mine & (crops.split != "test"), mine & (crops.split == "test")
        assert (crops.split[mine] == "train").any() and test.any(), f"identity {pid} lacks a split"
        assert crops.time[test].min() - crops.time[fit].max() >= gap - 1e-6, f"identity {pid} breaks the gap"
    assert task.description["identities"] == len(ids)
    assert task.description["test_crops"] == int((crops.split == "test").sum())


def test_labels_are_the_same_twice(labelled, frames):
    name, _, task = labelled
    again = PROTOCOLS.build(name).identities(frames, CONFIG)
    for field in ("frame", "box", "identity", "split", "time"):
        assert np.array_equal(getattr(task.crops, field), getattr(again.crops, field)), field


def test_an_unknown_protocol_is_a_veil_error():
    with pytest.raises(VeilError, match="unknown identity protocol 'nope'"):
        PROTOCOLS.build("nope")

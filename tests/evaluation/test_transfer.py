"""Utility that transfers, on real vtest frames: relative AP under every offline detector, the people
count, ByteTrack's tracks and CenterFace's faces, for the identity, a destroyed and a partial transform."""

import math

import pytest
import torch

from tests.frames import vtest_frames
from veil.detectors import DETECTORS, Detections
from veil.evaluation.faces import face_leak
from veil.evaluation.tracking import track_agreement, tracking_agreement
from veil.evaluation.transfer import count_error, detector_ap, relative_ap_by_detector

FPS = 5.0


@pytest.fixture(scope="module")
def clip(vtest):
    """1.2 seconds of vtest at 5 fps (every other frame of its 10 fps), 640x480."""
    return vtest_frames(vtest, list(range(0, 12, 2)))


@pytest.fixture(scope="module")
def detectors(yolo):
    return {"yolo": yolo, "hog": DETECTORS.build("hog")}


def grey(frames: torch.Tensor) -> torch.Tensor:
    """Every frame flat mid-grey: nothing left to find (YOLO still sees one 0.26 ghost on a 640x480 one)."""
    return torch.full_like(frames, 0.5)


def test_identity_keeps_every_detectors_ap_and_grey_frames_lose_it(clip, detectors):
    frames = clip[::2]  # 3 frames: HOG takes about a second a frame
    same = relative_ap_by_detector(frames, frames.clone(), detectors)
    gone = relative_ap_by_detector(frames, grey(frames), detectors)
    assert set(same) == set(gone) == {"yolo", "hog"}
    assert all(v == pytest.approx(1.0) for v in same.values()), same
    assert all(v < 0.05 for v in gone.values()), gone


def test_a_partial_transform_lands_between(clip, yolo):
    frames = clip[:3]
    # the left half of every frame grey: the people there are gone, the others stay
    half = frames.clone()
    half[..., :320] = 0.5
    ap = detector_ap(frames, half, yolo)
    assert ap["pseudo_labels"] >= 12 and ap["ap_original"] > 0.9 and ap["threshold"] == yolo.pseudo_label_threshold
    assert 0.1 < ap["relative_ap"] < 0.9, ap
    counts = count_error(frames, half, yolo)
    assert counts["mean_error"] < -1 and counts["mae"] == pytest.approx(-counts["mean_error"])
    assert 0.1 < counts["relative_error"] < 0.9


def test_people_counts_are_exact_on_identity_and_lost_on_grey(clip, yolo):
    frames = clip[:4]
    same = count_error(frames, frames.clone(), yolo)
    assert same["mae"] == 0 and same["relative_error"] == 0 and same["original"] == same["transformed"]
    assert min(same["original"]) >= 3 and same["frames"] == len(frames)
    gone = count_error(frames, grey(frames), yolo)
    assert max(gone["transformed"]) <= 1 and gone["relative_error"] > 0.75 and gone["mean_error"] < -3
    assert gone["mae"] == pytest.approx(sum(abs(a - b) for a, b in zip(same["original"], gone["transformed"])) / 4)


def test_tracking_agrees_fully_on_identity_and_not_on_grey(clip, yolo):
    same = tracking_agreement(clip, clip.clone(), yolo, FPS)
    assert same["reference_tracks"] >= 3 and same["reference_boxes"] >= 25 and same["frames"] == len(clip)
    assert same["idf1"] == same["hota"] == same["mota"] == pytest.approx(1.0) and same["id_switches"] == 0
    gone = tracking_agreement(clip, grey(clip), yolo, FPS)
    assert gone["idf1"] < 0.1 and gone["hota"] < 0.1 and gone["mota"] <= 0
    with pytest.raises(ValueError, match="fps"):
        tracking_agreement(clip, clip, yolo, 0)


def test_tracks_that_lose_every_other_frame_agree_in_part(clip, yolo):
    found = yolo.detect(clip, conf=yolo.pseudo_label_threshold)
    nobody = Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    blinking = [d if i % 2 == 0 else nobody for i, d in enumerate(found)]
    partly = track_agreement(found, blinking, FPS)
    # half the reference boxes are found, with their identities: IDR ~ 1/2, IDP ~ 1, IDF1 ~ 2/3
    assert 0.35 < partly["idr"] < 0.65 and partly["idp"] > 0.9 and 0.5 < partly["idf1"] < 0.8, partly
    assert track_agreement(found, found, FPS)["idf1"] == pytest.approx(1.0)


def test_face_leak_counts_the_faces_found_again(clip):
    frames = clip[:2]
    same = face_leak(frames, frames.clone())
    assert same["faces_original"] >= 4 and same["fraction_found_again"] == 1.0
    assert same["faces_transformed"] == same["faces_original"] == same["found_again"]
    gone = face_leak(frames, grey(frames))
    assert gone["faces_transformed"] == gone["found_again"] == 0 and gone["fraction_found_again"] == 0.0
    assert math.isnan(face_leak(grey(frames[:1]), grey(frames[:1]))["fraction_found_again"])  # no face to leak


def test_frames_of_different_shapes_are_refused(clip, yolo):
    with pytest.raises(ValueError, match="one shape"):
        count_error(clip, clip[:2], yolo)
    with pytest.raises(ValueError, match="one shape"):
        face_leak(clip[:1], clip[:1, :, :100])

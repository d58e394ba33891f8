"""The baseline contract (veil.obfuscators.baselines), checked on every registered baseline.

Parametrised over ``BASELINES.names()``, so a new baseline gets every check with no new test code,
on real vtest frames: built from the registry at its paper strength, shape/dtype/range, a no-op
strength that really is one, a sweep from weak to strong that removes ever more of the frame,
determinism (and the seed, where it takes one), batch independence, the detector path of
detect-then-anonymise baselines (the real YOLO), and a bad argument -> VeilError.
"""

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from tests.frames import vtest_frames
from veil.errors import VeilError
from veil.obfuscators.baselines import BASELINES, Baseline

names = pytest.mark.parametrize("name", BASELINES.names())


@pytest.fixture(scope="module")
def frames(vtest):
    return vtest_frames(vtest, [0, 60])


@pytest.fixture(scope="module")
def boxes(frames, yolo):
    """YOLO's person boxes at its pseudo-label threshold, as the audit passes them."""
    return [d.boxes for d in yolo.detect(frames, conf=yolo.pseudo_label_threshold)]


def build(name: str, yolo=None, **kwargs) -> Baseline:
    """The baseline with ``kwargs``; a detect-then-anonymise one gets the real YOLO when given."""
    if yolo is not None and BASELINES.build(name).needs_detector:
        kwargs.setdefault("detector", yolo)
    return BASELINES.build(name, **kwargs)


def eight_bit(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round().byte()


@names
def test_builds_at_paper_strength_and_describes_itself(name):
    baseline = build(name)
    assert isinstance(baseline, Baseline) and baseline.name == name
    assert baseline.strength == pytest.approx(baseline.paper_strength) and baseline.stronger in ("higher", "lower")
    assert baseline.describe()["name"] == name and baseline.describe()["strength"] == baseline.strength
    weaker = baseline.with_strength(baseline.sweep[0])
    assert type(weaker) is type(baseline) and weaker.strength == baseline.sweep[0]
    assert baseline.strength == pytest.approx(baseline.paper_strength)  # with_strength copies
    assert baseline.snap(baseline.none_strength) == baseline.none_strength


@names
def test_output_keeps_shape_dtype_and_range_and_changes_the_frames(name, frames, boxes):
    out = build(name)(frames, boxes)
    assert out.shape == frames.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(eight_bit(out), eight_bit(frames))


@names
def test_the_no_op_strength_returns_8bit_frames_unchanged(name, frames, boxes):
    baseline = build(name)
    assert torch.equal(eight_bit(baseline.with_strength(baseline.none_strength)(frames, boxes)), eight_bit(frames))


@names
def test_the_sweep_runs_from_weak_to_strong(name, frames, boxes):
    baseline = build(name)
    sweep = list(baseline.sweep)
    assert len(sweep) >= 3 and sweep == sorted(sweep, reverse=baseline.stronger == "lower")
    scores = [float(ssim(baseline.with_strength(s)(frames, boxes), frames, data_range=1.0)) for s in sweep]
    assert all(a > b for a, b in zip(scores, scores[1:])), f"SSIM does not fall with strength: {scores}"


@names
def test_deterministic_and_independent_of_the_batch(name, frames, boxes):
    a, b = build(name), build(name)
    together = a(frames, boxes)
    assert torch.equal(together, b(frames, boxes))
    alone = torch.cat([a(frames[i : i + 1], boxes[i : i + 1]) for i in range(len(frames))])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)
    if hasattr(a, "seed"):  # a random baseline: the seed chooses its randomness
        assert torch.equal(build(name, seed=7)(frames, boxes), build(name, seed=7)(frames, boxes))
        assert not torch.equal(build(name, seed=7)(frames, boxes), together)


@names
def test_a_detect_then_anonymise_baseline_finds_the_boxes_itself(name, frames, boxes, yolo):
    baseline = build(name, yolo)
    if not baseline.needs_detector:
        pytest.skip("a whole-frame baseline needs no detector")
    torch.testing.assert_close(baseline(frames), baseline(frames, boxes), atol=0, rtol=0)


@names
def test_a_bad_argument_is_a_veil_error(name):
    with pytest.raises(VeilError, match=f"baseline '{name}'.*no_such_argument"):
        BASELINES.build(name, no_such_argument=1)


def test_an_unknown_baseline_is_a_veil_error():
    with pytest.raises(VeilError, match="unknown baseline 'nope'"):
        BASELINES.build("nope")


def test_a_baseline_spec_fixes_its_strength_snapped_to_what_it_can_realise():
    from veil.audit.config import AuditConfig
    from veil.audit.measure import baselines_of
    from veil.errors import VeilError
    from veil.obfuscators.baselines import BASELINES, build_spec

    assert build_spec("grey_downsample@2").strength == 2.0
    assert build_spec("gaussian_blur@8").strength == 9.0  # kernels are odd
    assert build_spec("grey_downsample").strength == BASELINES.build("grey_downsample").strength
    got = baselines_of(AuditConfig(baselines=("grey_downsample@2", "grey_downsample")), None)
    assert list(got) == ["grey_downsample@2", "grey_downsample"]  # both audited, under their own names
    with pytest.raises(VeilError, match="cannot keep a fixed"):
        baselines_of(AuditConfig(baselines=("grey_downsample@2",)), None, sweep=True)
    for bad in ("nope@2", "grey_downsample@", "grey_downsample@-1", "grey_downsample@nan"):
        with pytest.raises(VeilError):
            build_spec(bad)

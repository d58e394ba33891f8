"""``tracking``: short-term tracking, the audit's first protocol.

ByteTrack pseudo-identities on one split (default: test); each identity's earliest 60% of
crops are attacker-train, the rest attacker-test, with no gap: the last train crop and the
first test crop can be one frame (0.2 s at 5 fps) apart. This measures whether a person can
be followed from frame to frame, an easier task than re-identification.
"""

from __future__ import annotations

from veil.audit.config import AuditConfig
from veil.audit.frames import AuditFrames
from veil.audit.labels import IdentityTask
from veil.audit.protocols.registry import PROTOCOLS
from veil.data.identities import build_identities


@PROTOCOLS.register("tracking")
class Tracking:
    def splits(self, config: AuditConfig) -> tuple[str, ...]:
        return (config.tracking_split,)

    def identities(self, frames: AuditFrames, config: AuditConfig) -> IdentityTask:
        view, positions = frames.split(*self.splits(config))
        crops = build_identities(view, min_track=config.min_track, train_fraction=config.train_fraction,
                                 what=f"the tracking protocol on the {config.tracking_split} split")
        return IdentityTask.of("tracking", crops, positions, config, splits=list(self.splits(config)),
                               time_gap_s=0.0)

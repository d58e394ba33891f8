"""``reid``: re-identification across a time gap.

ByteTrack pseudo-identities over the splits the obfuscator never trained on (default val +
test, which are contiguous in time, so a person crossing from one into the other keeps one
identity). Per identity, the earliest 60% of crops are attacker-train and only crops at least
``time_gap`` seconds (default 1 s) after the last of them are attacker-test; crops within the
gap are not used. An attacker must recognise the person again, not match the next frame.
"""

from __future__ import annotations

from veil.audit.config import AuditConfig
from veil.audit.frames import AuditFrames
from veil.audit.labels import IdentityTask
from veil.audit.protocols.registry import PROTOCOLS
from veil.data.identities import build_identities


@PROTOCOLS.register("reid")
class Reid:
    def splits(self, config: AuditConfig) -> tuple[str, ...]:
        return tuple(config.reid_splits)

    def identities(self, frames: AuditFrames, config: AuditConfig) -> IdentityTask:
        view, positions = frames.split(*self.splits(config))
        crops = build_identities(view, min_track=config.min_track, train_fraction=config.train_fraction,
                                 gap=config.time_gap,
                                 what=f"the reid protocol on the {'+'.join(config.reid_splits)} split(s)")
        return IdentityTask.of("reid", crops, positions, config, splits=list(self.splits(config)),
                               time_gap_s=config.time_gap)

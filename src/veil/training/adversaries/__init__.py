"""Training adversaries. Importing this package registers every built-in one.

Each adversary owns its networks, optimizers, update step, the term it adds to L_O, its
checkpoint tensors and state, and its log columns; the trainer knows none of them by name.
"""

from veil.training.adversaries import budget, rate, reconstruction  # noqa: F401  (registers)
from veil.training.adversaries.base import AdversaryContext, Batch, TrainingAdversary
from veil.training.adversaries.registry import TRAINING_ADVERSARIES

__all__ = ["TRAINING_ADVERSARIES", "AdversaryContext", "Batch", "TrainingAdversary"]

"""wu-2018's budget adversary: an ensemble of M identity classifiers, restarted from scratch.

Sensitive labels without hand labelling: ByteTrack tracks over the TRAIN split are the
pseudo-identities (``veil.data.identities``; or a user CSV). Each track's earliest crops
train the budget models, its latest crops are held back to measure them.

* Crops are cut from O(X) at the identity boxes with ``torchvision.ops.roi_align``, which is
  differentiable, so O's term reaches O. Boxes follow the trainer's random crop and flip.
* Each budget model f_b^i minimises cross-entropy on obfuscated crops (O fixed).
* O's term is max_i mean_crops sum_c p_ic log p_ic: the negative entropy of the most
  confident model (wu-2018 eq. 3); minimising it makes every model uncertain.
* Restarting (wu-2018 3.3): every ``restart_every`` steps (round robin over the ensemble), or
  when a model's cross-entropy has stopped falling over ``plateau_steps`` steps, that model
  is re-initialised from random weights and trained with O frozen until its held-back
  accuracy passes ``accuracy_threshold`` or stops rising; adversarial updates then resume.
  Every model gets this frozen-O training once at the start (wu-2018 4.1.2), after an optional
  warm-up in which O learns to feed the detector alone: budget models fitted to a random
  O's near-constant output start weak and stay weak.

The package splits it by job: ``models`` (the budget architectures), ``options``, ``labels`` (the
pseudo-identities), ``loss`` (eq. 3 and the differentiable crops) and ``adversary`` (the ensemble,
its updates, restarts and checkpoints; importing it registers ``budget``).
"""

from veil.training.adversaries.budget.adversary import BudgetAdversary
from veil.training.adversaries.budget.labels import IdentityLabels, identity_labels
from veil.training.adversaries.budget.loss import cut, ensemble_budget_loss, negative_entropy
from veil.training.adversaries.budget.models import ARCHITECTURES, ColourStripes
from veil.training.adversaries.budget.options import BudgetOptions

__all__ = ["ARCHITECTURES", "BudgetAdversary", "BudgetOptions", "ColourStripes", "IdentityLabels", "cut",
           "ensemble_budget_loss", "identity_labels", "negative_entropy"]

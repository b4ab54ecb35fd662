"""The loss tricks, pure torch: label pooling, companion weights, OHEM, Lovász, center loss,
class-balanced cross-entropy.

Nothing here knows of configs except `objective`, which builds the total loss from a LossSpec.
"""

from ablate.losses.aux import aux_weight_at, cpp_kl, cross_entropy, head_loss
from ablate.losses.balance import median_frequency_weights, weighted_cross_entropy
from ablate.losses.center import CenterLoss, center_weight_at
from ablate.losses.lovasz import lovasz_softmax
from ablate.losses.ohem import OhemCrossEntropy
from ablate.losses.pooling import cpp_pool, nearest_pool

__all__ = [
    "CenterLoss",
    "OhemCrossEntropy",
    "aux_weight_at",
    "center_weight_at",
    "cpp_kl",
    "cpp_pool",
    "cross_entropy",
    "head_loss",
    "lovasz_softmax",
    "median_frequency_weights",
    "nearest_pool",
    "weighted_cross_entropy",
]

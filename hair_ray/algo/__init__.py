"""Pure maths of HAIR / GRPO-S: advantages, losses, hardness weights, the sub-sentence splitter.

Tensors in, tensors out: no Ray, no I/O, no config objects.
"""

from hair_ray.algo.grpo import (
    GroupAdvantages,
    LossOutput,
    aggregate_loss,
    clipped_policy_objective,
    entropy_from_logits,
    group_advantages,
    grpo_loss,
    kl_estimate,
    masked_mean,
    masked_sum,
    token_logprobs,
)
from hair_ray.algo.hardness import (
    DataHardness,
    GRPOSAdvantages,
    ModelResponsiveness,
    combine_alphas,
    data_hardness,
    grpo_s_advantages,
    model_responsiveness,
    piece_similarity,
)
from hair_ray.algo.split import split_sub_sentences

__all__ = [
    "DataHardness",
    "GRPOSAdvantages",
    "GroupAdvantages",
    "LossOutput",
    "ModelResponsiveness",
    "aggregate_loss",
    "clipped_policy_objective",
    "combine_alphas",
    "data_hardness",
    "entropy_from_logits",
    "group_advantages",
    "grpo_loss",
    "grpo_s_advantages",
    "kl_estimate",
    "masked_mean",
    "masked_sum",
    "model_responsiveness",
    "piece_similarity",
    "split_sub_sentences",
    "token_logprobs",
]

"""`RepulsionLoss`: the reference StyleGAN2 loss plus the repulsion term of the unlearning stage.

The term is the method core's `stylegan_unlearn.method.penalties.RepulsionPenalty`: it pushes the
generator away from K ≥ 1 adapted ("negative") networks θ_N^1..θ_N^K with
  * ``il2`` = w / d,  ``nl2`` = −w·d,  ``el2`` = w·exp(−α·d)   (`stylegan_unlearn.method.repulsion`)
  * d over the selected parameters, averaged over the K networks: ``relative`` (the paper's
    Σ(θ − θ_N)² in units of its value at the start, the default), ``l2``, ``tensor-mean`` or
    ``official`` (exactly the official code's d), or ``task`` (the squared progress along θ_G − μ, which
    ignores drift across that direction; not in the paper) — see `stylegan_unlearn.method.params`.
The adapted networks' **G_ema** weights are used (as the official code reads `g_ema`), loaded once
and never read from disk again. The term is added to the generator's main phase (Gmain/Gboth),
scaled by `gain`, and reported as `Loss/G/repulsion` with the distance as `Loss/G/distance`. With
`start_from` (the patch blocks pass the `--resume` pkl) G first takes that pkl's G_ema, where the
method starts unlearning (`stylegan_unlearn.method.anchors`).

Defaults (the option table `stylegan_unlearn.method.options`): NL2 on the ``relative`` distance with
w = 0.1 (measured on MNIST; EL2 defaults to w = 10, α = 0.1 there), all generator parameters repelled (``params='all'``) as in the
official code; with ``distance='official'`` the default weights are the official code's
(`stylegan_unlearn.method.repulsion.default_weight`).
"""
from stylegan_unlearn.method import repulsion as repulsion_forms
from stylegan_unlearn.method.anchors import start_at_g_ema
from stylegan_unlearn.method.negative_fakes import negative_fakes_or_none
from stylegan_unlearn.method.params import unwrap
from stylegan_unlearn.method.penalties import DEFAULT_DISTANCE, DEFAULT_REPULSION_PARAMS, RepulsionPenalty
from training_hooks.loss import StyleGAN2Loss

__all__ = ["RepulsionLoss"]


class RepulsionLoss(StyleGAN2Loss):
    """StyleGAN2Loss (ADA signature) + repulsion from the `adapted` networks.

    Extra keyword arguments (all JSON-serialisable): `adapted` (list of pkl paths, K ≥ 1),
    `repulsion` ('il2' | 'nl2' | 'el2', default 'nl2'), `repulsion_weight` (w; default per form and
    distance), `alpha` (EL2; default per distance), `distance` ('relative' | 'task' | 'l2' |
    'tensor-mean' | 'official', default 'relative'), `params` ('synthesis' | 'free' | 'all', default 'all'), `start_from` (a pkl
    whose G_ema G starts at; None keeps G as handed over), `negatives` (a dataset zip or folder of negative
    images that D also learns to call fake; None: D sees only positives and G's samples) and
    `negative_weight` (that term's weight, default 1).
    """

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, adapted=(),
                 repulsion=repulsion_forms.DEFAULT_FORM, repulsion_weight=None, alpha=None,
                 distance=DEFAULT_DISTANCE, params=DEFAULT_REPULSION_PARAMS, start_from=None, negatives=None,
                 negative_weight=None, **loss_kwargs):
        super().__init__(device, G_mapping, G_synthesis, D, augment_pipe=augment_pipe, **loss_kwargs)
        self.negative_fakes = negative_fakes_or_none(negatives, device, unwrap(G_synthesis), negative_weight)
        if start_from is not None:
            start_at_g_ema((G_mapping, G_synthesis), start_from)
        self.generator_penalty = RepulsionPenalty(
            (G_mapping, G_synthesis), device, adapted=adapted, repulsion=repulsion,
            repulsion_weight=repulsion_weight, alpha=alpha, distance=distance, params=params)

"""Adversarial losses computed stably from discriminator logits.

With ``D(x) = sigmoid(C(x))`` and ``C`` the discriminator's raw logits,
``-log D(x) = softplus(-C(x))`` and ``-log(1 - D(x)) = softplus(C(x))``, which
never overflow or take ``log(0)``. Logits may have any shape, e.g. the
``(B, 1, h, w)`` map of a patch discriminator; every expectation is the mean
over all its elements.

Kinds:

- ``"vanilla"`` (the seed's, SRGAN): ``L_D = -E[log D(real)] - E[log(1 - D(fake))]``
  and the non-saturating ``L_adv = -E[log D(fake)]``.
- ``"relativistic"`` (RaGAN as in ESRGAN, Wang et al. 2018), with
  ``D_Ra(a, b) = sigmoid(C(a) - E[C(b)])``:
  ``L_D = -E[log D_Ra(real, fake)] - E[log(1 - D_Ra(fake, real))]`` and
  ``L_adv = -E[log(1 - D_Ra(real, fake))] - E[log D_Ra(fake, real)]`` (the paper's
  sums; BasicSR halves both).
- ``"hinge"`` (Miyato et al. 2018): ``L_D = E[relu(1 - C(real))] + E[relu(1 + C(fake))]``
  and ``L_adv = -E[C(fake)]``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from srrestore.errors import ConfigError, check_choice

__all__ = ["ADVERSARIAL_KINDS", "AdversarialLoss"]

ADVERSARIAL_KINDS = ("vanilla", "relativistic", "hinge")


class AdversarialLoss:
    """Discriminator and generator losses of one GAN formulation (see the module docstring).

    Args:
        kind: one of :data:`ADVERSARIAL_KINDS` (case-insensitive).

    Raises:
        ConfigError: unknown ``kind`` (with a "did you mean" hint).
    """

    def __init__(self, kind: str = "vanilla") -> None:
        self.kind = check_choice("adversarial loss", kind, ADVERSARIAL_KINDS)

    def __repr__(self) -> str:
        return f"AdversarialLoss(kind={self.kind!r})"

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Scalar ``L_D``; minimised by the discriminator.

        Args:
            real_logits: ``C(hr)``, e.g. ``(B, 1, h, w)``.
            fake_logits: ``C(G(lr))`` (detach ``G(lr)`` so no gradient reaches G).
        """
        if self.kind == "vanilla":
            return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        if self.kind == "relativistic":
            return (
                F.softplus(-(real_logits - fake_logits.mean())).mean()
                + F.softplus(fake_logits - real_logits.mean()).mean()
            )
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar ``L_adv``; minimised by the generator.

        Args:
            fake_logits: ``C(G(lr))``, e.g. ``(B, 1, h, w)``, with gradient to G.
            real_logits: ``C(hr)``; needed by ``"relativistic"`` only, treated as
                a constant (detached), as in ESRGAN.

        Raises:
            ConfigError: ``"relativistic"`` without ``real_logits``.
        """
        if self.kind == "vanilla":
            return F.softplus(-fake_logits).mean()
        if self.kind == "hinge":
            return -fake_logits.mean()
        if real_logits is None:
            raise ConfigError("relativistic adversarial loss needs real_logits, got None")
        real_logits = real_logits.detach()
        return (
            F.softplus(real_logits - fake_logits.mean()).mean()
            + F.softplus(-(fake_logits - real_logits.mean())).mean()
        )

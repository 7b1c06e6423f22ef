"""Learning from the same host: the stack's residuals on labelled sister hops correct the others.

A Gaussian process on the stack's residuals whose kernel is host identity times a squared
exponential over the standardised hop descriptors: hops of different hosts (compounds) are
uncorrelated, so a hop with no labelled sister gets exactly no correction and keeps its σ; a hop
whose host has labelled hops gets the GP's posterior mean of its residual, shrunk toward zero by
the ratio of the host-level variance to the hop-level noise (few or dissimilar sisters: little
correction), and its σ shrinks by the share of residual variance the sisters explain.

The residual store holds labelled hops' *out-of-sample* residuals: the grouped out-of-fold stack
predictions of the training hops (written at training) and, in a campaign, the current model's
recorded prediction of a hop before its label arrived. In-sample residuals would be near zero
(the trees memorise their training labels) and would teach nothing.

Residuals live in log space (``log E_m − log μ``, barriers clipped at :data:`LOG_FLOOR_EV`) or in
eV, as the card says; the corrected mean is ``μ·exp(c)`` or ``μ + c``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alem.hops.hop import Hop
from alem.model_dir import SISTER_RESIDUALS_FILENAME, ModelError, SisterCorrectionSection

#: Barriers below this are clipped before logs are taken (a 0.02 eV barrier is already "free").
LOG_FLOOR_EV = 0.02


def host_of(hop: Hop) -> str:
    """A hop's host identity for the correction: its compound group (itself without one)."""
    return hop.group or hop.hop_id


@dataclass(frozen=True)
class SisterParams:
    """The correction's hyper-parameters (chosen on inner folds of the sister-aware protocol).

    Attributes:
        space: ``"log"`` (multiplicative correction) or ``"ev"`` (additive).
        length_scale: of the squared exponential over standardised descriptors, per unit of
            ``sqrt(n_descriptors)`` (None: every sister counts the same).
        variance_ratio: host-level residual variance over hop-level noise variance (0: no correction).
        narrow_sigma: whether σ narrows by the share of residual variance the sisters explain (the
            GP's own answer) or keeps the stack's (after a retraining the stack has already learnt
            part of what the sisters' residuals say, and the GP's answer can be over-confident).
        sigma_factor: σ of a hop with labelled sisters is multiplied by it (after any narrowing):
            the stack's σ factor is fitted on hops of unseen compounds, and a hop whose compound the
            trees were fitted on gets a σ too narrow for its error (coverage fitted on inner folds
            of the sister-aware protocol; 1: the stack's σ as it is).
    """

    space: str = "log"
    length_scale: float | None = 1.0
    variance_ratio: float = 0.0
    narrow_sigma: bool = True
    sigma_factor: float = 1.0

    def as_dict(self) -> dict:
        return {"space": self.space, "length_scale": self.length_scale, "variance_ratio": self.variance_ratio,
                "narrow_sigma": self.narrow_sigma, "sigma_factor": self.sigma_factor}


@dataclass
class ResidualStore:
    """Labelled hops' out-of-sample residuals, with what the kernel reads of each.

    Attributes:
        hop_ids: the labelled hops.
        hosts: host identity per hop (the hop's compound group).
        descriptors: ``n x d`` standardised descriptors.
        residuals: residual per hop in the correction's space.
    """

    hop_ids: list[str]
    hosts: np.ndarray
    descriptors: np.ndarray
    residuals: np.ndarray

    @classmethod
    def empty(cls, n_descriptors: int) -> ResidualStore:
        return cls([], np.zeros(0, dtype=object), np.zeros((0, n_descriptors)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.hop_ids)

    def extended(self, hop_ids: Sequence[str], hosts: Sequence[str], descriptors: np.ndarray, residuals: np.ndarray) -> ResidualStore:
        """This store plus more labelled hops; a hop already here takes its new residual."""
        keep = np.array([h not in set(hop_ids) for h in self.hop_ids], dtype=bool)
        return ResidualStore(
            [h for h, k in zip(self.hop_ids, keep, strict=True) if k] + list(hop_ids),
            np.concatenate([self.hosts[keep], np.asarray(hosts, dtype=object)]),
            np.vstack([self.descriptors[keep], np.asarray(descriptors, dtype=float).reshape(len(hop_ids), -1)]),
            np.concatenate([self.residuals[keep], np.asarray(residuals, dtype=float)]),
        )


def residual_of(y_ev: np.ndarray, mean_ev: np.ndarray, space: str) -> np.ndarray:
    """The stack's residual of labelled hops in the correction's space."""
    y_ev, mean_ev = np.asarray(y_ev, dtype=float), np.asarray(mean_ev, dtype=float)
    if space == "log":
        return np.log(np.maximum(y_ev, LOG_FLOOR_EV)) - np.log(np.maximum(mean_ev, LOG_FLOOR_EV))
    return y_ev - mean_ev


@dataclass
class SisterCorrection:
    """Per hop: the stack's mean and σ corrected by the labelled sisters (or left as they are)."""

    mean_ev: np.ndarray
    sigma_ev: np.ndarray
    #: Correction in the residual space (0 where no sister is labelled).
    shift: np.ndarray
    #: Labelled sisters that informed each hop (other hops of the same host in the residual store).
    n_sisters: np.ndarray


def correct(
    params: SisterParams,
    store: ResidualStore,
    hop_ids: Sequence[str],
    hosts: Sequence[str],
    descriptors: np.ndarray,
    mean_ev: np.ndarray,
    sigma_ev: np.ndarray,
) -> SisterCorrection:
    """The GP posterior of each hop's residual given its labelled sisters (a hop never reads its
    own residual: a labelled hop is predicted from its sisters only, as in leave-one-out).

    Args:
        params: the correction's hyper-parameters.
        store: the labelled hops' residuals.
        hop_ids, hosts: the hops to correct and their hosts.
        descriptors: their standardised descriptors, ``n x d``.
        mean_ev, sigma_ev: the stack's calibrated prediction of them.
    """
    mean_ev, sigma_ev = np.asarray(mean_ev, dtype=float).copy(), np.asarray(sigma_ev, dtype=float).copy()
    shift = np.zeros(len(mean_ev))
    n_sisters = np.zeros(len(mean_ev), dtype=int)
    ratio = float(params.variance_ratio)
    if ratio <= 0 or not len(store):
        return SisterCorrection(mean_ev, sigma_ev, shift, n_sisters)
    descriptors = np.asarray(descriptors, dtype=float)
    by_host: dict[str, np.ndarray] = {}
    for host in set(store.hosts.tolist()):
        by_host[host] = np.flatnonzero(store.hosts == host)
    for i, (hop_id, host) in enumerate(zip(hop_ids, hosts, strict=True)):
        sisters = by_host.get(host)
        if sisters is None:
            continue
        sisters = np.array([s for s in sisters if store.hop_ids[s] != hop_id], dtype=int)
        if not len(sisters):
            continue
        k_star = _kernel(params, descriptors[i : i + 1], store.descriptors[sisters])[0]
        gram = _kernel(params, store.descriptors[sisters], store.descriptors[sisters])
        solve = np.linalg.solve(ratio * gram + np.eye(len(sisters)), np.column_stack([store.residuals[sisters], k_star]))
        shift[i] = ratio * k_star @ solve[:, 0]
        explained = ratio * k_star @ solve[:, 1]  # share of the host-level variance the sisters explain
        # residual variance (host part + hop noise), before and after: σ scales with its square root
        if params.narrow_sigma:
            sigma_ev[i] *= np.sqrt((ratio * (1.0 - explained) + 1.0) / (ratio + 1.0))
        sigma_ev[i] *= params.sigma_factor
        n_sisters[i] = len(sisters)
    if params.space == "log":
        corrected = mean_ev * np.exp(shift)
        sigma_ev *= np.exp(shift)  # a multiplicative correction scales the spread with the mean
    else:
        corrected = np.clip(mean_ev + shift, 0.0, None)
    return SisterCorrection(corrected, sigma_ev, shift, n_sisters)


def _kernel(params: SisterParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if params.length_scale is None:
        return np.ones((len(a), len(b)))
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / a.shape[1]
    return np.exp(-0.5 * squared / params.length_scale**2)


@dataclass
class SisterModel:
    """The correction as a model directory holds it: hyper-parameters, how descriptors are
    standardised, and the residual store of the hops the model was trained on."""

    params: SisterParams
    descriptor_mean: np.ndarray
    descriptor_std: np.ndarray
    store: ResidualStore

    @classmethod
    def load(cls, model_dir: Path, section: SisterCorrectionSection) -> SisterModel:
        file = model_dir / SISTER_RESIDUALS_FILENAME
        if not file.is_file():
            raise ModelError(f"{model_dir}: the card has a sister_correction but there is no {SISTER_RESIDUALS_FILENAME}")
        data = np.load(file, allow_pickle=False)
        store = ResidualStore([str(h) for h in data["hop_id"]], data["host"].astype(object), data["descriptors"], data["residual"])
        params = SisterParams(section.space, section.length_scale, section.variance_ratio, section.narrow_sigma, section.sigma_factor)
        return cls(params, np.asarray(section.descriptor_mean), np.asarray(section.descriptor_std), store)

    def save(self, model_dir: Path) -> None:
        np.savez(
            model_dir / SISTER_RESIDUALS_FILENAME,
            hop_id=np.array(self.store.hop_ids, dtype=str), host=np.array(self.store.hosts.tolist(), dtype=str),
            descriptors=self.store.descriptors, residual=self.store.residuals,
        )

    def standardise(self, descriptors: np.ndarray) -> np.ndarray:
        return (np.asarray(descriptors, dtype=float) - self.descriptor_mean) / self.descriptor_std

    def with_labels(self, hop_ids: Sequence[str], hosts: Sequence[str], descriptors: np.ndarray,
                    barrier_ev: np.ndarray, stack_mean_ev: np.ndarray) -> SisterModel:
        """The model with more labelled hops in its store: their residuals against ``stack_mean_ev``,
        the stack's prediction of them before it saw them (``descriptors`` raw, as the trees read them)."""
        residuals = residual_of(barrier_ev, stack_mean_ev, self.params.space)
        store = self.store.extended(hop_ids, hosts, self.standardise(descriptors), residuals)
        return SisterModel(self.params, self.descriptor_mean, self.descriptor_std, store)

    def apply(self, hop_ids: Sequence[str], hosts: Sequence[str], descriptors: np.ndarray,
              mean_ev: np.ndarray, sigma_ev: np.ndarray) -> SisterCorrection:
        """The correction of hops that are not themselves labelled (a labelled hop's prediction is
        the stack's: its own label is known, and the trees were fitted on the training hops)."""
        labelled = set(self.store.hop_ids)
        unlabelled = np.array([h not in labelled for h in hop_ids], dtype=bool)
        result = SisterCorrection(np.asarray(mean_ev, dtype=float).copy(), np.asarray(sigma_ev, dtype=float).copy(),
                                  np.zeros(len(hop_ids)), np.zeros(len(hop_ids), dtype=int))
        if not unlabelled.any():
            return result
        index = np.flatnonzero(unlabelled)
        part = correct(self.params, self.store, [hop_ids[int(i)] for i in index], [hosts[int(i)] for i in index],
                       self.standardise(descriptors[index]), result.mean_ev[index], result.sigma_ev[index])
        result.mean_ev[index], result.sigma_ev[index] = part.mean_ev, part.sigma_ev
        result.shift[index], result.n_sisters[index] = part.shift, part.n_sisters
        return result

"""Samplers against known strengths: how many battles until the ranking is right.

Outcomes are drawn from Bradley-Terry probabilities (optionally with a fixed
tie rate), so the true ranking is known and a sampler's cost to recover it can
be measured; this is what the sampling benchmark compares.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from arenastack_arena.evaluation.sampling import (
    ADAPTIVE,
    PRIOR,
    Sampler,
    Tally,
    fit_strengths,
    make_sampler,
)
from arenastack_arena.evaluation.scales import MODEL_A, MODEL_B, TIE
from arenastack_arena.ratings.bt import single_threaded_blas

DEFAULT_BUDGET = 1000
DEFAULT_ACCURACY = 0.9
# Checking the ranking after every battle costs a fit each; every few is as telling.
DEFAULT_CHECK_EVERY = 5


@dataclass(frozen=True)
class Simulation:
    ranking: tuple[str, ...]  # best first
    theta: np.ndarray  # fitted strengths, in the order of `tally.models`
    tally: Tally


@dataclass(frozen=True)
class Recovery:
    # Per seed: battles after which the ranking met the criterion at every later
    # check up to the budget; None when it did not by the end.
    battles: tuple[int | None, ...]

    @property
    def recovered(self) -> int:
        return sum(b is not None for b in self.battles)

    @property
    def median(self) -> float:
        """The median over seeds, a seed that never recovered counting as infinite."""
        return float(np.median([np.inf if b is None else b for b in self.battles]))


def _named(strengths: Mapping[str, float] | Sequence[float]) -> tuple[tuple[str, ...], np.ndarray]:
    if isinstance(strengths, Mapping):
        models, values = tuple(strengths), list(strengths.values())
    else:
        values = list(strengths)
        models = tuple(f"model-{k}" for k in range(len(values)))
    return models, np.asarray(values, dtype=float)


def _battles(
    tally: Tally,
    truth: np.ndarray,
    sampler: Sampler,
    budget: int,
    rng: np.random.Generator,
    tie_rate: float,
) -> Iterator[int]:
    """Adds one battle at a time to ``tally``, yielding the number played so far."""
    if not 0.0 <= tie_rate < 1.0:
        raise ValueError("tie_rate must lie in [0, 1)")
    if budget < 0:
        raise ValueError("budget must not be negative")
    index = {m: k for k, m in enumerate(tally.models)}
    for n in range(1, budget + 1):
        ((a, b),) = sampler.choose(tally, 1)
        draw = rng.random()
        if draw < tie_rate:
            winner = TIE
        else:
            # Rescaled so the non-tie draws are uniform on [0, 1) again.
            p_a = expit(truth[index[a]] - truth[index[b]])
            winner = MODEL_A if (draw - tie_rate) / (1.0 - tie_rate) < p_a else MODEL_B
        tally.add(a, b, winner)
        yield n


def _setup(
    strengths: Mapping[str, float] | Sequence[float], sampler: str | Sampler, seed: int
) -> tuple[tuple[str, ...], np.ndarray, Sampler, np.random.Generator]:
    models, truth = _named(strengths)
    # Separate streams: the sampler's tie-breaking and the outcomes stay
    # independent, so two samplers see comparable luck under one seed.
    sampler_seed, outcome_seed = np.random.SeedSequence(seed).spawn(2)
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, int(sampler_seed.generate_state(1)[0]))
    return models, truth, sampler, np.random.default_rng(outcome_seed)


def simulate(
    strengths: Mapping[str, float] | Sequence[float],
    sampler: str | Sampler = ADAPTIVE,
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
    tie_rate: float = 0.0,
) -> Simulation:
    """Runs ``budget`` simulated battles; strengths are natural-log Bradley-Terry units."""
    models, truth, chooser, rng = _setup(strengths, sampler, seed)
    tally = Tally.empty(models)
    with single_threaded_blas():
        for _ in _battles(tally, truth, chooser, budget, rng, tie_rate):
            pass
        theta = fit_strengths(tally, PRIOR)
    order = np.argsort(-theta, kind="stable")
    return Simulation(tuple(models[k] for k in order), theta, tally)


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-a: (concordant - discordant) / all pairs; tied pairs count zero."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        raise ValueError("tau needs at least two items")
    i, j = np.triu_indices(n, 1)
    return float(np.sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])) / len(i))


def _ranking_ok(theta: np.ndarray, truth: np.ndarray, accuracy: float, top_k: int | None) -> bool:
    if top_k is None:
        return kendall_tau(theta, truth) >= accuracy
    top = np.argsort(-theta, kind="stable")[:top_k]
    return set(top.tolist()) == set(np.argsort(-truth, kind="stable")[:top_k].tolist())


def battles_to_recover(
    strengths: Mapping[str, float] | Sequence[float],
    sampler: str,
    seeds: Sequence[int],
    accuracy: float = DEFAULT_ACCURACY,
    top_k: int | None = None,
    budget: int = DEFAULT_BUDGET,
    check_every: int = DEFAULT_CHECK_EVERY,
    tie_rate: float = 0.0,
) -> Recovery:
    """Battles each seed needs until the fitted ranking stays right.

    Right means Kendall's tau against the true ranking >= ``accuracy``, or, with
    ``top_k``, the same top k models. "Stays": from that check on, every check
    to the end of the budget passes too, so a lucky early moment does not count.
    """
    if check_every < 1:
        raise ValueError("check_every must be at least 1")
    out = []
    with single_threaded_blas():
        for seed in seeds:
            models, truth, chooser, rng = _setup(strengths, sampler, seed)
            tally = Tally.empty(models)
            since: int | None = None
            theta = None
            for n in _battles(tally, truth, chooser, budget, rng, tie_rate):
                if n % check_every and n != budget:
                    continue
                theta = fit_strengths(tally, PRIOR, theta)
                if _ranking_ok(theta, truth, accuracy, top_k):
                    since = n if since is None else since
                else:
                    since = None
            out.append(since)
    return Recovery(tuple(out))

"""Time distributions of the spec (`{dist = ...}` tables) as frozen scipy distributions.

All times inside the simulator are seconds. A spec table may give a time in seconds (`_s`) or
hours (`_hours`); exactly one of the alternatives for each parameter.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

HOUR = 3600.0


@lru_cache(maxsize=1024)
def freeze(family: str, *args: float | tuple[float, ...], **kwds: float):
    """A frozen scipy distribution, built once per process for the same parameters: building
    one costs ~1 ms (scipy writes its docstring), a replication builds hundreds. Frozen
    distributions hold no state of their own (draws take the caller's generator), so sharing is
    safe."""
    if family == "discrete":
        values, probs = args
        return stats.rv_discrete(values=(list(values), list(probs)))
    return getattr(stats, family)(*args, **kwds)


class _DistBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def _one_of(self, *names: str) -> float:
        """Exactly one of `names` (each `<x>_s` or `<x>_hours`) must be set; returns seconds."""
        given = [n for n in names if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(names)}")
        value = float(getattr(self, given[0]))
        return value * HOUR if given[0].endswith("_hours") else value

    def frozen(self) -> stats.rv_continuous | stats.rv_discrete:  # pragma: no cover - abstract
        raise NotImplementedError

    def mean_seconds(self) -> float:
        return float(self.frozen().mean())

    @model_validator(mode="after")
    def _finite_moments(self) -> _DistBase:
        """A distribution whose mean or spread overflows cannot be simulated: refuse it here."""
        d = self.frozen()  # a missing parameter says so itself
        try:
            mean, var = float(d.mean()), float(d.var())
        except (OverflowError, ValueError, ZeroDivisionError):
            raise ValueError("its mean or variance cannot be computed (overflow)") from None
        if not (math.isfinite(mean) and math.isfinite(var)) or mean > 1e12:
            raise ValueError(f"mean {mean:.3g} s or variance {var:.3g} is not a finite, "
                             "plausible time (at most 1e12 s)")
        return self


PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Exponential(_DistBase):
    dist: Literal["exponential"]
    mean_s: PosFloat | None = None
    mean_hours: PosFloat | None = None

    @model_validator(mode="after")
    def _check(self) -> Exponential:
        self._one_of("mean_s", "mean_hours")
        return self

    def frozen(self):  # type: ignore[override]
        return freeze("expon", scale=self._one_of("mean_s", "mean_hours"))


class Weibull(_DistBase):
    dist: Literal["weibull"]
    shape: Annotated[float, Field(ge=0.05, le=100, allow_inf_nan=False,
                                  description="below 0.05 the mean overflows")]
    mean_s: PosFloat | None = None
    mean_hours: PosFloat | None = None
    scale_s: PosFloat | None = None
    scale_hours: PosFloat | None = None

    @model_validator(mode="after")
    def _check(self) -> Weibull:
        self._one_of("mean_s", "mean_hours", "scale_s", "scale_hours")
        return self

    def frozen(self):  # type: ignore[override]
        value = self._one_of("mean_s", "mean_hours", "scale_s", "scale_hours")
        is_mean = self.mean_s is not None or self.mean_hours is not None
        scale = value / math.gamma(1 + 1 / self.shape) if is_mean else value
        return freeze("weibull_min", c=self.shape, scale=scale)


class Lognormal(_DistBase):
    dist: Literal["lognormal"]
    sigma: Annotated[float, Field(gt=0, le=5, allow_inf_nan=False,
                                  description="above 5 the mean is e^12.5 x the median")]
    median_s: PosFloat | None = None
    median_hours: PosFloat | None = None
    mean_s: PosFloat | None = None
    mean_hours: PosFloat | None = None

    @model_validator(mode="after")
    def _check(self) -> Lognormal:
        self._one_of("median_s", "median_hours", "mean_s", "mean_hours")
        return self

    def frozen(self):  # type: ignore[override]
        value = self._one_of("median_s", "median_hours", "mean_s", "mean_hours")
        is_mean = self.mean_s is not None or self.mean_hours is not None
        median = value / math.exp(self.sigma**2 / 2) if is_mean else value
        return freeze("lognorm", s=self.sigma, scale=median)


class Gamma(_DistBase):
    dist: Literal["gamma"]
    shape: PosFloat
    mean_s: PosFloat | None = None
    mean_hours: PosFloat | None = None

    @model_validator(mode="after")
    def _check(self) -> Gamma:
        self._one_of("mean_s", "mean_hours")
        return self

    def frozen(self):  # type: ignore[override]
        return freeze("gamma", a=self.shape, scale=self._one_of("mean_s", "mean_hours") / self.shape)


class Deterministic(_DistBase):
    dist: Literal["deterministic"]
    value_s: PosFloat | None = None
    value_hours: PosFloat | None = None

    @model_validator(mode="after")
    def _check(self) -> Deterministic:
        self._one_of("value_s", "value_hours")
        return self

    def frozen(self):  # type: ignore[override]
        return freeze("discrete", (self._one_of("value_s", "value_hours"),), (1.0,))


class Empirical(_DistBase):
    """Resamples measured values (e.g. lab failover times) with equal weight."""

    dist: Literal["empirical"]
    samples_s: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(min_length=1)

    def frozen(self):  # type: ignore[override]
        values, counts = np.unique(np.asarray(self.samples_s, dtype=float), return_counts=True)
        return freeze("discrete", tuple(values.tolist()), tuple((counts / counts.sum()).tolist()))


Dist = Annotated[
    Exponential | Weibull | Lognormal | Gamma | Deterministic | Empirical,
    Field(discriminator="dist"),
]
DIST_NAMES = ("exponential", "weibull", "lognormal", "gamma", "deterministic", "empirical")


class BufferedSampler:
    """Draws from a frozen distribution in blocks: one scipy call per block, not per event."""

    __slots__ = ("_dist", "_rng", "_next", "_block")

    def __init__(self, dist, rng: np.random.Generator, block: int = 256) -> None:
        self._dist = dist
        self._rng = rng
        self._block = block
        self._next = iter(()).__next__  # a list iterator's __next__: the cheapest call per draw

    def __call__(self) -> float:
        try:
            return self._next()
        except StopIteration:
            draws = self._dist.rvs(size=self._block, random_state=self._rng)
            self._next = iter(np.asarray(draws, dtype=float).tolist()).__next__
            return self._next()


class EquilibriumResidual:
    """The time left on a clock found running at a random moment of a long renewal process (the
    equilibrium, or residual-life, distribution): U x L, with U uniform on (0, 1) and L the
    length-biased distribution (density x f(x) / mean), which is closed-form for every family of
    the spec. Draws like a frozen scipy distribution (`rvs`)."""

    def __init__(self, dist) -> None:
        self._name = name = "discrete" if isinstance(dist, stats.rv_discrete) else dist.dist.name
        args, kwds = getattr(dist, "args", ()), getattr(dist, "kwds", {})
        scale = kwds.get("scale", 1.0)
        if name == "discrete":  # deterministic and empirical: values picked in proportion to size
            weights = dist.xk * dist.pk
            self._biased = freeze("discrete", tuple(dist.xk.tolist()),
                                  tuple((weights / weights.sum()).tolist()))
        elif name == "expon":  # memoryless: the residual is the distribution itself
            self._biased = freeze("gamma", a=2, scale=scale)
        elif name == "gamma":
            self._biased = freeze("gamma", a=kwds.get("a", args[0] if args else None) + 1, scale=scale)
        elif name == "lognorm":
            s = kwds.get("s", args[0] if args else None)
            self._biased = freeze("lognorm", s=s, scale=scale * math.exp(s * s))
        elif name == "weibull_min":
            c = kwds.get("c", args[0] if args else None)
            self._c = c
            self._biased = freeze("gamma", a=1 + 1 / c, scale=scale**c)  # of L^c
        else:  # pragma: no cover - every Dist family is handled above
            raise ValueError(f"no equilibrium distribution for {name}")

    def rvs(self, size: int, random_state: np.random.Generator) -> np.ndarray:
        length = np.asarray(self._biased.rvs(size=size, random_state=random_state), dtype=float)
        if self._name == "weibull_min":
            length = length ** (1 / self._c)
        return random_state.uniform(size=size) * length

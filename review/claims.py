"""The claims file (models/*-claims.toml): one entry per claim of the design document."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.spec import SpecError


class Recommend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    changes: dict[str, Any] = Field(min_length=1)
    text: str
    path: str | None = None  # the figure to show before -> after (default: the claim's own)
    label: str | None = None
    always: bool = False  # a what-if: simulated and shown even where the claim holds


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    section: str
    quote: str = Field(min_length=1)
    gloss: str
    check: Literal["target", "metric", "lab", "fact", "capacity", "not_checkable", "process"]
    key: str | None = None  # target
    path: str | None = None  # metric, lab
    op: Literal["<=", ">=", "<", ">"] | None = None
    threshold: float | None = None
    default: float | None = None  # the figure when the run has no such entry (e.g. no such cause)
    label: str | None = None
    note: str | None = None
    verdict: Literal["holds", "fails", "holds only if"] | None = None  # fact
    condition: str | None = None
    source: str | None = None
    why: str | None = None
    # capacity: a plan from the topology's load costs (studies/vm_plan.py)
    question: Literal["alarm", "nodes"] | None = None
    vms: list[str] = Field(default_factory=lambda: ["D4s_v5", "D8s_v5", "D16s_v5"])
    devices: list[int] = Field(default_factory=list)  # nodes: the growth path to plan
    recommend: Recommend | None = None
    # the claim is about this setting: a design that changed it has replaced the claim
    applies_if: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Claim:
        need = {"target": ("key",), "metric": ("path", "op", "threshold"),
                "lab": ("path", "op", "threshold"), "fact": ("verdict", "condition", "source"),
                "capacity": ("question",),
                "not_checkable": ("why",), "process": ("why",)}[self.check]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"check = {self.check!r} needs {', '.join(missing)}")
        return self


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topology: str
    calibration: str
    years: float = Field(gt=0)
    replications: int = Field(ge=2)


class ClaimsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    review: Review
    claim: list[Claim] = Field(min_length=1)


def load_claims(path: Path) -> ClaimsFile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SpecError(f"{path}: cannot read ({err.strerror})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecError(f"{path}: not a TOML file ({err})") from None
    try:
        claims = ClaimsFile.model_validate(data)
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in e["loc"])
        raise SpecError(f"{path}: {where}: {e['msg']}") from None
    ids = [c.id for c in claims.claim]
    if len(set(ids)) != len(ids):
        raise SpecError(f"{path}: claim ids must be unique")
    return claims

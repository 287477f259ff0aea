"""The topology spec (models/*.toml): reading a file (with `extends` / `unset`), turning pydantic's
errors into one line naming the key, the value and what is allowed (`SpecError`), and the checks
made before any run. The model itself is sim/topology.py; its names are re-exported here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sim.distributions import DIST_NAMES
from sim.topology import (
    NODE_MODES,
    YEAR_S,
    Clients,
    Cluster,
    FailureMode,
    LoadBalancer,
    Simulation,
    Spec,
    SpecError,
    Uncertain,
)

__all__ = ["NODE_MODES", "YEAR_S", "Cluster", "Clients", "FailureMode", "LoadBalancer",
           "Simulation", "Spec", "SpecError", "Uncertain", "check_calibration_file", "check_size",
           "expected_events", "format_error", "load_spec", "parse_spec"]


# ---------------------------------------------------------------------------- loading and errors


def _resolve_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the last key of `loc`, to list the allowed keys."""
    model: Any = Spec
    for part in loc[:-1]:
        if isinstance(part, int) or part in DIST_NAMES:
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        model = _model_of(field.annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in DIST_NAMES and not str(p).startswith("function-"))


def format_error(err: ValidationError) -> str:
    """One line for the first error (the count of others in brackets)."""
    e = err.errors(include_url=False)[0]
    key = _key(tuple(e["loc"]))
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    kind = e["type"]
    if kind == "missing":
        return f"{key}: missing; this key is required{more}"
    if kind == "extra_forbidden":
        model = _resolve_model(tuple(e["loc"]))
        allowed = ", ".join(model.model_fields) if model else "see `twin schema`"
        return f"{key}: unknown key; allowed here: {allowed}{more}"
    if kind == "union_tag_invalid":
        return f"{key}.dist = {e['input'].get('dist')!r}: unknown distribution; allowed: " + (
            ", ".join(DIST_NAMES) + more
        )
    if kind == "union_tag_not_found":
        return f"{key}.dist: missing; allowed: {', '.join(DIST_NAMES)}{more}"
    msg = e["msg"].removeprefix("Value error, ")
    if kind == "value_error" and msg.split(" ", 1)[0].count(".") and "=" in msg:
        return msg + more  # the validator already named the key and value
    value = e.get("input")
    shown = "" if isinstance(value, dict) else f" = {value!r}"
    return f"{key or '(top level)'}{shown}: {msg}{more}"


def parse_spec(data: dict[str, Any]) -> Spec:
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_error(err)) from None


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value (arrays included) replaces the base's."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A TOML file with `extends = "base.toml"` (relative to it) and `unset = ["dotted.key"]`."""
    if path.resolve() in seen:
        raise SpecError(f"{path}: extends forms a cycle")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise SpecError(f"{path}: cannot read ({err.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from None
    cal = data.get("calibration")
    if isinstance(cal, dict) and isinstance(cal.get("file"), str) and cal["file"]:
        cal["file"] = str((path.parent / cal["file"]).resolve())  # relative to the file naming it
    cl = data.get("cluster")
    if isinstance(cl, dict) and isinstance(cl.get("load_costs"), str) and cl["load_costs"]:
        cl["load_costs"] = str((path.parent / cl["load_costs"]).resolve())
    base_name = data.pop("extends", None)
    unset = data.pop("unset", [])
    if base_name is None:
        if unset:
            raise SpecError(f"{path}: unset = {unset!r}: only allowed together with extends")
        return data
    if not isinstance(base_name, str):
        raise SpecError(f"{path}: extends = {base_name!r}: must be a file name (string)")
    base = _read_toml(path.parent / base_name, seen + (path.resolve(),))
    if not isinstance(unset, list) or not all(isinstance(k, str) for k in unset):
        raise SpecError(f"{path}: unset = {unset!r}: must be a list of dotted keys")
    for dotted in unset:
        table, *rest = dotted.split(".")
        holder = base
        for part in [table, *rest][:-1]:
            holder = holder.get(part, {}) if isinstance(holder, dict) else {}
        if not isinstance(holder, dict) or [table, *rest][-1] not in holder:
            raise SpecError(f"{path}: unset = {dotted!r}: the base has no such key")
        del holder[[table, *rest][-1]]
    return _merge(base, data)


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    data = _read_toml(path)
    try:
        spec = parse_spec(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None
    if spec.calibration is not None:
        target = (path.parent / spec.calibration.file).resolve()
        if not target.is_file():
            raise SpecError(f"{path}: calibration.file = {spec.calibration.file!r}: no such file "
                            f"({target})")
        check_calibration_file(target, f"{path}: calibration.file = {spec.calibration.file!r}")
        spec = spec.model_copy(update={"calibration": spec.calibration.model_copy(update={"file": str(target)})})
    if spec.cluster.load_costs is not None:
        from sim.resources import LoadCostsError, load_costs

        try:
            load_costs(spec.cluster.load_costs)
        except LoadCostsError as err:
            raise SpecError(f"{path}: cluster.load_costs = {spec.cluster.load_costs!r}: {err}") \
                from None
    check_size(spec, str(path))
    return spec


CALIBRATION_KEYS = ("client_outage_s", "session_present_ratio", "acknowledged_lost_per_event",
                    "duplicates_per_event", "mechanism")


def check_calibration_file(path: Path, where: str) -> None:
    """A calibration file `simulate` can use: JSON with `modes`, each with what the pools read."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise SpecError(f"{where}: not a calibration file ({type(err).__name__}: {err})"[:300]) \
            from None
    modes = data.get("modes") if isinstance(data, dict) else None
    if not isinstance(modes, dict) or not modes:
        raise SpecError(f"{where}: not a calibration file (no 'modes'; make one with twin calibrate)")
    for mode, m in modes.items():
        missing = [k for k in CALIBRATION_KEYS if not isinstance(m, dict) or k not in m]
        if missing:
            raise SpecError(f"{where}: modes.{mode} lacks {', '.join(missing)} (remake it with "
                            "twin calibrate)")


MAX_EVENTS = 1e8  # events a run may simulate: the reference's 2e6 take 45 s on 2 cores


def expected_events(spec: Spec) -> float:
    """Node, LB and region events the run will simulate, from the failure rates (each event is a
    failure and a repair)."""
    rate = 0.0  # failures per simulated second, whole system
    nodes = sum(spec.region_sizes())
    for mode in spec.node.failure.modes().values():
        rate += nodes / max(mode.mttf_s(), 1e-300)
    extra = [spec.lb.failure if spec.lb else None] + [r.outage for r in spec.regions]
    for f in extra:
        if f is not None:
            rate += 1 / max(f.mttf_s(), 1e-300)
    sim = spec.simulation
    return 2 * rate * YEAR_S * sim.years * sim.replications


def check_size(spec: Spec, where: str) -> None:
    """Refuse, before any work, a run that would not end in reasonable time, or whose nodes
    cannot hold their clients even with every node up."""
    from sim.resources import hard_limits_broken

    broken = hard_limits_broken(spec)
    if broken:
        raise SpecError(f"{where}: cluster.vm = {spec.cluster.vm or spec.cluster.vcpu}: {broken}")
    events = expected_events(spec)
    if events > MAX_EVENTS:
        sim = spec.simulation
        raise SpecError(f"{where}: about {events:.3g} events to simulate ({sim.years:g} years x "
                        f"{sim.replications} replications); at most {MAX_EVENTS:.0e} (about 40 min on "
                        "2 cores) are run: lower simulation.years or replications (--years), or check "
                        "the failure rates")

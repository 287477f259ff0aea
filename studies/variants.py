"""Designs as edits of a topology: dotted keys (`cluster.nodes`, `regions.0.outage.mtbf_hours`)
set to values, a grid of them, or named variants from a TOML file."""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Any

from sim.spec import Spec, SpecError, parse_spec


class VariantError(ValueError):
    """A bad key or value in a variant (one line)."""


def parse_value(text: str) -> Any:
    """A TOML value (3, 0.5, true, "tcp", {dist = ...}); a bare word is a string; `none` unsets."""
    if text == "none":
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    if ".*." in key:  # every item of a list: regions.*.outage.mtbf_hours
        head, tail = key.split(".*.", 1)
        items = data
        for part in head.split("."):
            items = items.get(part) if isinstance(items, dict) else None  # type: ignore[assignment]
        if not isinstance(items, list) or not items:
            raise VariantError(f"{key}: {head} is not a list with items")
        for i in range(len(items)):
            _set(data, f"{head}.{i}.{tail}", value)
        return
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) \
            else node.get(part) if isinstance(node, dict) else None
        if nxt is None:
            if not isinstance(node, dict):
                raise VariantError(f"{key}: {'.'.join(parts[:i + 1])} is not a table")
            nxt = node[part] = {}
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        if not (last.isdigit() and int(last) < len(node)):
            raise VariantError(f"{key}: no item {last} (the list has {len(node)})")
        node[int(last)] = value
    elif value is None:
        node.pop(last, None)
    else:
        node[last] = value


def apply(spec: Spec, changes: dict[str, Any], name: str | None = None) -> Spec:
    """The spec with `changes` applied, validated like a file (a bad key or value: VariantError)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    for key, value in changes.items():
        if key == "unset":  # TOML has no null: `unset = ["node.failure.disk.ttf"]` removes keys
            for k in value if isinstance(value, list) else [value]:
                _set(data, str(k), None)
            continue
        if key.split(".")[0] not in Spec.model_fields:
            raise VariantError(f"{key}: unknown key (top-level keys: {', '.join(Spec.model_fields)})")
        _set(data, key, value)
        if key.startswith("cluster.nodes") and isinstance(value, int):  # regions follow the cluster
            for region in data.get("regions", []):
                region["nodes"] = value
    data.setdefault("meta", {})["name"] = name or _name(spec.meta.name, changes)
    try:
        return parse_spec(data)
    except SpecError as err:
        raise VariantError(f"{_name(spec.meta.name, changes)}: {err}") from None


def _name(base: str, changes: dict[str, Any]) -> str:
    if not changes:
        return base
    return base + " " + " ".join(f"{k.split('.')[-1] if k.count('.') else k}={_short(v)}"
                                 for k, v in changes.items())


def _short(v: Any) -> str:
    return "none" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))


def expand_grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values (in the order given; the first key varies slowest)."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def parse_set(items: list[str]) -> dict[str, list[Any]]:
    """`--set key=v1,v2` options as a grid (a value with commas inside braces stays whole)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise VariantError(f"--set {item!r}: expected KEY=VALUE[,VALUE...]")
        key, values = item.split("=", 1)
        grid[key.strip()] = [parse_value(v.strip()) for v in _split(values)]
    return grid


def _split(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def load_variants(path: Path) -> dict[str, dict[str, Any]]:
    """Named variants: `[variants.NAME]` tables of dotted keys -> values."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise VariantError(f"{path}: {err}") from None
    variants = data.get("variants")
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise VariantError(f"{path}: expected [variants.NAME] tables of dotted keys")
    return {name: {k: v for k, v in _flatten(v)} for name, v in variants.items()}


def _flatten(table: dict[str, Any], prefix: str = ""):
    for k, v in table.items():
        if isinstance(v, dict) and "dist" not in v:
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v

"""Checks that a schema still accepts everything a published version accepted.

A published version may gain optional fields, and a pattern of alternatives
(such as the DUO codes) may gain alternatives. It may not lose a field, gain
a required field, or change a field's type or narrow its constraints; that is a breaking change and
needs a new schema version (a new payload class with schema_version + 1).
"""

import json
from pathlib import Path
from typing import Any

PUBLISHED_DIR = Path(__file__).with_name("published")

_IGNORED_KEYS = {"description", "examples", "title", "default"}


def _shape(schema: Any) -> Any:
    """Drop the documentation keys so only what affects validation is compared."""
    if isinstance(schema, dict):
        return {key: _shape(value) for key, value in schema.items() if key not in _IGNORED_KEYS}
    if isinstance(schema, list):
        return [_shape(item) for item in schema]
    return schema


def _alternatives(pattern: str) -> set[str] | None:
    """The top-level alternatives of a pattern shaped ^(a|b|c)$, or None for any other shape."""
    if not (pattern.startswith("^(") and pattern.endswith(")$")):
        return None
    body, parts, depth, current = pattern[2:-2], [], 0, ""
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return set(parts)


def _widened(old: Any, new: Any) -> bool:
    """True when `new` equals `old` except for patterns that only gained alternatives."""
    if isinstance(old, dict) and isinstance(new, dict):
        if old.keys() != new.keys():
            return False
        for key in old:
            if key == "pattern" and old[key] != new[key]:
                before, after = _alternatives(old[key]), _alternatives(new[key])
                if before is None or after is None or not before <= after:
                    return False
            elif not _widened(old[key], new[key]):
                return False
        return True
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_widened(a, b) for a, b in zip(old, new, strict=True))
    return old == new


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
    return schema


def breaking_changes(published: dict[str, Any], current: dict[str, Any], path: str = "") -> list[str]:
    """List the changes from `published` to `current` that an old producer's payload would fail."""
    problems: list[str] = []
    old_props = published.get("properties", {})
    new_props = current.get("properties", {})
    for name, old in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            problems.append(f"field '{where}' was removed")
            continue
        old_resolved, new_resolved = _resolve(old, published), _resolve(new_props[name], current)
        if "properties" in old_resolved and "properties" in new_resolved:
            nested_old = {**old_resolved, "$defs": published.get("$defs", {})}
            nested_new = {**new_resolved, "$defs": current.get("$defs", {})}
            problems += breaking_changes(nested_old, nested_new, f"{where}.")
        elif not _widened(_shape(old_resolved), _shape(new_resolved)):
            problems.append(f"field '{where}' changed type or constraints")
    added_required = set(current.get("required", [])) - set(published.get("required", []))
    for name in sorted(added_required):
        problems.append(f"field '{path}{name}' became required")
    return problems


def published_schemas() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(PUBLISHED_DIR.glob("*.json"))
    }

"""`ECGConfigChecksMixin`: the checks every family's config runs on its fields when it is built, from Python or from a
config.json, before its own `validate_*` checks.

- Types: a field the family declares as `int`, `float`, `bool` or `str` (or one of them `| None`) must hold one.
  transformers' config base class does not check the fields of a subclass (hf_conventions.md §1.1: only
  `@strict`-decorated classes are), so `projection_dim="256"` used to pass and fail later, deep in the model, and
  `use_rlca="no"` silently meant True. Integers given to a float field become floats; numpy scalars become Python
  numbers (presets computed with numpy, values read back from JSON).
- The data layout every family shares: `num_leads`, `num_samples` and `sampling_rate` positive, `lead_names` one
  distinct name per lead, `initializer_range` positive.

Flat, depending on nothing but the standard library: copied next to every saved checkpoint whose config imports it.
"""

import numbers
import types
import typing

SIMPLE_TYPES = {int: "an integer", float: "a number", bool: "True or False", str: "a string"}


def _simple_types(annotation) -> tuple[tuple, bool] | None:
    """(the simple types an annotation allows, whether None is allowed); None when it allows anything else (lists,
    dicts, sub-configs: left to the family's own checks)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
    else:
        members = (annotation,)
    simple = tuple(member for member in members if member in SIMPLE_TYPES)
    others = [member for member in members if member not in SIMPLE_TYPES and member is not type(None)]
    if not simple or others:
        return None
    return simple, type(None) in members


_MISMATCH = object()


def _coerced(value, kind):
    """`value` as `kind`, or `_MISMATCH` when it is not one (a bool is not an integer; an integer is a float)."""
    if kind is bool:
        return bool(value) if type(value).__name__ in ("bool", "bool_") else _MISMATCH
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return _MISMATCH
    if kind is int:
        return int(value) if isinstance(value, numbers.Integral) else _MISMATCH
    if kind is float:
        return float(value) if isinstance(value, numbers.Real) else _MISMATCH
    return value if isinstance(value, str) else _MISMATCH


class ECGConfigChecksMixin:
    """Checks the types of the family's own simple fields and the shared data layout (see the module docstring)."""

    def __post_init__(self, **kwargs):
        self.check_field_types()
        self.check_data_layout()
        super().__post_init__(**kwargs)

    def check_field_types(self):
        for name, annotation in type(self).__dict__.get("__annotations__", {}).items():
            allowed = _simple_types(annotation)
            if allowed is None or not hasattr(self, name):
                continue
            kinds, optional = allowed
            value = getattr(self, name)
            if value is None and optional:
                continue
            for kind in kinds:
                coerced = _coerced(value, kind)
                if coerced is not _MISMATCH:
                    setattr(self, name, coerced)
                    break
            else:
                wanted = " or ".join(SIMPLE_TYPES[kind] for kind in kinds) + (" or None" if optional else "")
                raise TypeError(f"{type(self).__name__}.{name} must be {wanted}, got {value!r} "
                                f"({type(value).__name__}).")

    def check_data_layout(self):
        name = type(self).__name__
        for field in ("num_leads", "num_samples"):
            if getattr(self, field, 1) < 1:
                raise ValueError(f"{name}.{field} must be at least 1, got {getattr(self, field)}.")
        for field in ("sampling_rate", "initializer_range"):
            if getattr(self, field, 1) <= 0:
                raise ValueError(f"{name}.{field} must be positive, got {getattr(self, field)}.")
        lead_names = getattr(self, "lead_names", None)
        if lead_names is not None:
            if not isinstance(lead_names, (list, tuple)) or not all(isinstance(lead, str) for lead in lead_names):
                raise TypeError(f"{name}.lead_names must be a list of lead names (strings), got {lead_names!r}.")
            if len(set(lead_names)) != len(lead_names):
                raise ValueError(f"{name}.lead_names has repeated leads: {lead_names!r}.")
            if len(lead_names) != self.num_leads:
                raise ValueError(f"{name}.lead_names has {len(lead_names)} names but num_leads is {self.num_leads}.")


__all__ = ["ECGConfigChecksMixin"]

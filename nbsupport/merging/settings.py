"""Parameter settings as mergekit's configs write them, resolved for one tensor.

A setting is a scalar (``0.5``), a gradient (``[0, 0.3, 0.7, 1]``: interpolated over the
layers), a filter list (``[{filter: self_attn, value: 0.3}, {value: 0.7}]``: the first
entry whose ``filter`` is a substring of the tensor name, or has no filter or ``"*"``), or a
filter list whose values are gradients. mergekit's rules (``mergekit.config.evaluate_setting``):

- the gradient position ``t`` of layer ``i`` of a slice of ``n`` layers is ``i / (n - 1)``
  (``1`` when ``n == 1``); tensors outside the layers (embeddings, final norm, head) get
  ``t = 0``, so the gradient's first value;
- a numeric gradient of ``m`` values at ``t`` is the linear interpolation between the values
  ``⌊t(m-1)⌋`` and the next one; a gradient of booleans or text picks value ``⌊t(m-1)⌋``;
- a filter list where no entry matches gives no value, and the next scope is asked
  (per-source, then the slice's, then the config's ``parameters``), then the default;
- an empty list gives no value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nbsupport.merging.validate import MergeError

CONDITION_KEYS = {"filter", "value"}


def _numeric(v: Any) -> float | None:
    """``v`` as a float if it is a number or numeric text (YAML reads ``1e-3`` as text)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def check_setting(setting: Any, where: str) -> None:
    """Raise :class:`MergeError` (one line naming the fix) if ``setting`` is not a valid
    scalar, gradient, filter entry or filter list."""
    if isinstance(setting, (bool, int, float, str)):
        return
    if isinstance(setting, Mapping):
        bad = set(setting) - CONDITION_KEYS
        if bad or "value" not in setting:
            raise MergeError(f"{where}: a filter entry has the keys filter and value, e.g. "
                             f"{{filter: self_attn, value: 0.5}}; got {dict(setting)!r}")
        if setting.get("filter") is not None and not isinstance(setting["filter"], str):
            raise MergeError(f"{where}: filter must be text (a substring of tensor names), got {setting['filter']!r}")
        value = setting["value"]
        if isinstance(value, Mapping) or (isinstance(value, list) and any(isinstance(e, (Mapping, list)) for e in value)):
            raise MergeError(f"{where}: a filter entry's value is a number or a gradient list of numbers, got {value!r}")
        check_setting(value, where)
        return
    if isinstance(setting, (list, tuple)):
        if all(isinstance(e, (bool, int, float, str)) for e in setting):
            return
        if all(isinstance(e, Mapping) for e in setting):
            for e in setting:
                check_setting(e, where)
            return
        raise MergeError(f"{where}: a list is either a gradient of numbers ([0, 0.5, 1]) or a filter list "
                         f"([{{filter: mlp, value: 0.3}}, {{value: 0.7}}]), not a mix: {list(setting)!r}")
    raise MergeError(f"{where}: expected a number, a gradient list or a filter list, got {setting!r}")


def evaluate(setting: Any, tensor_name: str, t: float) -> Any:
    """The value of a (checked) setting for ``tensor_name`` at gradient position ``t``;
    ``None`` when a filter list has no matching entry or the list is empty."""
    if isinstance(setting, Mapping):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if not setting:
        return None
    if all(not isinstance(e, Mapping) for e in setting):
        values = [_numeric(e) for e in setting]
        if any(v is None for v in values):
            return setting[int(t * (len(setting) - 1))]
        scaled = t * (len(values) - 1)
        i0 = int(scaled)
        i1 = min(len(values) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * values[i0] + frac * values[i1]
    for cond in setting:
        f = cond.get("filter")
        if f is None or f == "*" or (tensor_name and f in tensor_name):
            return evaluate(cond["value"], tensor_name, t)
    return None


def resolve(name: str, scopes: Sequence[Mapping[str, Any] | None], tensor_name: str, t: float) -> Any:
    """The first non-``None`` value of parameter ``name`` over ``scopes`` (highest precedence
    first), or ``None`` when no scope sets it for this tensor (the method's default applies)."""
    for scope in scopes:
        if scope and name in scope:
            value = evaluate(scope[name], tensor_name, t)
            if value is not None:
                return value
    return None

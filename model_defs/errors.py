"""The errors of `model_defs`, in one place (imported from here by every module, and
re-exported where they were first defined: `model_defs.preset.PresetError`,
`model_defs.weights.WeightMapError`).

Both are ValueErrors whose message is one line saying what is wrong, in which file, and
what to do; the command lines print them as `error: ...` and exit 2.
"""

from __future__ import annotations

import contextlib


class PresetError(ValueError):
    """A preset that cannot be found or read; the message says what to do."""


class WeightMapError(ValueError):
    """A checkpoint that does not fit the model (missing, unused or misshapen tensors)."""


@contextlib.contextmanager
def reading(where: str):
    """Report the ValueError/TypeError/KeyError of a constructor fed values read from
    `where` as a PresetError naming it."""
    try:
        yield
    except PresetError:
        raise
    except (TypeError, ValueError, KeyError) as e:
        detail = f"lacks {e}" if isinstance(e, KeyError) else str(e)
        if "safe_mode" in detail:  # Keras refuses to deserialize code (a Lambda): rightly
            detail = ("it holds Python code (a lambda) that Keras' safe mode refuses to "
                      "load; presets must not carry code")
        raise PresetError(f"{where}: {detail.splitlines()[0][:300]}") from None


def describe(value) -> str:
    """A value for an error message: its JSON type and at most 60 characters of it."""
    if value is None:
        return "null"
    kind = {dict: "an object", list: "a list", str: "the string", bool: "the boolean"}.get(
        type(value), f"the {type(value).__name__}")
    text = repr(value)
    return f"{kind} {text[:60] + '...' if len(text) > 60 else text}"

"""What an endpoint accepts, and one-line gr.Errors that name the parameter.

Gradio's own checks (a Dropdown's choices, a Number's or Slider's bounds) do not name the
parameter; a value of the wrong type ("abc" for a Number, None for a Slider) fails inside Gradio
with a message it hides from an API caller, and a Number takes 3.5 as 4 and true as 1. So the
events whose inputs are numbers or choices keep `preprocess=False` and their handlers check each
input here; so are the model-run keys (their lists change while the app runs). Images reach
`ui.common.read_image` unopened (UploadedImage).

`endpoint(handler, *bound)` is what the events call: the handler with its first arguments
bound (the catalog), the same parameter names (they are the API's), and one difference: an
API call that leaves out a required input (the image) is told so, while the same empty value
from the browser (a cleared input) gives empty outputs as before.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
from numbers import Real
from typing import Any, Callable, Sequence

import gradio as gr

MAX_SHOWN = 60      # characters of a bad value echoed back in a message
_FROM_BROWSER = contextvars.ContextVar("from_browser", default=False)


def from_browser() -> bool:
    """True while a handler answers an event of the browser page (not an API call or a test)."""
    return _FROM_BROWSER.get()


@contextlib.contextmanager
def browser_event(browser: bool = True):
    """Within this block, handlers answer as to an event of the page (`from_browser()`)."""
    token = _FROM_BROWSER.set(browser)
    try:
        yield
    finally:
        _FROM_BROWSER.reset(token)


def user_error(message: str) -> gr.Error:
    """A one-line message shown to the user (no traceback, nothing logged as a crash)."""
    return gr.Error(" ".join(str(message).split()), print_exception=False)


def shown(value: Any) -> str:
    """A bad value as it appears in a message: its repr, cut short, never a whole payload."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


def whole_number(value: Any, name: str, minimum: int, maximum: int) -> int:
    """An integer in [minimum, maximum]; integral floats (3.0) and digit strings ("3") are accepted."""
    return int(_number(value, name, f"a whole number from {minimum} to {maximum}", minimum, maximum, whole=True))


def real_number(value: Any, name: str, minimum: float, maximum: float) -> float:
    """A finite number in [minimum, maximum]."""
    return _number(value, name, f"a number from {minimum:g} to {maximum:g}", minimum, maximum, whole=False)


def _number(value: Any, name: str, allowed: str, minimum: float, maximum: float, *, whole: bool) -> float:
    """`value` as a float in range, or a gr.Error saying what is `allowed`. True/false is refused
    (a bool is an int to Python, never a number to a user)."""
    if value is None or value == "":
        raise user_error(f"{name} is missing: send {allowed}")
    number = None
    if isinstance(value, Real) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None or not (math.isfinite(number) and minimum <= number <= maximum) \
            or (whole and not number.is_integer()):
        raise user_error(f"{name} must be {allowed}, not {shown(value)}")
    return number


def choice(value: Any, name: str, options: Sequence[str], *, default: str | None = None) -> str:
    """One of `options` (exact text)."""
    if value is None or value == "":
        if default is not None:
            return default
        raise user_error(f"{name} is missing: choose one of {_listing(options)}")
    if not isinstance(value, str) or value not in options:
        raise user_error(f"{name} must be one of {_listing(options)}, not {shown(value)}")
    return value


def _listing(options: Sequence[str], limit: int = 8) -> str:
    items = [repr(o) for o in options[:limit]]
    return ", ".join(items) + (f" (and {len(options) - limit} more)" if len(options) > limit else "") \
        if items else "(none available)"


def flag(value: Any, name: str) -> bool:
    """true or false (None: false)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise user_error(f"{name} must be true or false, not {shown(value)}")
    return value


def run_key(value: Any, name: str = "model_run") -> str | None:
    """A model run's catalog key (text), or None/"" for the tab's default model."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise user_error(f"{name} must be a model run name (text, e.g. 'cifar10/<run>'), not {shown(value)}")
    return value


def required_run_key(value: Any, name: str = "model_run") -> str:
    """A model run's catalog key; this endpoint has no default model."""
    key = run_key(value, name)
    if key is None:
        raise user_error(f"{name} is missing: choose a model run")
    return key


def run_keys(value: Any, name: str = "model_runs") -> list[str]:
    """A list of catalog keys (one key alone is taken as a list of one)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise user_error(f"{name} must be a list of model run names (text), not {shown(value)}")
    return value


def text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise user_error(f"{name} must be text, not {shown(value)}")
    return value


# --- the functions the events call ----------------------------------------------------------------

def endpoint(handler: Callable, *bound: Any, images: Sequence[str] = ("image",),
             required: Sequence[str] | None = None, **fixed: Any) -> Callable:
    """`handler` with `bound` first arguments (and `fixed` keyword arguments), as an event calls it.

    Gradio names the API's parameters after this function's: they are the handler's own. It
    passes the event first (annotated gr.EventData, so it is not an API parameter): an event
    from the browser has a target component, an API call has none. An API call whose `required`
    inputs (default: the images) are empty gets a gr.Error naming them; the same empty value from
    the browser (a cleared input) goes through, and the handler answers with empty outputs.
    """
    target = functools.partial(handler, *bound, **fixed)
    parameters = [p for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    names = [p.name for p in parameters]
    required = tuple(images if required is None else required)

    def call(event: gr.EventData, *args):
        browser = getattr(event, "target", None) is not None
        for name, value in zip(names, args):
            if not browser and name in required and is_empty(value):
                raise user_error(f"{name} is missing: send an image file (upload it, or a data: URL)")
        with browser_event(browser):
            return target(*args)

    event_parameter = inspect.Parameter("event", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.EventData)
    call.__signature__ = inspect.Signature([event_parameter, *parameters])
    # A handler's parameter named `request` (who asks: its session) is Gradio's gr.Request, not an API input.
    call.__annotations__ = {"event": gr.EventData, **({"request": gr.Request} if "request" in names else {})}
    call.__name__ = getattr(handler, "__name__", "endpoint")
    call.__qualname__ = call.__name__
    call.__doc__ = handler.__doc__
    return call


def is_empty(value: Any) -> bool:
    """True for "no image yet": None, an empty payload or drawing, a cleared component."""
    if value is None:
        return True
    if isinstance(value, dict):
        return not (value.get("path") or value.get("url") or value.get("composite") or value.get("id"))
    if isinstance(value, (str, bytes, bytearray)):
        return len(value) == 0
    return False

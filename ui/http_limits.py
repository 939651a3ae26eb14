"""Limits on what reaches the app over HTTP: ASGI middleware around the app Gradio builds.

- Every request body is capped at `max_body_bytes`. A declared Content-Length above the cap is
  answered 413 before a byte of the body is read; a body without one (chunked) is counted as
  it streams in and cut off when it passes the cap (413 if no answer has started). Gradio's
  own `max_file_size` only limits the files of a multipart upload, not JSON bodies.
- A body FastAPI parses as JSON (application/json or */*+json) nested deeper than
  MAX_JSON_DEPTH is refused (400), instead of a RecursionError deep inside the server.
- An endpoint call (`POST /gradio_api/call/<name>`, `/gradio_api/run/<name>`) must send one
  value per input of the endpoint, and a queued call (`/gradio_api/queue/join`, what the
  browser and gradio_client use) at least one per input. Gradio itself answers a short call
  with an error whose text it hides from the caller (`{"error": null}`): here the caller
  hears which parameters the endpoint takes (422).
- An endpoint that answers a click in the page (its handler takes gr.SelectData: where the
  click was) is refused without the click's event data (422), instead of failing inside
  Gradio with no message.
- A file input (an image) must be what Gradio will accept: its component's data model (the
  check Gradio runs next, whose message it would hide), and an upload of this app, never a
  server path or a URL (Gradio would download it); ui/common.upload_bytes checks it again
  where it is opened.
- `local_only`: a request addressed to another host than this machine, or a POST from another
  origin's page, is refused (403): a web page cannot reach the app through DNS rebinding.

Installed with `demo.launch(app_kwargs={"middleware": [Middleware(RequestLimits, ...)]})` (see
ui/shell.launch_options): FastAPI's own `middleware` argument, so nothing of Gradio's is patched.
"""
from __future__ import annotations

import ipaddress
import json
import re
import typing
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from ui.common import NOT_AN_UPLOAD, upload_path

API_PREFIX = "/gradio_api"
CALL_PATH = re.compile(rf"^{API_PREFIX}/(?:call|run|api)/([^/]+)/?$")
QUEUE_JOIN_PATH = f"{API_PREFIX}/queue/join"


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the cap."""


class RequestLimits:
    """The ASGI middleware. `app` is the next ASGI app; Gradio's App is found in scope["app"]."""

    def __init__(self, app, *, max_body_bytes: int, local_only: bool = False) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.local_only = local_only
        # api_name -> (parameter names, input components, whether it needs a click's event data)
        self._endpoints: dict[str, tuple[list[str], list, bool]] | None = None
        self._by_index: dict[int, str] = {}                     # fn_index -> api_name

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":      # Gradio serves no websocket; lifespan events pass
            await self.app(scope, receive, send)
            return
        refused = _foreign(scope) if self.local_only else None
        declared = Headers(scope=scope).get("content-length")
        if refused:
            refused = _refusal(403, refused)
        elif declared is not None and not declared.isdigit():
            refused = _refusal(400, "Content-Length must be a whole number of bytes")
        elif declared is not None and int(declared) > self.max_body_bytes:
            refused = _refusal(413, self._too_large(int(declared)))
        if refused:
            await refused(scope, receive, send)
            return
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b"")) if message["type"] == "http.request" else 0
            if seen > self.max_body_bytes:
                raise BodyTooLarge()
            return message

        async def tracking_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if scope["method"] == "POST" and _is_json(scope):
                body = await Request(scope, counted).body()
                refused = self._refused_body(scope, body)
                if refused:
                    await refused(scope, receive, send)
                    return
                await self.app(scope, _replay(body, receive), tracking_send)
            else:
                await self.app(scope, counted, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refusal(413, self._too_large(None))(scope, receive, send)
        except ClientDisconnect:     # gone while its body was read: nobody to answer
            pass

    def _too_large(self, size: int | None) -> str:
        limit = f"{self.max_body_bytes / 2**20:g} MiB"
        what = f"{size / 2**20:.1f} MiB; at most {limit}" if size is not None else f"more than {limit}"
        return f"request body too large ({what}): send one image of at most the upload limit per request"

    # --- endpoint calls --------------------------------------------------------------------------

    def _refused_body(self, scope, body: bytes) -> JSONResponse | None:
        """The answer to a JSON body refused here; None to pass it on (anything malformed is left to
        Gradio's own request validation)."""
        try:
            payload = json.loads(body)
        except RecursionError:
            return _refusal(400, TOO_DEEP)
        except (ValueError, UnicodeDecodeError):
            return None
        if _too_deep(payload):
            return _refusal(400, TOO_DEEP)
        call = CALL_PATH.match(scope["path"]) or scope["path"] == QUEUE_JOIN_PATH
        problem = self._call_problem(scope, payload) if call and isinstance(payload, dict) else None
        return _refusal(422, problem) if problem else None

    def _call_problem(self, scope, payload: dict) -> str | None:
        """A one-line message when a call carries the wrong number of inputs or an unusable file, else None."""
        if not isinstance(payload.get("data"), list):
            return None
        self._load_endpoints(scope)
        match = CALL_PATH.match(scope["path"])
        if match:
            name, exact = match.group(1), True
        else:
            name, exact = self._by_index.get(payload.get("fn_index")), False
        if name not in self._endpoints:
            return None
        parameters, components, needs_click = self._endpoints[name]
        if needs_click and (exact or payload.get("event_data") is None):
            return (f"/{name} answers a click in the page and needs the click's event data; "
                    "API callers use the endpoint that takes coordinates or a choice instead")
        got = len(payload["data"])
        if got < len(parameters) or (exact and got > len(parameters)):
            listed = ", ".join(parameters) or "none"
            return (f"/{name} takes {len(parameters)} input{'s' if len(parameters) != 1 else ''} "
                    f"({listed}), in this order; got {got}")
        problems = (_file_problem(*args) for args in zip(parameters, components, payload["data"]))
        return next((problem for problem in problems if problem), None)

    def _load_endpoints(self, scope) -> None:
        if self._endpoints is not None:
            return
        self._endpoints = {}
        blocks = getattr(scope.get("app"), "get_blocks", lambda: None)()
        if blocks is None:
            return
        named = (blocks.get_api_info(all_endpoints=True) or {}).get("named_endpoints") or {}
        for fn_index, fn in blocks.fns.items():
            spec = named.get(f"/{fn.api_name}")
            if spec is not None:
                self._by_index[fn_index] = fn.api_name
                self._endpoints[fn.api_name] = ([p["parameter_name"] for p in spec.get("parameters", [])],
                                                list(fn.inputs), _needs_click(fn.fn))


FILE_FORMS = ('send an upload as {"path": <what POST /gradio_api/upload returned>, "meta": {"_type": '
              '"gradio.FileData"}} or an image as {"url": "data:image/png;base64,...", "meta": {"_type": '
              '"gradio.FileData"}}')
MAX_JSON_DEPTH = 32
TOO_DEEP = f"request body nested deeper than {MAX_JSON_DEPTH} levels: no endpoint takes such a value"


def _file_problem(parameter: str, component, value) -> str | None:
    """Why Gradio would refuse `value` for a file-carrying `component`, or the app not read it."""
    model = getattr(component, "data_model", None)
    if value is None or model is None:
        return None
    known = set(getattr(model, "model_fields", {}))
    if isinstance(value, dict) and known and not value.keys() & known:   # pydantic would fill in defaults
        return f"{parameter}: an object with none of the fields {sorted(known)}; {FILE_FORMS}"
    try:
        model.model_validate(value, context={"validate_meta": True})
    except Exception as e:  # noqa: BLE001 - pydantic's ValidationError, or a model's own ValueError
        errors = e.errors() if hasattr(e, "errors") else [{"msg": str(e), "loc": ()}]
        first = errors[0] if errors else {"msg": type(e).__name__, "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()) if not str(p).startswith("function-"))
        text = " ".join(str(first.get("msg", "")).split())[:160]
        return f"{parameter}{'.' + where if where else ''}: {text}; {FILE_FORMS}"
    if any(upload_path(path) is None for path in _file_paths(value)):
        return f"{parameter}: {NOT_AN_UPLOAD}"
    return None


def _file_paths(value) -> list:
    """The "path" of every FileData-like object inside `value` (its depth is already bounded)."""
    if isinstance(value, dict):
        found = [value["path"]] if value.get("path") is not None else []
        return found + [p for v in value.values() for p in _file_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _file_paths(v)]
    return []


def _too_deep(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests deeper than `limit` (level by level: no recursion)."""
    level = [value]
    for _ in range(limit):
        level = [v for item in level if isinstance(item, (dict, list))
                 for v in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return False
    return True


def is_loopback(host: str | None) -> bool:
    """True when `host` (None: Gradio's default, 127.0.0.1) only accepts connections from this machine."""
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _foreign(scope) -> str | None:
    """Why a request to an app for this machine only is refused (None: it is not)."""
    headers = Headers(scope=scope)
    host, origin = headers.get("host", ""), headers.get("origin")
    why = ("its Train tab and Hub loading are on because it listens on a loopback address "
           "(start it with --allow-training to serve other names)")
    if not _names_this_machine(host):
        return f"this app answers requests addressed to localhost only, not to {host[:80]!r}: {why}"
    if origin is not None and scope["method"] not in ("GET", "HEAD") and not _names_this_machine(origin):
        return f"refused a request from a page of {origin[:80]!r}: {why}"
    return None


def _names_this_machine(text: str) -> bool:
    """Whether a Host header (name[:port]) or an Origin (scheme://name[:port]) names a loopback host."""
    try:
        return is_loopback(urlsplit(text if "//" in text else "//" + text).hostname or "-")
    except ValueError:      # a malformed [IPv6] name
        return False


def _needs_click(fn) -> bool:
    """Whether `fn` takes a gr.SelectData-like argument (an EventData subclass built from the
    click's data; plain gr.EventData needs none)."""
    from gradio import EventData
    try:
        hints = typing.get_type_hints(fn) if fn is not None else {}
    except Exception:  # noqa: BLE001 - unresolvable annotations: not a click handler of ours
        return False
    return any(isinstance(h, type) and issubclass(h, EventData) and h is not EventData for h in hints.values())


def _replay(body: bytes, receive):
    """A `receive` that hands over an already read body once, then the real channel (disconnects)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay():
        return pending.pop() if pending else await receive()

    return replay


def _is_json(scope) -> bool:
    """Whether FastAPI parses the body as JSON: no content type, application/json or application/*+json."""
    kind = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
    return kind in ("", "application/json") or (kind.startswith("application/") and kind.endswith("+json"))


def _refusal(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "detail": message}, status_code=status, headers={"connection": "close"})

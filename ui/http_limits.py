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
        self._endpoints: dict[str, list[str]] | None = None    # api_name -> parameter names
        self._components: dict[str, list] = {}                  # api_name -> input components
        self._by_index: dict[int, str] = {}                     # fn_index -> api_name
        self._clicks: set[str] = set()                          # endpoints that need a click's data

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":      # Gradio serves no websocket; lifespan events pass
            await self.app(scope, receive, send)
            return
        refused = _foreign(scope) if self.local_only else None
        if refused:
            await _refusal(403, refused)(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refusal(400, "Content-Length must be a whole number of bytes")(scope, receive, send)
                return
            if int(declared) > self.max_body_bytes:
                await _refusal(413, self._too_large(int(declared)))(scope, receive, send)
                return
        counted = _Counter(receive, self.max_body_bytes)
        started = False

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            if scope["method"] == "POST" and _is_json(scope):
                body = await counted.read_all()
                status, problem = self._body_problem(scope, body)
                if problem:
                    await _refusal(status, problem)(scope, receive, send)
                    return
                await self.app(scope, _replay(body, receive), tracking_send)
            else:
                await self.app(scope, counted, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refusal(413, self._too_large(None))(scope, receive, send)

    def _too_large(self, size: int | None) -> str:
        limit = f"{self.max_body_bytes / 2**20:g} MiB"
        what = f"{size / 2**20:.1f} MiB; at most {limit}" if size is not None else f"more than {limit}"
        return f"request body too large ({what}): send one image of at most the upload limit per request"

    # --- endpoint calls --------------------------------------------------------------------------

    def _body_problem(self, scope, body: bytes) -> tuple[int, str | None]:
        """(status, one-line message) for a JSON body refused here; (0, None) to pass it on
        (anything malformed is left to Gradio's own request validation)."""
        try:
            payload = json.loads(body)
        except RecursionError:
            return 400, TOO_DEEP
        except (ValueError, UnicodeDecodeError):
            return 0, None
        if _too_deep(payload):
            return 400, TOO_DEEP
        if CALL_PATH.match(scope["path"]) or scope["path"] == QUEUE_JOIN_PATH:
            return 422, self._call_problem(scope, payload)
        return 0, None

    def _call_problem(self, scope, payload) -> str | None:
        """A one-line message when a call carries the wrong number of inputs or an unusable file, else None."""
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            return None
        self._load_endpoints(scope)
        match = CALL_PATH.match(scope["path"])
        if match:
            name, exact = match.group(1), True
        else:
            name, exact = self._by_index.get(payload.get("fn_index")), False
        parameters = self._endpoints.get(name) if name else None
        if parameters is None:
            return None
        if name in self._clicks and (exact or payload.get("event_data") is None):
            return (f"/{name} answers a click in the page and needs the click's event data; "
                    "API callers use the endpoint that takes coordinates or a choice instead")
        got = len(payload["data"])
        if got < len(parameters) or (exact and got > len(parameters)):
            listed = ", ".join(parameters) or "none"
            return (f"/{name} takes {len(parameters)} input{'s' if len(parameters) != 1 else ''} "
                    f"({listed}), in this order; got {got}")
        for parameter, component, value in zip(parameters, self._components.get(name, []), payload["data"]):
            problem = _file_problem(parameter, component, value)
            if problem:
                return problem
        return None

    def _load_endpoints(self, scope) -> None:
        if self._endpoints is not None:
            return
        endpoints: dict[str, list[str]] = {}
        app = scope.get("app")
        blocks = app.get_blocks() if hasattr(app, "get_blocks") else None
        if blocks is not None:
            info = blocks.get_api_info(all_endpoints=True) or {}
            for route, spec in (info.get("named_endpoints") or {}).items():
                endpoints[route.lstrip("/")] = [p["parameter_name"] for p in spec.get("parameters", [])]
            self._by_index = {fn_id: fn.api_name for fn_id, fn in blocks.fns.items()
                              if fn.api_name in endpoints}
            self._clicks = {fn.api_name for fn in blocks.fns.values()
                            if fn.api_name in endpoints and _needs_click(fn.fn)}
            self._components = {fn.api_name: list(fn.inputs) for fn in blocks.fns.values() if fn.api_name in endpoints}
        self._endpoints = endpoints


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


class _Counter:
    """An ASGI `receive` that counts body bytes and raises BodyTooLarge past the cap."""

    def __init__(self, receive, limit: int) -> None:
        self.receive, self.limit, self.seen = receive, limit, 0

    async def __call__(self):
        message = await self.receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                raise BodyTooLarge()
        return message

    async def read_all(self) -> bytes:
        chunks = []
        while True:
            message = await self()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that hands over an already read body once, then the real channel (disconnects)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _is_json(scope) -> bool:
    """Whether FastAPI parses the body as JSON: no content type, application/json or application/*+json."""
    kind = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
    return kind in ("", "application/json") or (kind.startswith("application/") and kind.endswith("+json"))


def _refusal(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "detail": message}, status_code=status, headers={"connection": "close"})

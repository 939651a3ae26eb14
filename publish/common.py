"""What publish.hub and publish.space share: one-line errors, repo ids, the token, the user agent."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

from huggingface_hub import get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

import models

LIBRARY_NAME = "cnn-studio"   # how uploads introduce themselves to the Hub (HfApi user agent)


class HubError(Exception):
    """Something the user must fix; the message is one line."""


def run_command(action: Callable[[], object], refusals: tuple[type[Exception], ...] = (HubError,)) -> int:
    """The tail of each publish CLI: run `action`; a refusal is one line on stderr and exit 1, else 0."""
    try:
        action()
    except refusals as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def user_agent() -> dict:
    """HfApi keyword arguments naming CNN Studio and its version in every request's user agent."""
    return {"library_name": LIBRARY_NAME, "library_version": models.__version__}


def default_code_url() -> str | None:
    """The https URL of this checkout's git remote 'origin' (linked from model cards), if any."""
    try:
        url = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "remote", "get-url", "origin"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    ssh = re.fullmatch(r"git@([^:]+):(.+?)(\.git)?", url)
    if ssh:
        return f"https://{ssh.group(1)}/{ssh.group(2)}"
    return re.sub(r"\.git$", "", url) if url.startswith("https://") else None


def require_token(token: str | None = None) -> str:
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return token


class hub_errors:
    """Turn what the Hub or the network raises into a one-line HubError."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, OfflineModeIsEnabled):
            raise HubError(f"{self.what}: HF_HUB_OFFLINE is set; unset it to reach the Hub") from exc
        if isinstance(exc, HfHubHTTPError):
            status = getattr(getattr(exc, "response", None), "status_code", None)
            lines = str(exc).strip().splitlines()
            detail = getattr(exc, "server_message", None) or (lines[0] if lines else type(exc).__name__)
            hint = {401: " (is the token valid?)", 403: " (does the token have write access here?)"}
            raise HubError(f"{self.what} refused{f' (HTTP {status})' if status else ''}: "
                           f"{' '.join(str(detail).split())}{hint.get(status, '')}") from exc
        transport = type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2")
        if isinstance(exc, (ConnectionError, TimeoutError)) or transport:
            raise HubError(f"{self.what} failed: cannot reach the Hub ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split()) or 'no details'})") from exc
        return False


def check_repo_id(repo_id: str) -> None:
    if not looks_like_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a repo id; use USER/NAME (a branch goes in --revision)")


def looks_like_repo_id(text: str) -> bool:
    if text.count("/") != 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True

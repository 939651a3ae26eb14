"""What publish.hub and publish.space share: one-line errors, repo ids, the token, the user agent."""
from __future__ import annotations

import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from huggingface_hub import get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

import models

REPO_ROOT = Path(__file__).resolve().parents[1]
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
        url = subprocess.run(["git", "-C", str(REPO_ROOT), "remote", "get-url", "origin"],
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


@contextmanager
def hub_errors(what: str):
    """Turn what the Hub or the network raises into a one-line HubError."""
    try:
        yield
    except OfflineModeIsEnabled as e:
        raise HubError(f"{what}: HF_HUB_OFFLINE is set; unset it to reach the Hub") from e
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        lines = str(e).strip().splitlines()
        detail = getattr(e, "server_message", None) or (lines[0] if lines else type(e).__name__)
        hint = {401: " (is the token valid?)", 403: " (does the token have write access here?)"}
        raise HubError(f"{what} refused{f' (HTTP {status})' if status else ''}: "
                       f"{' '.join(str(detail).split())}{hint.get(status, '')}") from e
    except Exception as e:
        if isinstance(e, (ConnectionError, TimeoutError)) or \
                type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2"):
            raise HubError(f"{what} failed: cannot reach the Hub ({type(e).__name__}: "
                           f"{' '.join(str(e).split()) or 'no details'})") from e
        raise


def check_repo_id(repo_id: str) -> None:
    if not looks_like_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a repo id; use USER/NAME (a branch goes in --revision)")


def looks_like_repo_id(text: str) -> bool:
    """USER/NAME as the Hub spells a repo id (huggingface_hub's own check), with the user named."""
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return text.count("/") == 1


def describe(folder: Path, files: list[str] | None = None) -> str:
    """Lines 'size  path' for each file of `folder` (or `files` in it), then the total."""
    files = files or sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    sizes = {name: (folder / name).stat().st_size for name in files}
    width = max([len(f"{s:,}") for s in sizes.values()] + [5])
    lines = [f"  {size:>{width},}  {name}" for name, size in sizes.items()]
    return "\n".join(lines + [f"  {sum(sizes.values()):>{width},}  total, {len(files)} files"])

"""Share runs on the Hugging Face Hub and build the Space that demos them (docs/hub.md).

    python -m publish.hub push RUN_DIR --repo-id USER/NAME [--private] [--revision BRANCH] [--dry-run]
                               [--allow-partial] [--code-url URL]
    python -m publish.hub space OUT_DIR --models REPO_ID ... [--space-id USER/NAME] [--dry-run]

`push` lays the repo out in a temporary folder and uploads it with one `HfApi.upload_folder`,
as timm's `push_to_hf_hub` does: the run's release files (never checkpoint.pt), cnn_studio.py
generated from the app's code (publish/hub_code.py), the project's LICENSE, and the card rendered
for this repo (its snippets load USER/NAME and pin that cnn_studio.py by its SHA-256). Release
files of an earlier push that this one lacks are deleted in the same commit (`delete_patterns`).
A partial run (--limit-train / --limit-val) is refused unless --allow-partial is given.
`space` writes a folder that is a ready Gradio Space (publish/space.py).

The token comes from HF_TOKEN or `hf auth login`. Errors are one line on stderr and exit status 1.
`--dry-run` never touches the network.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects

import models
from cards.card import CARD_FILE, HUB_CODE_FILE, LICENSE_FILE
from models.artifact import CONFIG_FILE, RELEASE_PATTERNS, ArtifactError, load_model
from publish.common import (REPO_ROOT, HubError, check_repo_id, default_code_url, describe, hub_errors,
                            require_token, run_command, user_agent)
from publish.hub_code import code_sha256, hub_code_source
from publish.space import space

# What a CNN Studio model repo holds, and so what a push may replace or delete there.
REPO_PATTERNS = [*RELEASE_PATTERNS, HUB_CODE_FILE, LICENSE_FILE]
# Never uploaded, whatever the patterns say: resume state, temporary files of atomic writes.
NEVER_UPLOAD = ["checkpoint.pt", "*.pt", "*.pth", ".*", "*/.*", "*.tmp", "__pycache__/*"]


def release_files(run_dir: str | os.PathLike) -> list[str]:
    """Paths (relative, POSIX) of the run's regular files that belong in a Hub repo, sorted.

    Matched the way huggingface_hub matches allow_patterns (snapshot_download uses the same
    RELEASE_PATTERNS to download), minus NEVER_UPLOAD. A symlink is never followed out of the run.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HubError(f"{run_dir}: no such run directory")
    every = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink())
    return sorted(filter_repo_objects(every, allow_patterns=RELEASE_PATTERNS, ignore_patterns=NEVER_UPLOAD))


def stage_release(run_dir: str | os.PathLike, folder: str | os.PathLike, *, repo_id: str,
                  allow_partial: bool = False, code_url: str | None = None) -> list[str]:
    """Write the files of the Hub repo `repo_id` (user/name[@revision]) into `folder`; their paths, sorted.

    The weights are checked first (config.json + model.safetensors load strictly), then that the
    run is not a partial (--limit-train/--limit-val) run, unless `allow_partial`. README.md is the
    card rendered for this repo: its snippets load `repo_id` and pin the cnn_studio.py written here
    (the run's own card names CNN Studio's code, which a Hub repo does not have).
    """
    from analysis.stats import comparison_for_run
    from cards import CardError, read_facts, render_card
    from cards.card import subset_flags
    run_dir, folder = Path(run_dir), Path(folder)
    files = release_files(run_dir)
    for required in (CONFIG_FILE, "model.safetensors"):
        if required not in files:
            raise HubError(f"{run_dir / required}: missing; is this a finished run directory?")
    try:
        partial = subset_flags(load_model(run_dir).info)
    except ArtifactError as e:
        raise HubError(f"not a valid release: {' '.join(str(e).split())}") from e
    if partial and not allow_partial:
        raise HubError(f"{run_dir} is a partial run ({', '.join(partial)}): its accuracy describes a subset, "
                       f"not the full dataset; pass --allow-partial to publish it anyway (its card says so and "
                       f"keeps it out of the model-index)")
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / name, folder / name)
    code = hub_code_source(code_url, models.__version__)
    (folder / HUB_CODE_FILE).write_text(code, encoding="utf-8")
    shutil.copyfile(REPO_ROOT / LICENSE_FILE, folder / LICENSE_FILE)
    try:
        card = render_card(read_facts(run_dir, source=repo_id, hub=True, code_url=code_url,
                                      code_sha256=code_sha256(code), comparison=comparison_for_run(run_dir)))
    except CardError as e:
        raise HubError(f"cannot render the model card: {e}") from e
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def push(run_dir: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None, dry_run: bool = False,
         allow_partial: bool = False, code_url: str | None = None, out=None) -> str | None:
    """Upload the release files of `run_dir` to the model repo `repo_id`; the commit URL (None on dry run)."""
    out = out or sys.stdout
    check_repo_id(repo_id)
    where = f"{repo_id} (model repo{', private' if private else ''}, branch {revision or 'main'})"
    with tempfile.TemporaryDirectory(prefix="cnn-studio-push-") as tmp:
        files = stage_release(run_dir, tmp, repo_id=f"{repo_id}@{revision}" if revision else repo_id,
                              allow_partial=allow_partial, code_url=code_url or default_code_url())
        if dry_run:
            left_out = sorted(set(p.relative_to(run_dir).as_posix() for p in Path(run_dir).rglob("*") if p.is_file())
                              - set(files))
            print(f"dry run: would upload to {where}:\n{describe(Path(tmp), files)}", file=out)
            if left_out:
                print(f"not uploaded: {', '.join(left_out)}", file=out)
            return None
        api = HfApi(token=require_token(token), **user_agent())
        config = json.loads((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
        message = f"CNN Studio: {config.get('task', 'model')} ({config.get('variant', 'baseline')}), " \
                  f"run {config.get('run_name', Path(run_dir).name)}"
        with hub_errors(f"upload to {repo_id}"):
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=tmp, revision=revision,
                                     commit_message=message, allow_patterns=REPO_PATTERNS,
                                     delete_patterns=REPO_PATTERNS)
        print(f"uploaded to {where}:\n{describe(Path(tmp), files)}", file=out)
    url = getattr(info, "commit_url", None) or str(info)
    print(url, file=out)
    return url


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m publish.hub",
                                description="Share CNN Studio runs on the Hugging Face Hub.")
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("push", help="upload a run directory's release files to a model repo")
    pp.add_argument("run_dir", metavar="RUN_DIR")
    pp.add_argument("--repo-id", required=True, metavar="USER/NAME")
    pp.add_argument("--private", action="store_true", help="create the repo private (if it does not exist)")
    pp.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created if needed)")
    pp.add_argument("--dry-run", action="store_true", help="list the files and sizes; touch no network")
    pp.add_argument("--allow-partial", action="store_true",
                    help="publish a run trained or evaluated with --limit-train/--limit-val (refused by "
                         "default: its numbers describe a subset; the card says so)")
    pp.add_argument("--code-url", metavar="URL",
                    help="where the CNN Studio code lives, linked from the card (default: this "
                         "checkout's git remote 'origin', if any)")
    sp = sub.add_parser("space", help="write (and optionally upload) a Gradio Space serving Hub models")
    sp.add_argument("out_dir", metavar="OUT_DIR")
    sp.add_argument("--models", nargs="+", required=True, metavar="REPO_ID",
                    help="Hub model repos (USER/NAME, or USER/NAME@COMMIT to pin one) the Space serves")
    sp.add_argument("--space-id", metavar="USER/NAME", help="upload the folder to this Space")
    sp.add_argument("--private", action="store_true", help="create the Space private")
    sp.add_argument("--force", action="store_true", help="replace the Space files in a non-empty OUT_DIR")
    sp.add_argument("--dry-run", action="store_true", help="list what would be written; write and upload nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.command == "push":
        return run_command(lambda: push(args.run_dir, args.repo_id, private=args.private, revision=args.revision,
                                        dry_run=args.dry_run,
                                        allow_partial=args.allow_partial, code_url=args.code_url))
    return run_command(lambda: space(args.out_dir, args.models, space_id=args.space_id, private=args.private,
                                     dry_run=args.dry_run, force=args.force))


if __name__ == "__main__":
    sys.exit(main())

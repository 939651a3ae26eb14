"""Share runs on the Hugging Face Hub and build the Space that demos them.

    python -m publish.hub push RUN_DIR --repo-id USER/NAME [--private] [--revision BRANCH] [--dry-run]
                               [--allow-partial] [--code-url URL]
    python -m publish.hub space OUT_DIR --models REPO_ID ... [--space-id USER/NAME] [--dry-run]

`push` uploads a run directory's release files (models.artifact.RELEASE_PATTERNS: config,
weights, card, curves, history, metrics, predictions, examples, TensorBoard events) in one
commit, never checkpoint.pt, plus cnn_studio.py: the model's code, so that the repo is usable
with torch and torchvision alone (publish/hub_code.py). The card is rendered again for the
repo, so its usage snippet loads "USER/NAME" with that code. A partial run (--limit-train /
--limit-val) is refused unless --allow-partial is given. Files of an earlier push that this run does not have
(old examples, old event files) are deleted in the same commit.

`space` writes a folder that is a ready Gradio Space (publish/space.py): app.py and exactly
the modules and data files it uses, requirements.txt (CPU-only torch) and a README whose YAML
header configures the Space (sdk, sdk_version, python_version, models, preload_from_hub, ...).

The token comes from HF_TOKEN or `hf auth login` (huggingface_hub.get_token()). Errors are
one line on stderr and exit status 1. `--dry-run` never touches the network.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.utils import filter_repo_objects

from models.artifact import CONFIG_FILE, RELEASE_PATTERNS, ArtifactError, load_model
from publish.common import (HubError, check_repo_id, default_code_url, hub_errors, require_token, run_command,
                            user_agent)
from publish.hub_code import HUB_CODE_FILE, hub_code_source
from publish.space import space

CARD_FILE = "README.md"
# Never uploaded, whatever the patterns say: resume state, temporary files of atomic writes.
NEVER_UPLOAD = ["checkpoint.pt", "*.pt", "*.pth", ".*", "*/.*", "*.tmp", "__pycache__/*"]


# --------------------------------------------------------------------------- push


def release_files(run_dir: str | os.PathLike) -> list[str]:
    """Paths (relative, POSIX) of the run's files that belong in a Hub repo, sorted.

    Matched the way huggingface_hub matches allow_patterns (snapshot_download uses the same
    RELEASE_PATTERNS to download), minus NEVER_UPLOAD.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HubError(f"{run_dir}: no such run directory")
    every = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    return sorted(filter_repo_objects(every, allow_patterns=RELEASE_PATTERNS, ignore_patterns=NEVER_UPLOAD))


def left_out_files(run_dir: str | os.PathLike) -> list[str]:
    """The run's files that are not uploaded (checkpoint.pt, run_config.json, ...)."""
    run_dir = Path(run_dir)
    keep = set(release_files(run_dir))
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                  if p.is_file() and p.relative_to(run_dir).as_posix() not in keep)


def release_operations(run_dir: str | os.PathLike, *, repo_id: str | None = None,
                       regenerate_card: bool = True, allow_partial: bool = False,
                       code_url: str | None = None) -> list[CommitOperationAdd]:
    """One CommitOperationAdd per file of the Hub repo, as `create_commit` uploads them.

    The weights are checked first (config.json + model.safetensors load strictly), then that
    the run is not a partial (--limit-train/--limit-val) run, unless `allow_partial`. The repo
    gets the release files plus HUB_CODE_FILE, the model's standalone code. With `repo_id` and
    `regenerate_card`, README.md is the card rendered for that repo (its usage snippet loads
    `repo_id` with torch and torchvision only); otherwise the run's README.md is uploaded as it is.
    """
    from analysis.stats import comparison_for_run
    from cards import CardError, read_facts, render_card
    from cards.card import subset_flags
    run_dir = Path(run_dir)
    files = release_files(run_dir)
    for required in ("config.json", "model.safetensors"):
        if required not in files:
            raise HubError(f"{run_dir / required}: missing; is this a finished run directory?")
    try:
        loaded = load_model(run_dir)
    except ArtifactError as e:
        raise HubError(f"not a valid release: {' '.join(str(e).split())}") from e
    partial = subset_flags(loaded.info)
    if partial and not allow_partial:
        raise HubError(f"{run_dir} is a partial run ({', '.join(partial)}): its accuracy describes a subset, "
                       f"not the full dataset; pass --allow-partial to publish it anyway (its card says so and "
                       f"keeps it out of the model-index)")
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run_dir / name))
           for name in files if not (name == CARD_FILE and repo_id and regenerate_card)]
    ops.append(CommitOperationAdd(path_in_repo=HUB_CODE_FILE,
                                  path_or_fileobj=hub_code_source(code_url).encode("utf-8")))
    if repo_id and regenerate_card:
        try:
            card = render_card(read_facts(run_dir, source=repo_id, hub=True, code_url=code_url,
                                          comparison=comparison_for_run(run_dir)))
        except CardError as e:
            raise HubError(f"cannot render the model card: {e}") from e
        ops.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8")))
    return sorted(ops, key=lambda op: op.path_in_repo)


def stale_operations(existing: list[str], ops: list[CommitOperationAdd]) -> list[CommitOperationDelete]:
    """Deletes for release-pattern files already in the repo that this push does not replace."""
    new = {op.path_in_repo for op in ops}
    stale = [p for p in filter_repo_objects(existing, allow_patterns=RELEASE_PATTERNS) if p not in new]
    return [CommitOperationDelete(path_in_repo=p) for p in sorted(stale)]


def describe_operations(ops: list[CommitOperationAdd]) -> list[str]:
    """Lines 'size  path' for each file, then the total."""
    width = max([len(f"{op.upload_info.size:,}") for op in ops] + [5])
    lines = [f"  {op.upload_info.size:>{width},}  {op.path_in_repo}" for op in ops]
    lines.append(f"  {sum(op.upload_info.size for op in ops):>{width},}  total, {len(ops)} files")
    return lines


def push(run_dir: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None, regenerate_card: bool = True, dry_run: bool = False,
         allow_partial: bool = False, code_url: str | None = None, out=None) -> str | None:
    """Upload the release files of `run_dir` to the model repo `repo_id`; the commit URL (None on dry run)."""
    out = out or sys.stdout
    check_repo_id(repo_id)
    source = f"{repo_id}@{revision}" if revision else repo_id
    ops = release_operations(run_dir, repo_id=source, regenerate_card=regenerate_card,
                             allow_partial=allow_partial, code_url=code_url or default_code_url())
    where = f"{repo_id} (model repo{', private' if private else ''}, branch {revision or 'main'})"
    if dry_run:
        print(f"dry run: would upload to {where}:", file=out)
        print("\n".join(describe_operations(ops)), file=out)
        left_out = left_out_files(run_dir)
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
        deletes = stale_operations(api.list_repo_files(repo_id, revision=revision), ops)
        info = api.create_commit(repo_id, operations=[*ops, *deletes], commit_message=message,
                                 revision=revision, repo_type="model")
    print(f"uploaded to {where}:", file=out)
    print("\n".join(describe_operations(ops)), file=out)
    if deletes:
        print(f"deleted from the repo (not in this run): {', '.join(d.path_in_repo for d in deletes)}", file=out)
    url = getattr(info, "commit_url", None) or str(info)
    print(url, file=out)
    return url


# --------------------------------------------------------------------------- CLI


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m publish.hub",
                                description="Share CNN Studio runs on the Hugging Face Hub.")
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("push", help="upload a run directory's release files to a model repo")
    pp.add_argument("run_dir", metavar="RUN_DIR")
    pp.add_argument("--repo-id", required=True, metavar="USER/NAME")
    pp.add_argument("--private", action="store_true", help="create the repo private (if it does not exist)")
    pp.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created if needed)")
    pp.add_argument("--keep-card", action="store_true",
                    help="upload README.md as it is (default: render the card again for this repo id)")
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
                    help="Hub model repos (USER/NAME[@revision]) the Space serves")
    sp.add_argument("--space-id", metavar="USER/NAME", help="upload the folder to this Space")
    sp.add_argument("--private", action="store_true", help="create the Space private")
    sp.add_argument("--force", action="store_true", help="replace the Space files in a non-empty OUT_DIR")
    sp.add_argument("--dry-run", action="store_true", help="list what would be written; write and upload nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.command == "push":
        return run_command(lambda: push(args.run_dir, args.repo_id, private=args.private, revision=args.revision,
                                        regenerate_card=not args.keep_card, dry_run=args.dry_run,
                                        allow_partial=args.allow_partial, code_url=args.code_url))
    return run_command(lambda: space(args.out_dir, args.models, space_id=args.space_id, private=args.private,
                                     dry_run=args.dry_run, force=args.force))


if __name__ == "__main__":
    sys.exit(main())

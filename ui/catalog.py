"""The models the app serves: local run directories and Hub repos.

At start the newest complete run per (task, variant) is loaded, and every Hub repo asked
for. Older runs are listed and loaded on first use (then kept, a few at a time). A model
that cannot be loaded is listed as "unavailable: reason" and everything else keeps working.
`reload()` looks at the runs folder again (the app calls it on page load, on "Reload models"
and when a run started from the Train tab finishes; `refresh()`, before a model is looked up,
when the folder changed): new runs appear, a newer run becomes its task's default, deleted ones
go. Runs still training (or stopped before their weights were written) are listed apart, with
their progress, never as broken models.

Choices shown to users (and accepted from API callers) are catalog keys such as
`cifar10/20261129-170000` or `hub:user/repo`, never file paths; messages that must name a
file (why a model is unavailable) name it relative to the runs folder (`public_text`).
"""
from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

from models.artifact import (CONFIG_FILE, MANIFEST_FILE, WEIGHTS_FILE, ArtifactError, LoadedModel, Progress, is_hub_id,
                             load_model, read_config, release_file, run_file)
from models.jsonfile import try_read_json
from models.runs import UnfinishedRun, discover_runs, discover_unfinished, run_folders
from models.tasks import BASELINE, HUB_MODELS_ENV, TASKS, Variant

TASK_TITLES = {name: task.title for name, task in TASKS.items()}
VARIANT_TITLES = {variant: variant.title for variant in Variant}


SPACE_README = Path(__file__).resolve().parents[1] / "README.md"   # beside app.py: a Space's lists its models
MAX_EXTRA_LOADED = 4                # older runs kept in memory besides the newest per task/variant
REFRESH_SECONDS = 1.0               # how often a request may look whether the runs folder changed


class ModelUnavailable(Exception):
    """No usable model for a request; the message is one line meant for the user."""


def hub_models(environ=os.environ, readme: Path = SPACE_README) -> list[str]:
    """The Hub repos to serve: $CNN_STUDIO_HUB_MODELS if set, else the `models` of a Space's README
    (beside app.py), each at the commit its `preload_from_hub` line pins (the platform has
    downloaded them there at build time; the loader then finds them in its Hub cache)."""
    listed = environ.get(HUB_MODELS_ENV, "").replace(",", " ").split()
    if listed or not readme.is_file():
        return listed
    from huggingface_hub.repocard import metadata_load
    meta = metadata_load(readme) or {}
    pins = {}
    for entry in meta.get("preload_from_hub") or []:
        repo, *rest = str(entry).split()
        if len(rest) == 2:                 # "repo files commit": pinned to a commit
            pins[repo] = rest[1]
    return [f"{m}@{pins[m]}" if m in pins else m for m in meta.get("models") or [] if isinstance(m, str)]


def public_text(text: str, runs_dir: str | os.PathLike | None = None) -> str:
    """`text` without absolute server paths: a path in the runs folder becomes relative to the
    folder the app was given (`runs/cifar10/<run>/model.safetensors`), the Hugging Face cache
    `<hub cache>`, the working directory `.`, the home folder `~`."""
    replacements = []
    if runs_dir is not None:
        runs = Path(runs_dir)
        shown = runs.name if runs.is_absolute() else runs.as_posix()
        replacements += [(str(runs.resolve()), shown), (str(runs.absolute()), shown)]
    try:
        from huggingface_hub import constants
        replacements.append((str(Path(constants.HF_HUB_CACHE).resolve()), "<hub cache>"))
    except Exception:  # noqa: BLE001 - no hub library: nothing of its cache can appear
        pass
    replacements += [(str(Path.cwd().resolve()), "."), (str(Path.home().resolve()), "~")]
    for prefix, shown in sorted(set(replacements), key=lambda r: -len(r[0])):
        if len(prefix) > 1:            # never rewrite "/" itself
            text = text.replace(prefix + os.sep, shown + "/").replace(prefix, shown)
    return text


def missing_model_message(task: str, variant: str | None = BASELINE) -> str:
    """One line: no model for (task, variant), and the command that trains one (variant None: no model
    of the task at all, and the command of each variant). The variant is named where the task shows
    its variants side by side (cats vs dogs), or it is not the baseline."""
    record = TASKS[task]
    if variant is None:
        commands = " and ".join(f"{record.train_command(v)} ({v.title})" for v in record.variants)
        return f"No {record.title} model is available. To train them, run: {commands}."
    paired = variant != BASELINE or bool(record.labels and len(record.variants) > 1)
    what = f"{record.title} {Variant(variant).title}" if paired else record.title
    return f"No {what} model is available. Train one with: {record.train_command(variant)}"


@dataclass
class ModelEntry:
    key: str                        # what the UI shows and accepts
    source: str                     # run folder or Hub repo id, for load_model()
    kind: str                       # "run" | "hub"
    task: str | None = None         # None for a Hub repo that could not be read
    variant: str = BASELINE
    run_name: str = ""
    created: str = ""
    root: Path | None = None        # folder with the run's files (None until a Hub repo loads)
    loaded: LoadedModel | None = None
    error: str | None = None        # why it is unavailable, one line
    default: bool = False           # the one a tab starts with for its task and variant

    @property
    def available(self) -> bool:
        return self.error is None

    @cached_property
    def quality(self) -> str:
        """How good it is, from its files: '82.0% test accuracy' (the split metrics.json names), with
        ', partial run' when config.json says it saw a subset (--limit-train/--limit-val); '' unknown."""
        metrics, config = try_read_json(self.root, "metrics.json"), try_read_json(self.root, CONFIG_FILE)
        accuracy = metrics.get("accuracy") if isinstance(metrics, dict) else None
        if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool) or not 0 <= accuracy <= 1:
            return ""
        split = " ".join(str(metrics.get("split") or "evaluation").split())[:20]
        partial = isinstance(config, dict) and any(config.get(k) for k in ("limit_train", "limit_val"))
        return f"{accuracy:.1%} {split} accuracy" + ", partial run" * partial

    @property
    def unverified(self) -> bool:
        """Its folder has no SHA256SUMS, so its files cannot be checked for damage."""
        return self.root is not None and run_file(self.root, MANIFEST_FILE) is None

    @property
    def label(self) -> str:
        """Dropdown text: key, variant and quality, e.g. 'catsdogs-re/2026... (Random Erasing) · 91.2% test
        accuracy' (', unverified' after the variant when the folder has no SHA256SUMS)."""
        quality = f" · {self.quality}" if self.quality else ""
        return f"{self.key} ({VARIANT_TITLES.get(self.variant, self.variant)}{', unverified' * self.unverified}){quality}"

    def status(self) -> str:
        if self.error:
            return f"unavailable: {self.error}"
        return ("loaded" if self.loaded is not None else "available (loaded on first use)") + (
            f" · unverified: no {MANIFEST_FILE}, its files cannot be checked for damage" if self.unverified else "")


class Catalog:
    """Every model the app knows, in order: local runs newest first, then Hub repos."""

    def __init__(self, entries: Sequence[ModelEntry] = (), *, device: str = "cpu",
                 runs_dir: Path | None = None) -> None:
        self.entries_ = list(entries)
        self.device = device
        self.runs_dir = runs_dir
        self.unfinished: list[UnfinishedRun] = []   # runs training or stopped, without weights yet
        self._lock = threading.RLock()
        self._extra: OrderedDict[str, None] = OrderedDict()  # lazily loaded keys, oldest first
        self.live_views: dict = {}   # per app built on this catalog: components re-rendered after reload() (ui/live.py)
        self.former_defaults: set[str] = set()   # keys that were a default and are no longer (ui/live.py)
        self._stamp, self._looked = _folder_stamp(runs_dir), time.monotonic()   # the runs folder when last read

    # ------------------------------------------------------------------ building
    @classmethod
    def from_sources(cls, runs_dir: str | os.PathLike | None = "runs", hub_ids: Iterable[str] = (),
                     *, device: str = "cpu") -> "Catalog":
        """Discover runs under `runs_dir`, load the newest per task/variant and every Hub repo."""
        runs_path = Path(runs_dir) if runs_dir is not None else None
        entries = _run_entries(runs_path)
        for repo_id in dict.fromkeys(hub_ids):  # keep order, drop repeats
            entries.append(ModelEntry(key=f"hub:{repo_id}", source=repo_id, kind="hub", run_name=repo_id))
        catalog = cls(entries, device=device, runs_dir=runs_path)
        catalog.unfinished = discover_unfinished(runs_path) if runs_path is not None else []
        for entry in catalog.entries_:
            if entry.kind == "hub":
                catalog._load(entry)
        catalog._choose_defaults()
        return catalog

    def reload(self) -> list[str]:
        """Look at the runs folder again; returns the keys of runs that were not listed before.

        Entries of runs still on disk are kept as they are (a loaded model stays loaded); a new
        run that is the newest of its task and variant is loaded and becomes the default.
        """
        if self.runs_dir is None:
            return []
        with self._lock:
            self._stamp, self._looked = _folder_stamp(self.runs_dir), time.monotonic()
            known = {e.key: e for e in self.entries_ if e.kind == "run"}
            fresh = _run_entries(self.runs_dir)
            # A run that failed to load is tried again (its files may have been completed or fixed).
            runs = [known[e.key] if _same_run(known.get(e.key), e) and not known[e.key].error else e
                    for e in fresh]
            added = [e.key for e in runs if e.key not in known]
            hubs = [e for e in self.entries_ if e.kind == "hub"]
            kept = {e.key for e in runs}
            self._extra = OrderedDict((k, None) for k in self._extra if k in kept)
            defaults = {e.key for e in self.entries_ if e.default}
            for e in runs + hubs:
                e.default = False
            self.entries_ = runs + hubs
            self.unfinished = discover_unfinished(self.runs_dir)
            self._choose_defaults()
            self.former_defaults |= defaults - {e.key for e in self.entries_ if e.default}
            return added

    def add_hub(self, repo_id: str, progress: Progress | None = None) -> ModelEntry:
        """Load the Hub repo `repo_id` (user/name[@revision]) and serve it; `progress` follows the
        download and the digest checks. Raises ModelUnavailable (one line) when it cannot be
        loaded, and then lists nothing new; a repo already listed is loaded again only if it failed."""
        repo_id = str(repo_id or "").strip()
        if not is_hub_id(repo_id):
            raise ModelUnavailable(f"{repo_id[:120]!r} is not a Hub repo id: write it as user/name or "
                                   "user/name@revision")
        listed = self._hub_entry(repo_id)
        if listed is not None and listed.loaded is not None:
            return listed
        fresh = ModelEntry(key=f"hub:{repo_id}", source=repo_id, kind="hub", run_name=repo_id)
        if self._load(fresh, progress) is None:   # outside the lock: a download must not hold up requests
            raise ModelUnavailable(f"hub:{repo_id} is unavailable: {fresh.error}")
        with self._lock:
            listed = self._hub_entry(repo_id)
            if listed is None:
                self.entries_.append(fresh)
            elif listed.loaded is None:
                self.entries_[self.entries_.index(listed)] = fresh
            else:
                return listed                     # another request loaded it meanwhile
            self._choose_defaults()
            return fresh

    def _hub_entry(self, repo_id: str) -> ModelEntry | None:
        return next((e for e in self.entries_ if e.kind == "hub" and e.source == repo_id), None)

    def _choose_defaults(self) -> None:
        # Newest first; when the newest run of a task/variant is broken, the next one serves.
        for entry in self.entries_:
            if entry.kind != "run" or entry.error or self.default_entry(entry.task, entry.variant) is not None:
                continue
            if entry.loaded is not None or self._load(entry) is not None:
                entry.default = True
                self._extra.pop(entry.key, None)   # a default stays loaded
        for entry in self.entries_:   # a loaded run that is no longer a default: one of the few extras
            if entry.kind == "run" and entry.loaded is not None and not entry.default and entry.key not in self._extra:
                self._remember(entry)
        for entry in self.entries_:  # a Hub repo serves a task/variant no local run covers
            if entry.kind == "hub" and entry.loaded is not None \
                    and self.default_entry(entry.task, entry.variant) is None:
                entry.default = True

    def _load(self, entry: ModelEntry, progress: Progress | None = None) -> LoadedModel | None:
        try:
            loaded = load_model(entry.source, device=self.device, progress=progress)
        except Exception as e:  # an ArtifactError, or anything else a broken file can raise: report, keep serving
            text = str(e) if isinstance(e, ArtifactError) else f"{type(e).__name__}: {e}"
            entry.error = public_text(" ".join(text.split()), self.runs_dir)
            return None
        entry.loaded, entry.root = loaded, loaded.root
        vars(entry).pop("quality", None)    # a quality read before its files were known (a Hub repo) is stale
        if entry.kind == "hub":
            entry.task = str(loaded.info.get("task") or "") or None
            entry.variant = str(loaded.info.get("variant") or BASELINE)
            entry.created = str(loaded.info.get("created") or "")
        return loaded

    # ------------------------------------------------------------------ queries
    def entries(self, task: str | None = None, variant: str | None = None, *,
                available_only: bool = False) -> list[ModelEntry]:
        return [e for e in self.entries_
                if (task is None or e.task == task) and (variant is None or e.variant == variant)
                and (not available_only or e.available)]

    def default_entry(self, task: str | None, variant: str | None = BASELINE) -> ModelEntry | None:
        """The (loaded) entry a tab starts with for task and variant; None when there is none."""
        return next((e for e in self.entries_ if e.default and e.task == task and e.variant == variant), None)

    def default_key(self, task: str, variant: str = BASELINE) -> str | None:
        entry = self.default_entry(task, variant)
        return entry.key if entry else None

    def entry(self, key: str) -> ModelEntry:
        self.refresh()
        for e in self.entries_:
            if e.key == key:
                return e
        raise ModelUnavailable(f"unknown model {key!r}; choose one from the list")

    def refresh(self) -> None:
        """reload() when the runs folder changed since it was last read, so that an API caller sees
        every run finished meanwhile (and the newest default). A cheap look, once a second at most."""
        if self.runs_dir is not None and time.monotonic() - self._looked >= REFRESH_SECONDS:
            self._looked = time.monotonic()
            if _folder_stamp(self.runs_dir) != self._stamp:
                self.reload()

    def get(self, key: str | None, task: str, variant: str = BASELINE) -> ModelEntry:
        """The loaded entry for `key` (or the default of task/variant when key is empty).

        Raises ModelUnavailable with a one-line message: no model (and how to train one),
        an unknown key, a model of another task, or one that failed to load.
        """
        self.refresh()
        if not key:
            key = self.default_key(task, variant)
            if key is None:
                raise ModelUnavailable(missing_model_message(task, variant))
        entry = self.entry(key)
        if entry.task != task:
            raise ModelUnavailable(f"{key} is not a {TASK_TITLES.get(task, task)} model")
        with self._lock:
            if entry.loaded is None and entry.error is None:
                self._load(entry)
                if entry.loaded is not None:
                    self._remember(entry)
            elif entry.key in self._extra:
                self._extra.move_to_end(entry.key)
        if entry.loaded is None:
            raise ModelUnavailable(f"{key} is unavailable: {entry.error}")
        return entry

    def _remember(self, entry: ModelEntry) -> None:
        self._extra[entry.key] = None
        while len(self._extra) > MAX_EXTRA_LOADED:
            old, _ = self._extra.popitem(last=False)
            next(e for e in self.entries_ if e.key == old).loaded = None  # stays listed; reloads when chosen again

    def choices(self, task: str, variants: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown: available models of `task`, newest first."""
        return [(e.label, e.key) for e in self.entries(task, available_only=True)
                if variants is None or e.variant in variants]

    def unavailable(self, task: str | None = None) -> list[ModelEntry]:
        """Entries that failed to load: of `task`, or all (including Hub repos of unknown task)."""
        return [e for e in self.entries_ if e.error and (task is None or e.task == task)]

    def with_files(self) -> list[ModelEntry]:
        """Entries whose files can be read (runs, and Hub repos that loaded)."""
        return [e for e in self.entries_ if e.root is not None and e.task]

    def first_task_with_model(self, tasks: Sequence[str]) -> str | None:
        """The first of `tasks` that has a default model (the tab the app opens on)."""
        return next((t for t in tasks if any(e.default and e.task == t for e in self.entries_)), None)

    def status_markdown(self) -> str:
        """A table of every model the app knows, with its status, then the runs still training."""
        if not self.entries_ and not self.unfinished:
            where = f"`{public_text(str(self.runs_dir), self.runs_dir)}`" if self.runs_dir is not None \
                else "the runs folder"
            return (f"No trained models found in {where}. Each tab says which command trains its model "
                    "(or use the Train tab); the Architecture tab works without weights.")
        rows = ["| model | task | accuracy | status |", "| --- | --- | --- | --- |"]
        for e in self.entries_:
            name = f"Hub repo {code(e.source)}" if e.kind == "hub" else f"run {code(e.key)}"
            status = e.status() + (" · default" if e.default else "")
            rows.append(f"| {name} | {plain(TASK_TITLES.get(e.task or '', e.task or '?'))} | {plain(e.quality)} | "
                        f"{plain(status)} |")
        for u in self.unfinished:
            rows.append(f"| run {code(u.key)} | {plain(TASK_TITLES.get(u.task, u.task))} | | {plain(u.describe())} |")
        return "\n".join(rows)


def _run_entries(runs_dir: Path | None) -> list[ModelEntry]:
    """One entry per complete run under `runs_dir`, tasks in a fixed order, newest first within each;
    then one, unavailable with the reason, per folder with weights whose config.json is unusable."""
    refs = discover_runs(runs_dir) if runs_dir is not None else []
    refs = sorted(refs, key=lambda r: (_rank(TASK_TITLES, r.task), _rank(VARIANT_TITLES, r.variant)))
    entries = [ModelEntry(key=ref.key, source=str(ref.path), kind="run", task=ref.task, variant=ref.variant,
                          run_name=ref.run_name, created=ref.created, root=ref.path) for ref in refs]
    listed = {ref.path for ref in refs}
    for folder in run_folders(runs_dir) if runs_dir is not None else []:
        if folder not in listed and run_file(folder, WEIGHTS_FILE) is not None:
            entries.append(_broken_entry(folder, runs_dir))
    return entries


def _broken_entry(folder: Path, runs_dir: Path) -> ModelEntry:
    """A run folder with weights that models.runs cannot read: listed with why (its task and variant
    from the folder's name, as for a run still training)."""
    try:
        read_config(release_file(folder, CONFIG_FILE))
        why = f"{folder / CONFIG_FILE}: names no task or variant of CNN Studio"
    except ArtifactError as e:
        why = str(e)
    task, variant = Variant.from_folder(folder.parent.name)
    return ModelEntry(key=f"{folder.parent.name}/{folder.name}", source=str(folder), kind="run", task=task,
                      variant=variant, run_name=folder.name, error=public_text(" ".join(why.split()), runs_dir))


def _folder_stamp(runs_dir: Path | None) -> list | None:
    """The modification times of runs_dir and its folders two levels down: a run folder created,
    removed, or given its weights (written last, renamed into place) changes one."""
    try:
        folders = (runs_dir, *runs_dir.glob("*"), *runs_dir.glob("*/*"))
        return [(p, p.stat().st_mtime_ns) for p in folders if p.is_dir()]
    except (OSError, AttributeError):   # no runs folder (yet), or a folder removed meanwhile
        return None


def _same_run(old: ModelEntry | None, new: ModelEntry) -> bool:
    """The listed entry still describes the folder (not replaced by another run of the same name)."""
    return old is not None and (old.task, old.variant, old.created, old.run_name) == \
        (new.task, new.variant, new.created, new.run_name)


def _rank(order: dict, key) -> int:
    return list(order).index(key) if key in order else len(order)


def code(text: str) -> str:
    """`text` as one Markdown code span on one line, whatever backticks it holds (a folder's name can)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence, pad = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1), " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plain(text: str) -> str:
    """`text` shown as it is in Markdown, on one line: each character that could start markup escaped."""
    return re.sub(r"([\\`*_<>\[\]|&$~])", r"\\\1", " ".join(str(text).split()))

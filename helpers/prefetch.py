"""Before class: every download the notebooks need, in one place, checked, with a report.

On a machine with internet (the profile decides which GPT-2 sizes are fetched)::

    python -m helpers.prefetch                       # data files + GPT-2 weights into data/
    python -m helpers.prefetch --to /media/usb/data  # ... and copy all of it onto a USB stick

On each student's machine, without internet::

    python -m helpers.prefetch --from /media/usb/data   # copy from the stick into data/, checked
    python -m helpers.prefetch --list                   # what is there, where, and how big

Every copy is verified (sha256 for the data files, a complete safetensors file for weights) and
written under a temporary name first, so a pulled-out stick never leaves a half file behind.
The layout on the stick is the mirror's layout, so ``LLM_DATA_MIRROR=/media/usb/data`` works
too, without copying anything.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from . import data
from .atomic import atomic_path
from .data import REGISTRY, CommandParser, DataError, cache_dir, mirror_dir, one_line
from .model import gpt2_config, model_memory
from .runtime import PROFILES, Profile, active_profile, check_settings
from .validate import check_can_write
from .weights import (
    GPT2_REPOS,
    WEIGHTS_FILE,
    WeightsUnavailable,
    check_safetensors,
    download_gpt2,
    gpt2_folder_name,
    resolve_gpt2_size,
)

MODELS_DIR = "models"  # the base models notebook 06 pretrains, one folder per profile


def gpt2_sizes_for(profile: Profile) -> list[str]:
    """The GPT-2 sizes a profile's notebooks load: small (06, 08) and the one notebook 09 uses."""
    return list(dict.fromkeys(["gpt2-small (124M)", resolve_gpt2_size(profile.instruct_gpt2_size)]))


# ---------------------------------------------------------------------------------------------
# Checking and copying files
# ---------------------------------------------------------------------------------------------


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None when it is."""
    try:
        check_safetensors(path)
    except (OSError, ValueError) as err:
        return str(err)
    return None


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy to a temporary name beside ``target``, then rename: never a half file under it."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def _same_file(a: Path, b: Path) -> bool:
    return b.exists() and a.stat().st_size == b.stat().st_size and (
        a.samefile(b) or data.sha256_of(a) == data.sha256_of(b)
    )


def _copy_model_folder(source: Path, target: Path) -> None:
    """A weights folder (config.json + model.safetensors), checked; the weights file last, as
    its presence is what tells the loaders the folder is there."""
    weights = source / WEIGHTS_FILE
    problem = safetensors_problem(weights)
    if problem:
        raise DataError(f"{weights} is not usable: {problem}. Copy it onto the stick again.")
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in sorted(files, key=lambda p: p.name == WEIGHTS_FILE):
        if not _same_file(path, target / path.name):
            _copy_atomically(path, target / path.name)


def _model_folders(root: Path) -> dict[str, Path]:
    """Relative name -> folder, for every weights folder a mirror-layout folder holds."""
    found = {}
    for size in GPT2_REPOS:
        folder = root / gpt2_folder_name(size)
        if (folder / WEIGHTS_FILE).is_file():
            found[folder.name] = folder
    models = root / MODELS_DIR
    if models.is_dir():
        for folder in sorted(models.iterdir()):
            if (folder / WEIGHTS_FILE).is_file():
                found[f"{MODELS_DIR}/{folder.name}"] = folder
    return found


def copy_tree(source: Path, target: Path, log=print) -> list[str]:
    """Copy every data file and weights folder in ``source`` (mirror layout) into ``target``.

    Checks each before copying and skips what is already there and identical. Returns the
    problems found (empty when everything was copied or already in place).
    """
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source} is not a folder; give the folder that holds the-verdict.txt.")
    files = [source / e.name for e in REGISTRY.values() if (source / e.name).exists()]
    return _copy_all(files, _model_folders(source), Path(target), log)


def _copy_all(files: list[Path], folders: dict[str, Path], target: Path, log) -> list[str]:
    problems = []
    for path in files:
        entry = REGISTRY[path.name]
        if not data.is_valid(path, entry):
            problems.append(f"{path} is corrupted or incomplete (its sha256 differs): not copied.")
            continue
        if not data.is_valid(target / entry.name, entry):
            _copy_atomically(path, target / entry.name)
        log(f"ok       {entry.name}")
    for name, folder in folders.items():
        try:
            _copy_model_folder(folder, target / name)
            log(f"ok       {name}/")
        except DataError as err:
            problems.append(str(err))
    return problems


def export(target: Path, profile: Profile, log=print) -> list[str]:
    """Copy what this machine has (data files, the profile's GPT-2 sizes, notebook 06's base
    models), wherever each is kept, into ``target`` in the mirror layout: a USB stick."""
    files = [data.fetch(e.name, quiet=True) for e in REGISTRY.values() if "missing" != data.status(e.name)]
    folders = {
        gpt2_folder_name(s.size): s.folder
        for s in map(weights_status, gpt2_sizes_for(profile)) if s.folder is not None
    }
    folders.update({k: v for k, v in _model_folders(cache_dir()).items() if k.startswith(MODELS_DIR)})
    return _copy_all(files, folders, Path(target), log)


# ---------------------------------------------------------------------------------------------
# GPT-2 weights: where they are, and fetching them into the data folder
# ---------------------------------------------------------------------------------------------


@dataclass
class WeightsStatus:
    size: str
    where: str  # "mirror", "data folder", "Hugging Face cache" or "missing"
    folder: Path | None
    n_bytes: int | None


def weights_status(size: str) -> WeightsStatus:
    """Where a GPT-2 size would be loaded from right now, without touching the network."""
    size = resolve_gpt2_size(size)
    name = gpt2_folder_name(size)
    for where, root in (("mirror", mirror_dir()), ("data folder", cache_dir())):
        if root is not None and (root / name / WEIGHTS_FILE).is_file():
            return WeightsStatus(size, where, root / name, (root / name / WEIGHTS_FILE).stat().st_size)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(GPT2_REPOS[size], WEIGHTS_FILE)
    except ImportError:
        cached = None
    if isinstance(cached, str):
        return WeightsStatus(size, "Hugging Face cache", Path(cached).parent, Path(cached).stat().st_size)
    return WeightsStatus(size, "missing", None, None)


def fetch_weights(size: str) -> Path:
    """GPT-2 ``size`` into ``data/<repo name>/`` (mirror layout), unless already at hand.

    Raises ``WeightsUnavailable`` with one sentence when it cannot be had.
    """
    status = weights_status(size)
    if status.where in ("mirror", "data folder"):
        return status.folder
    target = cache_dir() / gpt2_folder_name(size)
    if status.where == "Hugging Face cache":  # copy it, so that data/ is a complete mirror
        _copy_model_folder(status.folder, target)
        return target
    return download_gpt2(size, into=target)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _expected_weights_bytes(size: str) -> int:
    """About what a hub file of this size holds: float32, head tied to the embedding."""
    return model_memory(gpt2_config(size), dtype="float32", tied=True)


def report(profile: Profile) -> str:
    """Every file the notebooks may download, its size, and where it stands."""
    rows = [(e.name, e.size_text, data.status(e.name)) for e in REGISTRY.values()]
    for size in gpt2_sizes_for(profile):
        status = weights_status(size)
        n_bytes = status.n_bytes or _expected_weights_bytes(size)
        size_text = ("" if status.n_bytes else "about ") + data._human_size(n_bytes)
        rows.append((f"{gpt2_folder_name(size)}/ ({size})", size_text, status.where))
    for folder in sorted((cache_dir() / MODELS_DIR).glob("*/")):
        if (folder / WEIGHTS_FILE).is_file():
            n_bytes = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
            rows.append((f"{MODELS_DIR}/{folder.name}/ (notebook 06)", data._human_size(n_bytes), "data folder"))
    width = max(len(name) for name, *_ in rows) + 2
    lines = [f"{'file':<{width}}{'size':>15}  where (profile {profile.name})"]
    lines += [f"{name:<{width}}{size:>15}  {where}" for name, size, where in rows]
    lines.append(f"data folder: {cache_dir()}")
    lines.append(f"mirror ({data.MIRROR_ENV}): {mirror_dir() or 'not set'}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(
        prog="python -m helpers.prefetch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--profile", choices=PROFILES, help="whose GPT-2 sizes (default: active)")
    parser.add_argument("--from", dest="source", type=Path, metavar="FOLDER",
                        help="copy everything from this folder (e.g. a USB stick) into data/")
    parser.add_argument("--to", dest="target", type=Path, metavar="FOLDER",
                        help="afterwards, copy everything in data/ to this folder")
    parser.add_argument("--no-weights", action="store_true", help="data files only")
    parser.add_argument("--list", action="store_true", help="only report what is there")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, DataError, OSError) as err:  # settings, folders, a full disk
        print(f"prefetch: error: {one_line(err)}", file=sys.stderr)
        return 2


def check_folders(source: Path | None, target: Path | None) -> None:
    """``--from`` must be a folder that is there, ``--to`` one that can be written: checked
    before anything is fetched, so a typo costs a second, not a download."""
    if source is not None and not source.is_dir():
        problem = "is a file" if source.exists() else "does not exist"
        raise ValueError(
            f"--from {source} {problem}; give the folder that holds the-verdict.txt "
            "(e.g. the USB stick's data folder)."
        )
    if target is not None:
        check_can_write(target / REGISTRY["the-verdict.txt"].name, "--to")


def _run(args) -> int:
    check_settings()
    profile = PROFILES[args.profile] if args.profile else active_profile()
    check_folders(args.source, args.target)
    problems: list[str] = []
    if args.list:
        print(report(profile))
        return 0
    if args.source is not None:
        print(f"Copying from {args.source} into {cache_dir()}:")
        problems += copy_tree(args.source, cache_dir())
    for name in REGISTRY:
        try:
            data.fetch(name, quiet=True)
        except DataError as err:
            problems.append(str(err))
    if not args.no_weights:
        for size in gpt2_sizes_for(profile):
            try:
                fetch_weights(size)
            except (WeightsUnavailable, DataError) as err:
                problems.append(str(err))
    if args.target is not None:
        print(f"Copying everything to {args.target}:")
        problems += export(args.target, profile)
    print()
    print(report(profile))
    for problem in problems:
        print(f"\nPROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

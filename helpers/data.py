"""Every file the project downloads, and one way to get it: ``fetch(name) -> Path``.

Lookup order: the folder named by ``LLM_DATA_MIRROR`` (a USB stick, CI's shared copy), then the
local cache, then the internet. Every file is checked against its sha256, a download is written
to a temporary name and renamed only once verified, and a corrupted cached copy is fetched again.

The data files alone::

    python -m helpers.data fetch --all      # every data file, with a report of what is there
    python -m helpers.data list             # what is cached, in the mirror, or missing

To prepare a classroom (GPT-2 weights and USB sticks included) use ``python -m helpers.prefetch``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_bytes_atomically
from .validate import did_you_mean

MIRROR_ENV = "LLM_DATA_MIRROR"
CACHE_ENV = "LLM_DATA_DIR"
OFFLINE_ENV = "LLM_OFFLINE"


class DataError(RuntimeError):
    """A file could not be provided; the message says what to do about it."""


class SettingError(ValueError):
    """An environment setting (``LLM_OFFLINE``, ``LLM_DATA_DIR``, ...) has a value that cannot
    be used; the message names the variable and the values it takes. A ``ValueError``, not a
    ``DataError``: code that falls back when a file is missing must not swallow a typo."""


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """The boolean environment setting ``name``: one parser for all of them, so that
    ``LLM_OFFLINE=false`` means the same everywhere. Unset or empty is False; a word that is
    neither yes nor no is refused rather than guessed."""
    value = os.environ.get(name, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise SettingError(
        f"{name}={os.environ[name]!r} is not a yes/no value; use one of "
        f"{', '.join(TRUE_WORDS)} to switch it on, or {', '.join(FALSE_WORDS[1:])} (or unset "
        "it) to switch it off."
    )


def one_line(err: BaseException) -> str:
    """An error's message on one line, for a command's single error line."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else err
    if isinstance(err, OSError) and err.strerror:
        text = f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


class CommandParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (``prefetch: error: ...``), exit code 2:
    the usage text it would print before it hides the sentence that matters."""

    def error(self, message: str):
        self.exit(2, f"{command_name(self.prog)}: error: {message}\n")


def command_name(prog: str) -> str:
    """``python -m helpers.data fetch`` -> ``data``: the name its error lines start with."""
    module = next((word for word in prog.split() if word.startswith("helpers.")), prog)
    return module.rpartition(".")[2]


@dataclass(frozen=True)
class DataFile:
    name: str
    url: str
    sha256: str
    size: int  # bytes of the file we keep (for a zip: of the extracted member)
    licence: str
    description: str
    zip_member: str | None = None  # the URL is a zip; keep only this member

    @property
    def size_text(self) -> str:
        return _human_size(self.size)


REGISTRY: dict[str, DataFile] = {
    entry.name: entry
    for entry in [
        DataFile(
            name="the-verdict.txt",
            url="https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt",
            sha256="b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
            size=20_479,
            licence="public domain (Edith Wharton, 1908)",
            description="short story used to train and sample in notebooks 01-06",
        ),
        DataFile(
            name="encoder.json",
            url="https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
            sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            size=1_042_301,
            licence="MIT (OpenAI GPT-2)",
            description="GPT-2 tokenizer: token string -> id",
        ),
        DataFile(
            name="vocab.bpe",
            url="https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
            sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
            size=456_318,
            licence="MIT (OpenAI GPT-2)",
            description="GPT-2 tokenizer: the 50,000 BPE merges in order",
        ),
        DataFile(
            name="SMSSpamCollection",
            url="https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
            sha256="7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
            size=477_907,
            licence="CC BY 4.0 (UCI SMS Spam Collection)",
            description="5,572 SMS messages labelled ham/spam (notebook 08)",
            zip_member="SMSSpamCollection",
        ),
        DataFile(
            name="instruction-data.json",
            url="https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json",
            sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
            size=203_524,
            licence="Apache-2.0",
            description="1,100 instruction/input/output entries (notebook 09)",
        ),
        DataFile(
            name="tinyshakespeare.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            size=1_115_394,
            licence="public domain text (MIT repo)",
            description="1.1 MB of Shakespeare, a larger corpus for BPE and pretraining",
        ),
    ]
}


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def cache_dir() -> Path:
    """Where downloads are kept: ``LLM_DATA_DIR``, else ``data/`` of a source checkout,
    else ``~/.cache/llms-from-scratch`` (e.g. when installed from a wheel in Colab)."""
    if os.environ.get(CACHE_ENV, "").strip():
        path = Path(os.environ[CACHE_ENV].strip()).expanduser()
    else:
        repo_root = Path(__file__).resolve().parent.parent
        if (repo_root / "pyproject.toml").is_file() and (repo_root / "data").is_dir():
            path = repo_root / "data"
        else:
            path = Path.home() / ".cache" / "llms-from-scratch"
    _make_data_folder(path)
    return path


def _make_data_folder(path: Path) -> None:
    """Create the data folder, or say which setting points at a place where it cannot be."""
    value = os.environ.get(CACHE_ENV, "").strip()
    where = f"{CACHE_ENV}={value!r}" if value else "the data folder"
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SettingError(
            f"{where}: {path} cannot be a folder, because {blocker} is a file. Set {CACHE_ENV} "
            "to a folder you can write to."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SettingError(
            f"{where}: cannot create {path} ({err.strerror or type(err).__name__}). Set "
            f"{CACHE_ENV} to a folder you can write to."
        ) from None


def mirror_dir() -> Path | None:
    """The folder ``LLM_DATA_MIRROR`` names (None when unset); it must exist: a mirror that
    is not there (a USB stick not plugged in, a typo) would otherwise quietly send every
    lookup to the internet."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        problem = "is a file" if path.exists() else "does not exist"
        raise SettingError(
            f"{MIRROR_ENV}={value!r} {problem}; it must name the folder that holds the data "
            f"files (the-verdict.txt, ...), e.g. a mounted USB stick. Fix it or unset {MIRROR_ENV}."
        )
    return path


def check_data_settings() -> None:
    """Read every data setting now (offline switch, mirror, data folder), so that a typo in
    one is refused when a command or notebook starts, not when a file is first missing."""
    env_flag(OFFLINE_ENV)
    mirror_dir()
    cache_dir()


def _entry(name: str) -> DataFile:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not a file this project knows; known files: {', '.join(REGISTRY)}."
        ) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_valid(path: Path, entry: DataFile) -> bool:
    """Size first (cheap, catches partial files), then the sha256."""
    return path.is_file() and path.stat().st_size == entry.size and sha256_of(path) == entry.sha256


def fetch(name: str, *, quiet: bool = False) -> Path:
    """Return a local, verified path to the registry file ``name``, downloading if needed."""
    entry = _entry(name)
    mirror = mirror_dir()
    if mirror is not None and (mirror / name).exists():
        candidate = mirror / name
        if is_valid(candidate, entry):
            return candidate
        raise DataError(
            f"The copy of {name} in {MIRROR_ENV} ({candidate}) is corrupted or incomplete "
            f"(its sha256 is not {entry.sha256[:12]}...): replace it with a fresh download "
            f"of {entry.url}, or delete it so the file is fetched from the internet."
        )

    cached = cache_dir() / name
    if cached.exists():
        if is_valid(cached, entry):
            return cached
        if not quiet:
            print(f"{name} in the cache is corrupted or incomplete; fetching it again.")
        cached.unlink()

    if env_flag(OFFLINE_ENV):
        raise DataError(_offline_message(entry, reason=f"{OFFLINE_ENV} is set"))
    _download(entry, cached, quiet=quiet)
    return cached


def read_text(name: str) -> str:
    """The registry file ``name`` as text (UTF-8)."""
    return fetch(name).read_text(encoding="utf-8")


def _offline_message(entry: DataFile, reason: str) -> str:
    return (
        f"Could not download {entry.name} from {entry.url} ({reason}). Download it on a "
        f"machine with internet and put it in {cache_dir()}, or point {MIRROR_ENV} at a "
        f"folder that holds it (see `python -m helpers.prefetch`)."
    )


def _download(entry: DataFile, target: Path, *, quiet: bool) -> None:
    """Download to a temporary file beside ``target``, verify, then rename into place."""
    from tqdm.auto import tqdm

    try:
        response = urllib.request.urlopen(entry.url, timeout=30)
    except (urllib.error.URLError, OSError) as err:
        raise DataError(_offline_message(entry, reason=str(getattr(err, "reason", err)))) from err

    total = int(response.headers.get("Content-Length") or 0) or None
    buffer = io.BytesIO()
    with response, tqdm(
        total=total, unit="B", unit_scale=True, desc=entry.name, disable=quiet
    ) as bar:
        try:
            for block in iter(lambda: response.read(1 << 16), b""):
                buffer.write(block)
                bar.update(len(block))
        except OSError as err:
            raise DataError(_offline_message(entry, reason=f"interrupted: {err}")) from err

    payload = buffer.getvalue()
    if entry.zip_member is not None:
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                payload = archive.read(entry.zip_member)
        except (zipfile.BadZipFile, KeyError) as err:
            raise DataError(
                f"The download from {entry.url} is not a zip holding {entry.zip_member} "
                f"({err}); try again later or provide {entry.name} through {MIRROR_ENV}."
            ) from err

    digest = hashlib.sha256(payload).hexdigest()
    if digest != entry.sha256:
        raise DataError(
            f"The download of {entry.name} from {entry.url} does not match the expected sha256 "
            f"({digest[:12]}... instead of {entry.sha256[:12]}...; {len(payload):,} bytes, "
            f"expected {entry.size:,}). The file may have changed upstream or the download was "
            f"cut short; try again, or provide a verified copy through {MIRROR_ENV}."
        )
    write_bytes_atomically(target, payload)  # the final name only ever holds a verified file


def status(name: str) -> str:
    """Where ``name`` would come from right now: mirror, cache, or nowhere yet."""
    entry = _entry(name)
    mirror = mirror_dir()
    if mirror is not None and (mirror / name).exists():
        return "mirror" if is_valid(mirror / name, entry) else "mirror (corrupted)"
    cached = cache_dir() / name
    if cached.exists():
        return "cached" if is_valid(cached, entry) else "cached (corrupted)"
    return "missing"


def report() -> str:
    """A table of every registry file and where it stands."""
    lines = [f"{'file':<24}{'size':>10}  {'status':<20}licence"]
    for entry in REGISTRY.values():
        lines.append(f"{entry.name:<24}{entry.size_text:>10}  {status(entry.name):<20}{entry.licence}")
    lines.append(f"cache: {cache_dir()}")
    lines.append(f"mirror ({MIRROR_ENV}): {mirror_dir() or 'not set'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m helpers.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = sub.add_parser("fetch", help="download (or copy from the mirror) and verify files")
    fetch_cmd.add_argument("names", nargs="*", help="file names from the registry")
    fetch_cmd.add_argument("--all", action="store_true", help="every file in the registry")
    sub.add_parser("list", help="show every file and where it stands")
    args = parser.parse_args(argv)
    if args.command == "fetch" and not (args.all or args.names):
        parser.error("name files to fetch, or use --all")
    try:
        return _run(args)
    except (SettingError, OSError) as err:  # a bad setting, or a folder that cannot be written
        print(f"data: error: {one_line(err)}", file=sys.stderr)
        return 2


def _run(args) -> int:
    check_data_settings()
    if args.command == "list":
        print(report())
        return 0
    unknown = [name for name in args.names if name not in REGISTRY]
    if unknown:  # before any download: a typo should not wait for the files before it
        raise SettingError(
            f"{unknown[0]!r} is not a file this project knows"
            f"{did_you_mean(unknown[0], REGISTRY)}; known files: {', '.join(REGISTRY)}."
        )
    failures = 0
    for name in list(REGISTRY) if args.all else args.names:
        try:
            path = fetch(name)
            print(f"ok       {name:<24} {path}")
        except DataError as err:
            failures += 1
            print(f"FAILED   {name:<24} {one_line(err)}", file=sys.stderr)
    print()
    print(report())
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a study lives: its folder, its Optuna storage (a journal file in the
folder by default, any SQLAlchemy URL otherwise) and its stored definition.

The folder `<out_dir>/<name>/` holds study.json (the name and the storage),
the default storage optuna.journal, trials/ (one run folder per trial),
results.csv, report.md and figures/.
"""
from __future__ import annotations

import json
import os

from ..atomic import write_text
from ..errors import StorageError, UsageError, require

JOURNAL = "optuna.journal"
MANIFEST = "study.json"
DEFINITION_ATTR = "wgan_fast_study"


def is_url(storage: str) -> bool:
    return "://" in storage


def shown(storage: str) -> str:
    """The storage as it may be printed or written down: without a password."""
    if not is_url(storage):
        return storage
    try:
        from sqlalchemy.engine import make_url  # noqa: PLC0415

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is refused when opened
        return storage.split("@")[-1]


def with_driver(url: str) -> str:
    """postgresql:// with the driver that is installed: SQLAlchemy 2.1 means psycopg (3) by it, the study extra
    installs psycopg2."""
    import importlib.util  # noqa: PLC0415

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def default_storage(study_dir: str) -> str:
    return os.path.abspath(os.path.join(study_dir, JOURNAL))


def open_storage(storage: str):
    """An Optuna storage: a journal file (a path) or an RDB (a SQLAlchemy URL), checked to connect."""
    optuna = require("optuna", "study", "studies")
    if not is_url(storage):
        from optuna.storages.journal import JournalFileBackend  # noqa: PLC0415

        os.makedirs(os.path.dirname(os.path.abspath(storage)), exist_ok=True)
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(storage))
        except OSError as exc:
            raise StorageError(f"storage {storage}: cannot open the journal file ({exc})") from None
    require("sqlalchemy", "study", "a study storage URL")
    last = None
    for _ in range(3):  # several workers creating the tables at once may collide; the second try finds them
        try:
            return optuna.storages.RDBStorage(with_driver(storage), engine_kwargs={"pool_pre_ping": True})
        except ImportError as exc:
            raise StorageError(f"storage {shown(storage)}: its database driver is missing ({exc}); for PostgreSQL "
                               f"pip install 'wgan_fast[study]'") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's and the driver's errors, reported in one line
            last = exc
            if "already exists" not in str(exc) and "duplicate key" not in str(exc):
                break
    first = " ".join(str(last).split())[:300]
    raise StorageError(f"storage {shown(storage)}: cannot connect or set up ({type(last).__name__}: {first}); "
                       f"check the URL, the server and its credentials")


def write_manifest(study_dir: str, name: str, storage: str) -> None:
    os.makedirs(study_dir, exist_ok=True)
    write_text(os.path.join(study_dir, MANIFEST), json.dumps({"name": name, "storage": shown(storage)}, indent=1))


def locate(name_or_dir: str, out_dir: str, storage: str | None) -> tuple[str, str, str]:
    """(study folder, study name, storage) of a NAME_OR_DIR argument."""
    for folder in (name_or_dir, os.path.join(out_dir, name_or_dir)):
        manifest = os.path.join(folder, MANIFEST)
        if os.path.isfile(manifest):
            with open(manifest) as f:
                m = json.load(f)
            stored = m["storage"]
            if storage is None and is_url(stored) and "***" in stored:
                raise UsageError(f"{manifest}: the study's storage needs a password: pass --storage URL")
            return folder, m["name"], storage or stored
    if storage is None:
        raise UsageError(f"no study {name_or_dir!r}: neither a study folder nor {os.path.join(out_dir, name_or_dir)} "
                         f"holds {MANIFEST}; give the folder, --out-dir, or --storage URL with the study's name")
    return os.path.join(out_dir, name_or_dir), name_or_dir, storage


def definition_differences(stored: dict, now: dict, prefix: str = "") -> list[str]:
    """'key (stored: a, now: b)' for each difference, nested keys dotted."""
    out = []
    for key in sorted(set(stored) | set(now)):
        a, b = stored.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += definition_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} (stored: {json.dumps(a)}, now: {json.dumps(b)})")
    return out


def create_or_load(spec, storage_obj, storage: str, resume: bool):
    """The Optuna study of `spec`: created, or loaded when its definition matches (or resume)."""
    import optuna  # noqa: PLC0415

    definition = spec.definition()
    try:
        study = optuna.create_study(study_name=spec.name, storage=storage_obj, load_if_exists=True,
                                    direction=spec.objective["direction"])
        stored = study.user_attrs.get(DEFINITION_ATTR)
    except Exception as exc:  # noqa: BLE001
        raise StorageError(f"storage {shown(storage)}: cannot create or load study {spec.name!r} "
                           f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None
    if stored is not None and stored != definition:
        if not resume:
            diffs = definition_differences(stored, definition)
            raise UsageError(f"study {spec.name!r} in {shown(storage)} was defined otherwise: {'; '.join(diffs)}. "
                             f"Rerun with --resume to continue it with this definition (finished trials are kept), "
                             f"or choose another name")
    if stored != definition:
        study.set_user_attr(DEFINITION_ATTR, definition)
    return study


def load_study(name: str, storage: str):
    """An existing study, for report, status and dashboard."""
    import optuna  # noqa: PLC0415

    storage_obj = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=storage_obj)
    except KeyError:
        raise UsageError(f"no study named {name!r} in {shown(storage)}") from None

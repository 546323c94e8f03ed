"""Lightning's WandbLogger with the defaults a resumable, key-less, killable run needs."""

import ast
import functools
import hashlib
import importlib.util
import logging
import netrc
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from lightning.pytorch.loggers import WandbLogger as _WandbLogger

from deeptune.console import DETAILS

log = logging.getLogger(__name__)


def has_api_key() -> bool:
    """An API key in WANDB_API_KEY or in the netrc file that `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def asked_for() -> bool:
    """W&B can upload (an API key) or the environment asks for it (WANDB_MODE other than
    disabled): what `logger=default` starts W&B on."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    return has_api_key() or mode not in ("", "disabled")


@functools.cache
def init_keywords() -> tuple[str, ...] | None:
    """The keywords wandb.init takes (WandbLogger passes its **kwargs on to it), read from wandb's
    source without importing it (~1.5 s, what logger=default saves when W&B is not started);
    None where the source cannot be read, and nothing is checked."""
    spec = importlib.util.find_spec("wandb")  # a top-level spec: wandb is not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(spec.submodule_search_locations[0]) / "sdk" / "wandb_init.py"
    try:
        tree = ast.parse(source.read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "init":
            args = node.args
            if args.kwarg is not None:  # takes anything
                return None
            return tuple(a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs))
    return None


HINT = (
    "deeptune: W&B is off (no API key): `wandb login` or WANDB_MODE=offline turns it on, "
    "logger=wandb starts it whatever"
)


def import_wandb(scratch: Path) -> None:
    """Import wandb with its scratch folders in `scratch`, not the system temp folder.

    wandb makes its `tmp*wandb-artifacts` and `tmp*wandb-media` folders as it is imported and
    removes them only at exit, so every killed run left two behind in $TMPDIR. Python's tempfile
    (what wandb asks) takes `tempfile.tempdir` over $TMPDIR; it is set for the import only.
    """
    if "wandb" in sys.modules:  # already imported: its folders are made
        return
    scratch.mkdir(parents=True, exist_ok=True)
    before, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        import wandb  # noqa: F401
    finally:
        tempfile.tempdir = before


class WandbLogger(_WandbLogger):
    """A run id fixed by the run folder, and offline logging when there is no API key.

    The id makes a resumed or requeued run continue its own W&B run instead of starting a new
    one; without a key W&B would prompt for one or fail, so it logs offline and says how to
    upload (the run's summary prints the `wandb sync` command: deeptune.run.summary). wandb's
    scratch folders go into <save_dir>/wandb. W&B's own console lines (its run header, history
    and summary: 35 lines) are silenced with its `silent` setting; its warnings and errors
    still print, and its log stays in <save_dir>/wandb/<run>/logs. Every argument is
    Lightning's (and W&B's, through **kwargs: `+logger.wandb.settings.silent=false` brings the
    lines back).
    """

    def __init__(self, save_dir: str = ".", id: str | None = None, offline: bool = False, **kwargs):
        import_wandb(Path(save_dir) / "wandb")
        if id is None:
            id = hashlib.sha1(str(Path(save_dir).resolve()).encode()).hexdigest()[:16]
        if not (offline or os.environ.get("WANDB_MODE") or has_api_key()):
            offline = True
            DETAILS.info(
                "W&B: no API key found, logging offline to %s/wandb; upload later with "
                "`wandb sync %s/wandb/offline-run-*`",
                save_dir,
                save_dir,
            )
        kwargs["settings"] = _silent(kwargs.get("settings"))
        super().__init__(save_dir=save_dir, id=id, offline=offline, **kwargs)
        # Lightning passes anonymous=None whatever it is given, and W&B warns on every run that
        # the setting has no effect (any value but unset does): leave it unset.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


def _silent(settings):
    """W&B's settings (None, a mapping or a wandb.Settings), `silent` unless they say."""
    import wandb

    if settings is None or isinstance(settings, Mapping):
        return wandb.Settings(**{"silent": True, **(settings or {})})
    if "silent" not in settings.model_fields_set:
        settings.silent = True
    return settings

"""The results database URL of a study, kept out of everything Ray writes to its storage.

Tune pickles a run's callbacks and search algorithm into the experiment folder under ``--storage``
(``tuner.pkl``, the searcher's state), which is often shared storage; a database URL there would
carry its password with it. So whatever is pickled holds ``shareable(url)``: the URL with the
password as ``***`` (URLs without a password are kept as they are). The real URL stays in the
study's driver process, ``remember``-ed when ``run_study`` opens the store of ``--db`` (again on
``--resume``), and reaches the trial drivers as a ``tune.with_parameters`` argument, which lives in
Ray's object store and is never written to storage. ``resolve`` turns a shareable URL back into the
real one in the driver process.
"""

from __future__ import annotations

from models.errors import VidcolorError
from study.store.engine import has_password, mask_url

_MASK = "***"
_REAL: dict[str, str] = {}  # shareable URL -> real URL, in this process only


def shareable(url: str | None) -> str | None:
    """The URL to keep in anything pickled or printed: the password masked, if it has one."""
    return mask_url(url) if url and has_password(url) else url


def is_masked(url: str | None) -> bool:
    """Whether ``url`` is a shareable URL whose password was masked (and so cannot connect)."""
    return bool(url) and has_password(url) and mask_url(url) == url and _MASK in url


def remember(url: str | None) -> str | None:
    """Keep the real URL in this process (for ``resolve``); returns its shareable form."""
    shared = shareable(url)
    if url and shared != url:
        _REAL[shared] = url
    return shared


def resolve(url: str | None) -> str | None:
    """The real URL of a shareable one (a URL without a masked password is returned as is)."""
    if not is_masked(url):
        return url
    real = _REAL.get(url)
    if real is None:
        raise VidcolorError(
            f"the password of the results database {url} is not known in this process: "
            "run the study with `vidcolor tune --db URL` (with --resume, the same --db)"
        )
    return real

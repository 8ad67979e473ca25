"""The results store: studies, trials, per-epoch metrics, sample media and Color Turing Test votes.

One SQLAlchemy 2 database holds everything a study produces, so the Tune driver writes it live, the
dashboard reads it, and raters' votes land beside the trials they judge. SQLite is the default
(`$VIDCOLOR_DB` or `sqlite:///vidcolor.db`, WAL mode so readers never block the writer, a busy
timeout, write transactions opened with `BEGIN IMMEDIATE` so concurrent writers queue instead of
failing); PostgreSQL works by URL through psycopg (`pip install vidcolor[postgres]`). The Optuna
study lives in the same database (pass `Store.url` to `optuna.storages.RDBStorage`).
URLs are printed and logged only as `mask_url(url)` (`Store.display_url`): passwords (userinfo and
query string) as `***`.

Each write method is one transaction; read methods return pandas DataFrames. The package imports
neither torch nor Ray (the dashboard imports it at start-up). Parts: `schema` (tables),
`migrations` (the schema's Alembic revisions), `engine` (URL, engine, sessions, bringing a database
to the newest revision on open), `studies`, `trials`, `media`, `ctt`, `campaigns` (and invites),
`rater_sessions`, `pair_votes` (one mixin each; `session_plans` draws a rater session's items).
"""

from study.store.campaigns import CampaignsMixin
from study.store.ctt import CttMixin
from study.store.engine import DEFAULT_URL, has_password, mask_url
from study.store.media import MediaMixin
from study.store.pair_votes import PairVotesMixin
from study.store.rater_sessions import RaterSessionsMixin
from study.store.schema import CTT_MEDIA, STUDY_STATUSES, TRIAL_STATUSES, VOTE_MODES
from study.store.studies import StudiesMixin
from study.store.trials import TrialsMixin

__all__ = [
    "CTT_MEDIA",
    "DEFAULT_URL",
    "STUDY_STATUSES",
    "TRIAL_STATUSES",
    "VOTE_MODES",
    "Store",
    "has_password",
    "mask_url",
]


class Store(StudiesMixin, TrialsMixin, MediaMixin, CttMixin, CampaignsMixin, RaterSessionsMixin, PairVotesMixin):
    """The results database. `Store(url)`; `url` defaults to `$VIDCOLOR_DB` or `sqlite:///vidcolor.db`.
    Commands that only read open it with `Store(url, create=False)`: a database that is not there is
    then an error naming it, and nothing is created.

    Studies and trials are addressed by name: `study` is the study's unique name and `trial_id`
    Ray Tune's trial id (unique within the study). Pickles as its URL, so it can ride along in a
    Tune callback.
    """

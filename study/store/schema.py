"""The results store's tables: the SQLAlchemy declarative base, one ORM row class per table, and the
vocabularies (statuses, modes, media) their columns take.

Every table name starts with `vc_`: the Optuna study lives in the same database and Optuna owns
plain `studies`, `trials`, ... tables. Timestamps are naive UTC (`utcnow`), as SQLite keeps no
time zone. A change here is also an Alembic revision in `study/store/migrations/versions/`, which
brings databases made before it to the same tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TRIAL_STATUSES = ("PENDING", "RUNNING", "TERMINATED", "STOPPED", "ERROR")
FINISHED_STATUSES = ("TERMINATED", "STOPPED", "ERROR")
STUDY_STATUSES = ("RUNNING", "FINISHED", "INTERRUPTED", "ERROR")
MODES = ("min", "max")
CTT_MEDIA = ("clip", "frame")  # what a CTT item shows: mp4 clips or PNG stills
VOTE_MODES = ("2afc", "rating")
SIDES = ("left", "right")


def utcnow() -> dt.datetime:
    """Naive UTC now (SQLite keeps no time zone; every timestamp in the store is UTC)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """The declarative base of every `vc_` table (dict columns map to JSON)."""

    type_annotation_map = {dict[str, Any]: JSON}


class StudyRow(Base):
    """One study: its unique name, spec, objective metric and mode (min|max)."""

    __tablename__ = "vc_studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    objective: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(3))
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="RUNNING")
    storage_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    shards: Mapped[str | None] = mapped_column(Text, nullable=True)


class TrialRow(Base):
    """One Ray Tune trial of a study, with its best and last reported metrics."""

    __tablename__ = "vc_trials"
    __table_args__ = (UniqueConstraint("study_id", "trial_id", name="uq_vc_trial_study_trial"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("vc_studies.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[str] = mapped_column(String(100))  # Ray Tune's trial id
    experiment: Mapped[str | None] = mapped_column(String(100), nullable=True)  # preset name, e.g. exp2
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the full configuration
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # searched hyperparameters only
    status: Mapped[str] = mapped_column(String(20), default="RUNNING")
    started: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    ended: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    best_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    best_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)  # best checkpoint folder
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class EpochRow(Base):
    """One epoch's reported metrics of a trial."""

    __tablename__ = "vc_epochs"
    __table_args__ = (UniqueConstraint("trial_pk", "epoch", name="uq_vc_epoch_trial_epoch"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("vc_trials.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class MediaRow(Base):
    """One sample file (frame or clip) a trial produced."""

    __tablename__ = "vc_media"
    __table_args__ = (UniqueConstraint("trial_pk", "path", name="uq_vc_media_trial_path"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("vc_trials.id", ondelete="CASCADE"), index=True)
    media_type: Mapped[str] = mapped_column(String(40))  # gray_png, pred_png, gt_png, gray_mp4, pred_mp4, gt_mp4
    path: Mapped[str] = mapped_column(Text)
    video_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    clip: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the epoch whose weights rendered it (a study's media_every); None: rendered once at the end
    epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RaterRow(Base):
    """One Color Turing Test rater (named or anonymous)."""

    __tablename__ = "vc_raters"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class CttItemRow(Base):
    """One Color Turing Test item: a real and a colorized file of the same clip or frame."""

    __tablename__ = "vc_ctt_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)  # random: reveals neither side nor trial
    study_id: Mapped[int] = mapped_column(ForeignKey("vc_studies.id", ondelete="CASCADE"), index=True)
    trial_pk: Mapped[int | None] = mapped_column(ForeignKey("vc_trials.id", ondelete="CASCADE"), nullable=True)
    real_path: Mapped[str] = mapped_column(Text)
    fake_path: Mapped[str] = mapped_column(Text)
    medium: Mapped[str] = mapped_column(String(10), default="clip")  # one of CTT_MEDIA
    is_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    video_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    clip: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame: Mapped[int | None] = mapped_column(Integer, nullable=True)  # frame index for medium "frame"
    split: Mapped[str | None] = mapped_column(String(40), nullable=True)  # test | val | legacy
    source: Mapped[str | None] = mapped_column(Text, nullable=True)  # the original video (manifest source)
    # False when the original is black and white (legacy footage): no "which is real" pair, the item
    # is only shown in the 1-5 rating mode (the colorized clip alone)
    real_is_color: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class CttVoteRow(Base):
    """One rater's vote on one CTT item (2afc choice or 1-5 rating)."""

    __tablename__ = "vc_ctt_votes"
    __table_args__ = (
        UniqueConstraint("rater_id", "item_id", name="uq_vc_vote_rater_item"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_vc_vote_rating"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[str] = mapped_column(ForeignKey("vc_raters.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("vc_ctt_items.id", ondelete="CASCADE"), index=True)
    choice: Mapped[str | None] = mapped_column(String(5), nullable=True)  # displayed side picked: left|right
    picked_real: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # False = fooled
    response_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1-5 naturalness
    mode: Mapped[str] = mapped_column(String(10), default="2afc")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class CampaignRow(Base):
    """A Color Turing Test campaign: a study's protocol (task, display time, session length,
    practice, share of attention checks, trials), which raters join through invite tokens."""

    __tablename__ = "vc_ctt_campaigns"
    __table_args__ = (UniqueConstraint("study_id", "name", name="uq_vc_campaign_study_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("vc_studies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(10))  # one of VOTE_MODES
    display_s: Mapped[float] = mapped_column(Float)  # each item shown this long (0 = until answered)
    session_items: Mapped[int] = mapped_column(Integer)
    practice_items: Mapped[int] = mapped_column(Integer)  # with feedback, never counted
    attention_share: Mapped[float] = mapped_column(Float)
    trial_ids: Mapped[Any | None] = mapped_column(JSON, nullable=True)  # None: every trial with items
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # recruiting (study.ctt.rater_app): the consent page's text, the codes a rater ends with, where
    # to send them, the URL parameters carrying their ids ({"participant": "PROLIFIC_PID", ...})
    consent_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    completion_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    screened_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    completion_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    id_params: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    screen: Mapped[bool] = mapped_column(Boolean, default=False)  # the colour-vision screen first
    # the practice items (or "a|b" pairs), drawn once when the campaign is made: never counted in it
    practice_uids: Mapped[Any | None] = mapped_column(JSON, nullable=True)


class InviteRow(Base):
    """An invite link's token: one use or `max_uses` (None = any number of rater sessions)."""

    __tablename__ = "vc_ctt_invites"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("vc_ctt_campaigns.id", ondelete="CASCADE"), index=True)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # None: never
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RaterSessionRow(Base):
    """One rater's session of a campaign, opened through an invite: its own rater id (names are
    display only), the items it shows in order (practice first) and how far it got."""

    __tablename__ = "vc_ctt_sessions"
    __table_args__ = (Index("uq_vc_ctt_sessions_participant", "campaign_id", "participant_id", unique=True),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # random, the rater's handle
    campaign_id: Mapped[int] = mapped_column(ForeignKey("vc_ctt_campaigns.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(ForeignKey("vc_ctt_invites.token", ondelete="CASCADE"), index=True)
    rater_id: Mapped[str] = mapped_column(ForeignKey("vc_raters.id", ondelete="CASCADE"), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    plan: Mapped[Any] = mapped_column(JSON)  # item uids: the practice ones, then the counted ones
    practice: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # when the current item was first shown: the display limit counts from here, so a reload of
    # the page does not show it again for another display time
    shown_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    started: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # the browser's: sha256 of the secret in its HTTP-only cookie (the secret itself is never stored)
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True, index=True)
    participant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # a platform's ids
    external_study: Mapped[str | None] = mapped_column(String(200), nullable=True)
    external_session: Mapped[str | None] = mapped_column(String(200), nullable=True)
    seed: Mapped[str | None] = mapped_column(String(32), nullable=True)  # draws each item's sides
    consented: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    screen_passed: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # the colour screen
    screened_out: Mapped[bool] = mapped_column(Boolean, default=False)


class CttPairVoteRow(Base):
    """One rater's pairwise vote: of two colorizations of the same source (items a and b, two
    trials' fake sides), which looks more natural (`winner_id`, one of the two)."""

    __tablename__ = "vc_ctt_pair_votes"
    __table_args__ = (UniqueConstraint("rater_id", "item_a_id", "item_b_id", name="uq_vc_pair_vote"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[str] = mapped_column(ForeignKey("vc_raters.id", ondelete="CASCADE"), index=True)
    item_a_id: Mapped[int] = mapped_column(ForeignKey("vc_ctt_items.id", ondelete="CASCADE"), index=True)
    item_b_id: Mapped[int] = mapped_column(ForeignKey("vc_ctt_items.id", ondelete="CASCADE"), index=True)
    winner_id: Mapped[int] = mapped_column(ForeignKey("vc_ctt_items.id", ondelete="CASCADE"))
    choice: Mapped[str | None] = mapped_column(String(10), nullable=True)  # the side picked: left | right
    response_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

"""Connecting to Ray: token authentication and a local Ray sized to the machine.

Ray 2.59+ turns token authentication on for every cluster it starts (the token is written to
``~/.ray/auth_token``); a client that joins one by address needs ``RAY_AUTH_MODE=token`` in its
environment, and Ray reads that variable when it is first imported. ``configure_auth()`` sets it
(an explicit setting, e.g. ``disabled`` for a cluster without auth, wins). Importing a vidcolor
module never sets it: the CLI calls it before any command module is imported, and ``init_ray``
(which ``run_study`` and ``run_training`` call) before importing Ray. Code of your own that
imports Ray before calling them should call ``configure_auth()`` first.
"""

from __future__ import annotations

import logging
import os

AUTH_MODE_VAR = "RAY_AUTH_MODE"


def configure_auth() -> None:
    """``RAY_AUTH_MODE=token`` unless the environment already says otherwise."""
    os.environ.setdefault(AUTH_MODE_VAR, "token")


def init_ray(address: str | None = None, *, num_cpus: int | None = None, **kwargs) -> bool:
    """Connect to ``address`` or start a local Ray with the dashboard on (its State API lets Ray
    Train free the placement groups of stopped trials). Returns whether this call started or
    joined Ray (False when Ray was already initialized)."""
    configure_auth()
    import ray

    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.WARNING)
    if address:
        # the token comes from ~/.ray/auth_token (on another machine copy the head's there, or set
        # RAY_AUTH_TOKEN)
        ray.init(address=address, log_to_driver=False, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=True, log_to_driver=False, **kwargs)
    return True

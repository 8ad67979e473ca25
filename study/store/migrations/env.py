"""Alembic's environment for the results store's revisions: they run on the connection, and inside
the transaction, that `study.store.migrations` hands over in `config.attributes["connection"]`,
and the revision is recorded in `vc_alembic_version` (Optuna's tables use `alembic_version`)."""

from alembic import context

from study.store.migrations import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "the results store's revisions run through study.store.migrations.bring_to_head, "
        "on a connection (there is no alembic.ini and no offline --sql mode)"
    )
# SQLite's DDL is transactional too once pysqlite's own transaction handling is off, as the store's
# engine has it: every revision runs in the caller's one transaction on both databases
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()

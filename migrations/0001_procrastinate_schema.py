"""
Install procrastinate's schema from the installed package, and record which of the
package's own migration files that schema already contains.

The SQL is read from the installed procrastinate at migration time (never a pasted copy).
procrastinate's schema.sql is the sum of every file in procrastinate/sql/migrations/ of the
same release, so those file names are recorded as applied in
loyverse.procrastinate_migrations; `loyverse-sync db migrate` later applies, exactly once,
any newer file that an upgraded procrastinate ships (see loyverse_sync/db.py).
"""

from yoyo import step

__depends__: set[str] = set()


def apply_step(conn):  # type: ignore[no-untyped-def]
    from loyverse_sync import db

    db.install_procrastinate_schema(conn)


def rollback_step(conn):  # type: ignore[no-untyped-def]
    from loyverse_sync import db

    db.uninstall_procrastinate_schema(conn)


steps = [step(apply_step, rollback_step)]

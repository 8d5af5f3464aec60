"""Schema versions: ordered migrations, the version kept in SQLite's `PRAGMA user_version`.

A file's user_version is the number of migrations applied to it. `migrate` applies the missing
ones in order inside one write transaction (BEGIN IMMEDIATE) and reads the version again once it
holds the lock, so processes starting together after an upgrade migrate once and never race:
the others wait on the lock, then find nothing left to do. SQLite DDL is transactional, so a
failed step leaves the file as it was. Statements run one by one: `executescript` would commit.

Append a migration to change the schema; never edit, reorder or remove one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

from storage.errors import SchemaTooNew
from storage.sqlite.schema import ADDED_COLUMNS, INDEXES, TABLES

Migration = Callable[[sqlite3.Connection], None]


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time (a trigger's body stays in one piece)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"an incomplete statement ends the script: {pending.strip()!r}")


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute a script's statements inside the caller's transaction."""
    for statement in statements(script):
        conn.execute(statement)


def baseline(conn: sqlite3.Connection) -> None:
    """1: the schema of the first versioned release; files made before it already hold tables."""
    run_script(conn, TABLES)  # IF NOT EXISTS: a file made before versions keeps its tables
    for table, column, definition in ADDED_COLUMNS:  # which such a file may have without these
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    run_script(conn, INDEXES)


def worker_heartbeats(conn: sqlite3.Connection) -> None:
    """2: the `workers` table, one heartbeat row per worker process."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS workers (owner TEXT PRIMARY KEY, host TEXT NOT NULL,"
        " pid INTEGER NOT NULL, started_at REAL NOT NULL, beat_at REAL NOT NULL,"
        " jobs_done INTEGER NOT NULL DEFAULT 0, stopped INTEGER NOT NULL DEFAULT 0)"
    )


def risk_facts(conn: sqlite3.Connection) -> None:
    """3: where a payment was made and what the risk rules decided; a user's usual area set by
    staff; a frame's ciphertext digest (the same counter with another ciphertext is a reused
    nonce); inbound SMS by time (the dashboard counts rate-limit refusals)."""
    run_script(
        conn,
        """
ALTER TABLE transactions ADD COLUMN lat REAL;
ALTER TABLE transactions ADD COLUMN lon REAL;
ALTER TABLE transactions ADD COLUMN risk TEXT NOT NULL DEFAULT '';
ALTER TABLE frames ADD COLUMN digest TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN area_lat REAL;
ALTER TABLE users ADD COLUMN area_lon REAL;
CREATE INDEX IF NOT EXISTS inbound_sms_time ON inbound_sms (received_at);
""",
    )


def spending_totals(conn: sqlite3.Connection) -> None:
    """4: running spending totals, one row per payer (made from the transactions on first use),
    and the index that finds a payer's first payment to a payee without reading the others."""
    run_script(
        conn,
        """
CREATE TABLE IF NOT EXISTS spending (
    payer_id TEXT PRIMARY KEY, day_start REAL NOT NULL, day_amount INTEGER NOT NULL,
    month_start REAL NOT NULL, month_amount INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS transactions_payer_payee
    ON transactions (payer_id, payee, created_at, state);
""",
    )


LIVE = "('PENDING', 'PROCESSING', 'SUCCESS', 'FLAGGED')"  # committed money (ledger.COMMITTED)


def payees_paid(conn: sqlite3.Connection) -> None:
    """5: per payer and payee, when the payer's newest committed payment to them was made, kept
    by triggers in the same transaction as every insert and state change of a transaction: the
    velocity rule reads the payees of the last hour from it by index (as many rows as payees),
    where it read every payment of the hour."""
    run_script(
        conn,
        f"""
CREATE TABLE IF NOT EXISTS payees_paid (
    payer_id TEXT NOT NULL, payee TEXT NOT NULL, last_at REAL NOT NULL,
    PRIMARY KEY (payer_id, payee)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS payees_paid_time ON payees_paid (payer_id, last_at);
INSERT OR REPLACE INTO payees_paid (payer_id, payee, last_at)
    SELECT payer_id, payee, MAX(created_at) FROM transactions
    WHERE payer_id IS NOT NULL AND payee IS NOT NULL AND state IN {LIVE}
    GROUP BY payer_id, payee;
CREATE TRIGGER IF NOT EXISTS payees_paid_on_insert AFTER INSERT ON transactions
WHEN NEW.payer_id IS NOT NULL AND NEW.payee IS NOT NULL AND NEW.state IN {LIVE}
BEGIN
    INSERT INTO payees_paid (payer_id, payee, last_at)
        VALUES (NEW.payer_id, NEW.payee, NEW.created_at)
        ON CONFLICT (payer_id, payee) DO UPDATE SET last_at = MAX(last_at, excluded.last_at);
END;
CREATE TRIGGER IF NOT EXISTS payees_paid_on_state AFTER UPDATE OF state ON transactions
WHEN NEW.payer_id IS NOT NULL AND NEW.payee IS NOT NULL
    AND (OLD.state IN {LIVE}) != (NEW.state IN {LIVE})
BEGIN
    DELETE FROM payees_paid WHERE payer_id = NEW.payer_id AND payee = NEW.payee;
    INSERT INTO payees_paid (payer_id, payee, last_at)
        SELECT payer_id, payee, created_at FROM transactions
        WHERE payer_id = NEW.payer_id AND payee = NEW.payee AND state IN {LIVE}
        ORDER BY created_at DESC LIMIT 1;
END;
""",
    )


# a payment of NEW's pair that holds committed money: the pair's row made or moved on
COUNT_IN = """    INSERT INTO payees_paid (payer_id, payee, last_at, first_at, amount)
        VALUES (NEW.payer_id, NEW.payee, NEW.created_at, NEW.created_at, NEW.amount)
        ON CONFLICT (payer_id, payee) DO UPDATE SET last_at = MAX(last_at, excluded.last_at),
            first_at = MIN(first_at, excluded.first_at), amount = amount + excluded.amount;
"""


def payee_totals(conn: sqlite3.Connection) -> None:
    """6: beside `last_at`, per payer and payee, the payer's first committed payment to them
    and the committed paise in all (made from the transactions once, then kept by the same
    triggers, now one for a payment that becomes committed and one for a payment that stops
    being committed): a new payee's committed 24 hours is then one row (every committed payment
    to a payee first paid in the last 24 hours is within them), where it read every payment the
    payer made to them."""
    run_script(
        conn,
        f"""
ALTER TABLE payees_paid ADD COLUMN first_at REAL NOT NULL DEFAULT 0;
ALTER TABLE payees_paid ADD COLUMN amount INTEGER NOT NULL DEFAULT 0;
UPDATE payees_paid SET (first_at, amount) = (
    SELECT COALESCE(MIN(created_at), payees_paid.last_at), COALESCE(SUM(amount), 0)
    FROM transactions
    WHERE payer_id = payees_paid.payer_id AND payee = payees_paid.payee AND state IN {LIVE});
DROP TRIGGER IF EXISTS payees_paid_on_insert;
DROP TRIGGER IF EXISTS payees_paid_on_state;
CREATE TRIGGER IF NOT EXISTS payees_paid_on_insert AFTER INSERT ON transactions
WHEN NEW.payer_id IS NOT NULL AND NEW.payee IS NOT NULL AND NEW.state IN {LIVE}
BEGIN
{COUNT_IN}END;
CREATE TRIGGER IF NOT EXISTS payees_paid_on_commit AFTER UPDATE OF state ON transactions
WHEN NEW.payer_id IS NOT NULL AND NEW.payee IS NOT NULL
    AND OLD.state NOT IN {LIVE} AND NEW.state IN {LIVE}
BEGIN
{COUNT_IN}END;
CREATE TRIGGER IF NOT EXISTS payees_paid_on_uncommit AFTER UPDATE OF state ON transactions
WHEN NEW.payer_id IS NOT NULL AND NEW.payee IS NOT NULL
    AND OLD.state IN {LIVE} AND NEW.state NOT IN {LIVE}
BEGIN
    DELETE FROM payees_paid WHERE payer_id = NEW.payer_id AND payee = NEW.payee
        AND NOT EXISTS (SELECT 1 FROM transactions WHERE payer_id = NEW.payer_id
            AND payee = NEW.payee AND state IN {LIVE});
    UPDATE payees_paid SET amount = amount - NEW.amount,
        first_at = (SELECT created_at FROM transactions WHERE payer_id = NEW.payer_id
            AND payee = NEW.payee AND state IN {LIVE} ORDER BY created_at LIMIT 1),
        last_at = (SELECT created_at FROM transactions WHERE payer_id = NEW.payer_id
            AND payee = NEW.payee AND state IN {LIVE} ORDER BY created_at DESC LIMIT 1)
        WHERE payer_id = NEW.payer_id AND payee = NEW.payee;
END;
""",
    )


# Version n is MIGRATIONS[n - 1]; read at call time, so a test may add steps.
MIGRATIONS: tuple[Migration, ...] = (
    baseline,
    worker_heartbeats,
    risk_facts,
    spending_totals,
    payees_paid,
    payee_totals,
)


def latest() -> int:
    """The schema version this code writes and reads."""
    return len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    """The file's schema version (0: never versioned, or new and empty)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def refuse_newer(conn: sqlite3.Connection, name: str) -> int:
    """The file's version; SchemaTooNew if a newer release migrated it past this code."""
    found = user_version(conn)
    if found > latest():
        raise SchemaTooNew(
            f"{name} is at schema version {found}, newer than this release knows ({latest()}):"
            " run the release that migrated it, or restore a backup made before; left unchanged"
        )
    return found


def migrate(conn: sqlite3.Connection, name: str) -> int:
    """Bring the file to the latest version; returns how many migrations this call applied."""
    if refuse_newer(conn, name) == latest():
        return 0  # every start but the first after an upgrade: no write lock taken
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = refuse_newer(conn, name)  # again under the lock: another process may have won
        for step in MIGRATIONS[found:]:
            step(conn)
        if found < latest():
            conn.execute(f"PRAGMA user_version = {latest()}")
            # the same number, for whoever reads the meta table; never exported (BACKEND_META)
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(latest()).encode(),),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return latest() - found

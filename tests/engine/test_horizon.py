"""The cleanup horizon: who holds the server's oldest snapshot, and for how long."""

from __future__ import annotations

from datetime import timedelta

from jobrunner import horizon
from jobrunner.db.pool import Pool
from jobrunner.db.queries import SnapshotHolder
from tests.support.snapshots import held_snapshot


async def test_a_held_snapshot_is_found_with_its_session(db_dsn: str, pool: Pool) -> None:
    async with held_snapshot(db_dsn, pool, for_at_least=0.2) as pid:
        async with pool.acquire() as conn:
            found = await horizon.read(conn, warn_after=3600)
        assert found.holder is not None and found.holder.pid == pid
        assert found.holder.holder == "session" and found.holder.state == "idle in transaction"
        assert "count(*)" in (found.holder.query or "")
        assert found.held_seconds >= 0.2 and not found.too_old  # an hour's threshold
    async with pool.acquire() as conn:
        after = await horizon.read(conn, warn_after=3600)
    assert after.holder is None or after.holder.pid != pid


def test_the_description_names_the_holder_and_the_way_out() -> None:
    session = SnapshotHolder(
        holder="session",
        pid=4242,
        user="report",
        application_name="psql",
        client_addr="10.0.0.5",
        state="idle in transaction",
        query="SELECT *\n   FROM big_table",
        held_for=timedelta(minutes=4, seconds=12),
        xmin_age=90_000,
    )
    line = horizon.describe(session)
    assert line.startswith("session pid 4242 (report, psql, from 10.0.0.5, idle in transaction)")
    assert "held its snapshot for 4m12s" in line and "SELECT * FROM big_table" in line
    assert "pg_terminate_backend(4242)" in horizon.remedy(session)
    prepared = SnapshotHolder(
        "prepared transaction", None, "app", "tx-1", None, "prepared", None, timedelta(hours=2), 5
    )
    assert "prepared transaction 'tx-1'" in horizon.describe(prepared)
    assert "2h00m" in horizon.describe(prepared)
    assert "ROLLBACK PREPARED 'tx-1'" in horizon.remedy(prepared)

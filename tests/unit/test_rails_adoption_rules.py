"""The rules of adopting a Rails database, without a server: reading `schema_migrations` against
the chain, comparing two normalized dumps, and how a refusal reads for the operator."""

from __future__ import annotations

import pytest

from rayces.controller.outcomes import REASON_OF_KIND
from rayces.migrations.adoption import check_rails_versions, compare_schemas, schema_shape
from rayces.migrations.results import ErrorKind, ExitCode, MigrationResult

CHAIN = ["20240606034427", "20250713000001", "20250713000002", "20250713000003"]


@pytest.mark.parametrize(
    ("versions", "revision", "rails_only", "problems"),
    [
        pytest.param(CHAIN[:1], CHAIN[0], (), 0, id="baseline"),
        pytest.param(list(reversed(CHAIN[:3])), CHAIN[2], (), 0, id="prefix-in-any-order"),
        pytest.param(CHAIN, CHAIN[3], (), 0, id="whole-chain"),
        pytest.param([*CHAIN[:2], "20991231000000"], CHAIN[1], ("20991231000000",), 0, id="later"),
        pytest.param([CHAIN[0], CHAIN[2]], CHAIN[2], (), 1, id="gap"),
        pytest.param([CHAIN[1]], CHAIN[1], (), 1, id="no-baseline"),
        pytest.param([CHAIN[0], "20250101000000"], CHAIN[0], (), 1, id="unknown-in-between"),
        pytest.param([CHAIN[0], "not-a-version"], CHAIN[0], (), 1, id="not-a-timestamp"),
        pytest.param([], None, (), 0, id="empty"),
        pytest.param(["20991231000000"], None, ("20991231000000",), 1, id="only-later"),
    ],
)
def test_rails_versions_against_the_chain(
    versions: list[str], revision: str | None, rails_only: tuple[str, ...], problems: int
) -> None:
    record = check_rails_versions(versions, CHAIN)
    assert record.revision == revision
    assert record.rails_only_versions == rails_only
    assert len(record.problems) == problems, record.problems


EXPECTED = """
CREATE TABLE public.likes (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    note character varying DEFAULT 'x'::character varying,
    created_at timestamp(6) without time zone NOT NULL
);

ALTER TABLE ONLY public.likes ALTER COLUMN id SET DEFAULT nextval('public.likes_id_seq'::regclass);

ALTER TABLE ONLY public.likes
    ADD CONSTRAINT fk_likes_user FOREIGN KEY (user_id) REFERENCES public.users(id);

CREATE INDEX index_likes_on_user_id ON public.likes USING btree (user_id);

CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    AS $$SELECT 1;$$;
"""


def test_identical_dumps_match() -> None:
    assert compare_schemas(schema_shape(EXPECTED), schema_shape(EXPECTED)).differences == ()


def test_each_difference_is_named() -> None:
    live = (
        EXPECTED.replace("    user_id bigint NOT NULL,\n", "")
        .replace("note character varying DEFAULT", "note character varying(255) DEFAULT")
        .replace(
            "created_at timestamp(6) without time zone NOT NULL",
            "created_at timestamp(3) with time zone",
        )
        .replace("CREATE INDEX index_likes_on_user_id", "CREATE INDEX index_likes_by_user")
        .replace("SELECT 1;", "SELECT 2;")
        .replace("nextval('public.likes_id_seq'", "nextval('public.other_seq'")
    )
    differences = compare_schemas(schema_shape(live), schema_shape(EXPECTED)).differences
    assert set(differences) == {
        "likes.user_id: missing",
        "likes.note: type varchar(255), expected varchar",
        "likes.created_at: type timestamptz(3), expected timestamp(6)",
        "likes.created_at: nullable, expected NOT NULL",
        "likes.id: default nextval('public.other_seq'::regclass), "
        "expected nextval('public.likes_id_seq'::regclass)",
        "index index_likes_by_user: unexpected",
        "index index_likes_on_user_id: missing",
        "CREATE FUNCTION public.f() RETURNS integer: is `CREATE FUNCTION public.f() RETURNS "
        "integer LANGUAGE sql AS $$SELECT 2;$$;`, expected `CREATE FUNCTION public.f() RETURNS "
        "integer LANGUAGE sql AS $$SELECT 1;$$;`",
    }


def test_a_rails_named_foreign_key_of_the_same_definition_matches_and_is_renamed() -> None:
    rails = EXPECTED.replace("fk_likes_user", "fk_rails_1e09b5dabf")
    comparison = compare_schemas(schema_shape(rails), schema_shape(EXPECTED))
    assert comparison.differences == ()
    assert comparison.renames == (("likes", "fk_rails_1e09b5dabf", "fk_likes_user"),)

    elsewhere = rails.replace("REFERENCES public.users(id)", "REFERENCES public.people(id)")
    comparison = compare_schemas(schema_shape(elsewhere), schema_shape(EXPECTED))
    assert comparison.renames == ()
    assert set(comparison.differences) == {
        "constraint fk_likes_user on likes: missing",
        "constraint fk_rails_1e09b5dabf on likes: unexpected",
    }


def test_a_refused_adoption_stalls_the_operator_and_is_not_retried() -> None:
    kind = ErrorKind.ADOPTION_REFUSED
    assert kind.exit_code == ExitCode.PRECONDITION_FAILED == 8
    assert not kind.retryable
    assert REASON_OF_KIND[kind] == "AdoptionRefused"


def test_adoption_fields_round_trip_and_appear_only_when_set() -> None:
    plain = MigrationResult("upgrade", None, "20250713000001", "20250713000001")
    assert "adopted_from_rails" not in plain.to_dict()
    assert "rails_only_versions" not in plain.to_dict()
    adopted = MigrationResult(
        "upgrade",
        CHAIN[0],
        CHAIN[1],
        CHAIN[1],
        adopted_from_rails=CHAIN[0],
        rails_only_versions=("20991231000000",),
    )
    document = adopted.to_dict()
    assert document["adoption"] == f"adopted from Rails at {CHAIN[0]}"
    assert MigrationResult.from_termination_message(adopted.termination_message()) == adopted

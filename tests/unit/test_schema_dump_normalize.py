"""`pg_dump` output normalization: only what changes from run to run is removed.

Only a line that starts outside quoted text can be noise: string constants, quoted identifiers
and dollar-quoted bodies are tracked across lines, and quote characters inside a string open
nothing.
"""

from __future__ import annotations

import pytest

from rayces.migrations.schema_dump import HEADER, normalize_dump

RAW_DUMP = """\
--
-- PostgreSQL database dump
--

\\restrict 9sdfkj23rSDFlkj23

-- Dumped from database version 18.1
-- Dumped by pg_dump version 18.1

SET statement_timeout = 0;
SET lock_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;



--
-- Name: touch(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
-- a comment inside the body is part of the function
BEGIN
SET LOCAL x = 1;
  RETURN NEW;
END
$fn$;

CREATE TABLE public.users (
    id bigint NOT NULL
);


--
-- PostgreSQL database dump complete
--

\\unrestrict 9sdfkj23rSDFlkj23

"""


def test_removes_noise_and_keeps_bodies() -> None:
    assert normalize_dump(RAW_DUMP, revision="20250718000016") == (
        HEADER
        + "\n"
        + """\
CREATE FUNCTION public.touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
-- a comment inside the body is part of the function
BEGIN
SET LOCAL x = 1;
  RETURN NEW;
END
$fn$;

CREATE TABLE public.users (
    id bigint NOT NULL
);

INSERT INTO public.alembic_version (version_num) VALUES ('20250718000016');
"""
    )


def test_random_restrict_key_does_not_matter() -> None:
    other = RAW_DUMP.replace("9sdfkj23rSDFlkj23", "AnotherRandomKey").replace("18.1", "18.2")
    assert normalize_dump(other) == normalize_dump(RAW_DUMP)


def test_no_revision_no_insert() -> None:
    assert "INSERT INTO" not in normalize_dump(RAW_DUMP)


def test_header_names_the_regenerating_command() -> None:
    assert "raycesctl schema dump --output-file docs/structure.sql" in HEADER


RESTRICT = "\\restrict Yq3vXk0oR9u2t1pLbA8m\n"
UNRESTRICT = "\\unrestrict Yq3vXk0oR9u2t1pLbA8m\n"


def _body(normalized: str) -> str:
    assert normalized.startswith(HEADER + "\n")
    return normalized[len(HEADER) + 1 :]


@pytest.mark.parametrize(
    ("dump", "expected"),
    [
        pytest.param(
            RESTRICT
            + "SET statement_timeout = 0;\n--\n-- Name: t\n--\n\nCREATE TABLE t (a int);\n"
            + UNRESTRICT,
            "CREATE TABLE t (a int);\n",
            id="noise-removed",
        ),
        pytest.param(
            "COMMENT ON TABLE t IS 'first line\n-- not a comment\nSET not a statement';\n",
            "COMMENT ON TABLE t IS 'first line\n-- not a comment\nSET not a statement';\n",
            id="lines-inside-a-string-kept",
        ),
        pytest.param(
            "CREATE TABLE p (currency varchar DEFAULT 'US$$');\n\n" + UNRESTRICT,
            "CREATE TABLE p (currency varchar DEFAULT 'US$$');\n",
            id="dollars-inside-a-string-open-nothing",
        ),
        pytest.param(
            "CREATE TABLE q (note text DEFAULT 'it''s $x$');\n" + UNRESTRICT,
            "CREATE TABLE q (note text DEFAULT 'it''s $x$');\n",
            id="doubled-quote-inside-a-string",
        ),
        pytest.param(
            "CREATE FUNCTION f() RETURNS int AS $body$\n-- kept\nSELECT 'a$$';\n$body$;\n"
            + UNRESTRICT,
            "CREATE FUNCTION f() RETURNS int AS $body$\n-- kept\nSELECT 'a$$';\n$body$;\n",
            id="dollar-quoted-body-kept",
        ),
        pytest.param(
            'CREATE TABLE "odd\n-- name" (a int);\n' + UNRESTRICT,
            'CREATE TABLE "odd\n-- name" (a int);\n',
            id="quoted-identifier-spanning-lines",
        ),
        pytest.param(
            "CREATE TABLE r (a int); -- it's a trailing comment\n" + UNRESTRICT,
            "CREATE TABLE r (a int); -- it's a trailing comment\n",
            id="quote-in-a-trailing-comment-opens-nothing",
        ),
    ],
)
def test_normalize(dump: str, expected: str) -> None:
    assert _body(normalize_dump(dump)) == expected


def test_comments_that_differ_inside_a_string_give_different_dumps() -> None:
    first = "COMMENT ON TABLE t IS 'a\n-- one';\n"
    second = "COMMENT ON TABLE t IS 'a\n-- two';\n"
    assert normalize_dump(first) != normalize_dump(second)


def test_the_restrict_key_never_survives_a_dollar_in_a_string() -> None:
    dumps = [
        normalize_dump(
            f"\\restrict {key}\nCREATE TABLE p (c varchar DEFAULT 'US$$');\n\\unrestrict {key}\n"
        )
        for key in ("abc", "xyz")
    ]
    assert dumps[0] == dumps[1]


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param("public", "INSERT INTO public.alembic_version", id="public"),
        pytest.param("app", "INSERT INTO app.alembic_version", id="other-schema"),
        pytest.param("My App", 'INSERT INTO "My App".alembic_version', id="quoted-schema"),
    ],
)
def test_version_row_goes_to_the_schema_of_the_version_table(schema: str, expected: str) -> None:
    normalized = normalize_dump("", revision="20250713000001", version_table_schema=schema)
    assert f"\n{expected} (version_num) VALUES ('20250713000001');\n" in normalized

"""`pg_dump` output normalization: only what changes from run to run is removed."""

from __future__ import annotations

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

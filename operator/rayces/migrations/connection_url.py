"""Database URLs as people write them, turned into libpq connection parameters, and redacted.

People and manifests spell PostgreSQL URLs several ways: `postgres://` (Heroku-style providers),
`postgresql://` (libpq), `postgresql+psycopg://` (SQLAlchemy), or libpq's `key=value` form. Many
passwords come straight from a secret generator, unencoded, with `#`, `/`, `?` or `@` in them,
which a standard URL parser splits in the wrong place (and then repeats in its error message). So
the URL is parsed here by hand, once, into libpq keywords, and everything else (psycopg,
`pg_dump`, messages) works from those:

- the password never needs to appear in a URL again: connections get keyword/value strings, and
  `pg_dump` a passfile;
- what is shown to people is `describe()`, with every password replaced by `***`;
- a URL that names no user, database or host is refused, rather than letting libpq fall back to
  the local user, a database of that name and the default socket without anyone asking for it.

Standard library only: the CLI checks URLs before deciding whether heavier imports are needed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from rayces.migrations.errors import DatabaseUrlError

#: Schemes accepted for PostgreSQL URLs.
POSTGRESQL_SCHEMES = frozenset(
    {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgresql+psycopg3"}
)

#: libpq keywords whose values are secrets.
SECRET_KEYWORDS = frozenset({"password", "sslpassword"})

#: Secrets shorter than this are not searched for in free text: scrubbing every "a" from a
#: message would make it unreadable, and such a password protects nothing anyway.
MIN_SCRUBBED_SECRET_LENGTH = 4

URL_HINT = (
    "use postgresql://USER@HOST:5432/DBNAME, with :PASSWORD after USER if one is needed "
    "(or host=... user=... dbname=...)"
)

_KEYWORD_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)\s*")
_PLAIN_VALUE = re.compile(r"^[^\s'\\]+$")


@dataclass(frozen=True)
class ConnectionParameters:
    """libpq keyword/value pairs naming one database, in the order given (later ones win)."""

    pairs: tuple[tuple[str, str], ...]

    def get(self, keyword: str) -> str | None:
        found = None
        for key, value in self.pairs:
            if key == keyword:
                found = value
        return found

    def as_dict(self) -> dict[str, str]:
        return dict(self.pairs)

    def with_values(self, values: Mapping[str, str | None]) -> ConnectionParameters:
        """These parameters with `values` set (replacing earlier ones); `None` removes one."""
        kept = [(key, value) for key, value in self.pairs if key not in values]
        added = [(key, value) for key, value in values.items() if value is not None]
        return ConnectionParameters(tuple(kept + added))

    def with_defaults(self, values: Mapping[str, str]) -> ConnectionParameters:
        """These parameters with `values` added where no value is given."""
        present = {key for key, _ in self.pairs}
        return self.with_values({k: v for k, v in values.items() if k not in present})

    def without_secrets(self) -> ConnectionParameters:
        return ConnectionParameters(tuple(p for p in self.pairs if p[0] not in SECRET_KEYWORDS))

    def conninfo(self) -> str:
        """The libpq keyword/value string (`host=... dbname=...`), secrets included: for
        connecting, never for showing."""
        return " ".join(f"{key}={_conninfo_value(value)}" for key, value in self.as_dict().items())

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.as_dict().items() if k in SECRET_KEYWORDS and v)

    def describe(self) -> str:
        """A URL for people, every secret shown as `***`."""
        values = self.as_dict()
        user = values.get("user", "")
        password = ":***" if values.get("password") else ""
        host = values.get("host", "")
        shown_host = "" if host.startswith("/") or "," in host else host
        port = values.get("port", "")
        query = [
            f"{key}={'***' if key in SECRET_KEYWORDS else value}"
            for key, value in values.items()
            if key not in {"user", "password", "dbname", "port"}
            and not (key == "host" and shown_host)
        ]
        netloc = f"{user}{password}@{shown_host}{':' + port if port and shown_host else ''}"
        if port and not shown_host:
            query.append(f"port={port}")
        suffix = "?" + "&".join(query) if query else ""
        return f"postgresql://{netloc}/{values.get('dbname', '')}{suffix}"


def _conninfo_value(value: str) -> str:
    if _PLAIN_VALUE.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_database_url(text: str) -> ConnectionParameters:
    """The libpq parameters a database URL names, or `DatabaseUrlError` saying what is wrong.

    :param text: a URL in any scheme of `POSTGRESQL_SCHEMES` (the user's password may contain
        unencoded `#`, `/`, `?`, `@`), or a libpq `key=value ...` string.
    :raises DatabaseUrlError: unsupported scheme, malformed, or no user, database or host. The
        message never repeats a password.
    """
    stripped = text.strip()
    if not stripped:
        raise DatabaseUrlError("the database URL is empty", hint=URL_HINT)
    if "://" in stripped:
        parameters = _parse_uri(stripped)
    elif _KEYWORD_PAIR.match(stripped):
        parameters = _parse_keywords(stripped)
    else:
        raise DatabaseUrlError(
            f"malformed database URL {redact_url(stripped)!r}: no scheme", hint=URL_HINT
        )
    _check_complete(parameters, stripped)
    return parameters


def _parse_uri(text: str) -> ConnectionParameters:
    scheme, rest = text.split("://", 1)
    if scheme.lower() not in POSTGRESQL_SCHEMES:
        raise DatabaseUrlError(
            f"unsupported database URL scheme {scheme.lower()!r}: Rayces runs on PostgreSQL only",
            hint=URL_HINT,
        )
    pairs: list[tuple[str, str]] = []
    if "@" in rest:
        # The last "@" ends the user information: a generated password may hold "@", "/", "#"
        # or "?" unencoded, a host or database name never holds "@".
        userinfo, rest = rest.rsplit("@", 1)
        user, has_password, password = userinfo.partition(":")
        pairs.append(("user", unquote(user)))
        if has_password:
            pairs.append(("password", unquote(password)))
    try:
        parts = urlsplit("postgresql://" + rest)
    except ValueError as error:
        raise DatabaseUrlError(
            f"malformed database URL {redact_url(text)!r}: {error}", hint=URL_HINT
        ) from None
    if parts.fragment:
        raise DatabaseUrlError(
            f"malformed database URL {redact_url(text)!r}: '#' after the host",
            hint="percent-encode '#' as %23",
        )
    hosts, ports = _hosts_and_ports(parts.netloc, text)
    if hosts:
        pairs.append(("host", hosts))
    if ports:
        pairs.append(("port", ports))
    database = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if database:
        pairs.append(("dbname", database))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        pairs.append((key, value))
    return ConnectionParameters(tuple(pairs))


def _hosts_and_ports(netloc: str, text: str) -> tuple[str, str]:
    """libpq's `host` and `port` values for a URL's host list (`h1:5432,h2,[::1]:6432`)."""
    hosts: list[str] = []
    ports: list[str] = []
    for entry in netloc.split(",") if netloc else []:
        match = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(?::(.*))?", entry)
        if match is None:  # pragma: no cover - the pattern matches any text
            raise DatabaseUrlError(f"malformed database URL {redact_url(text)!r}", hint=URL_HINT)
        host, port = match.group(1), match.group(2)
        hosts.append(unquote(host.strip("[]")))
        ports.append(port or "")
    if any(ports) and not all(_valid_port(port) for port in ports if port):
        raise DatabaseUrlError(
            f"malformed database URL {redact_url(text)!r}: the port is not a number "
            "from 1 to 65535",
            hint=URL_HINT,
        )
    return ",".join(hosts) if any(hosts) else "", ",".join(ports) if any(ports) else ""


def _valid_port(port: str) -> bool:
    return port.isdigit() and 1 <= int(port) <= 65535


def _parse_keywords(text: str) -> ConnectionParameters:
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _KEYWORD_PAIR.match(text, position)
        if match is None or match.end() == position:
            raise DatabaseUrlError(
                f"malformed database connection string {redact_url(text)!r}", hint=URL_HINT
            )
        key, value = match.group(1), match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs.append((key, value))
        position = match.end()
    return ConnectionParameters(tuple(pairs))


def _check_complete(parameters: ConnectionParameters, text: str) -> None:
    shown = redact_url(text)
    missing = [
        what
        for what, keywords in (
            ("user", ("user",)),
            ("database name", ("dbname",)),
            ("host", ("host", "hostaddr")),
        )
        if not any((parameters.get(keyword) or "").strip(",") for keyword in keywords)
    ]
    if missing:
        raise DatabaseUrlError(
            f"the database URL {shown!r} names no {' and no '.join(missing)}; libpq would fall "
            "back to defaults (the local user, socket and database) without being asked",
            hint=URL_HINT,
        )
    port = parameters.get("port")
    if port and not all(_valid_port(p) for p in port.split(",") if p):
        raise DatabaseUrlError(
            f"malformed database URL {shown!r}: the port is not a number from 1 to 65535",
            hint=URL_HINT,
        )
    timeout = parameters.get("connect_timeout")
    if timeout is not None and not timeout.strip().isdigit():
        raise DatabaseUrlError(
            f"invalid connect_timeout {timeout!r} in the database URL",
            hint="give a whole number of seconds, e.g. connect_timeout=10",
        )


# ---------------------------------------------------------------- redaction of free text

_URI_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^@\s/:]*:[^\s]*)@")
_SECRET_PAIR = re.compile(
    r"(?P<key>\b(?:ssl)?password\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE
)


def redact_url(text: str) -> str:
    """`text` (one URL or connection string) with every password shown as `***`.

    Works on text that does not parse: a password with unencoded `#` or `/`, a URL without a
    scheme, a `?password=` query parameter, a `password='...'` keyword.
    """
    redacted = _SECRET_PAIR.sub(lambda m: m.group("key") + "***", text)
    if "://" in redacted:
        scheme, rest = redacted.split("://", 1)
        if "@" in rest:
            info, _, host = rest.rpartition("@")
            return f"{scheme}://{_redact_userinfo(info)}@{host}"
        return redacted
    if "@" in redacted and not re.search(r"\s", redacted.strip()):
        info, _, host = redacted.rpartition("@")
        return f"{_redact_userinfo(info)}@{host}"
    return redacted


def _redact_userinfo(userinfo: str) -> str:
    user, has_password, _ = userinfo.partition(":")
    return f"{user}:***" if has_password else user


def secrets_in(text: str) -> tuple[str, ...]:
    """The passwords a URL or connection string holds (raw and decoded), parsed or not, so that
    output can be scrubbed of them wherever a driver or a tool might repeat them."""
    found: set[str] = set()
    for match in _SECRET_PAIR.finditer(text):
        value = match.group("value")
        found.update({value, value.strip("'"), unquote(value)})
    body = text.split("://", 1)[1] if "://" in text else text
    if "@" in body:
        userinfo = body.rsplit("@", 1)[0]
        _, has_password, password = userinfo.partition(":")
        if has_password:
            found.update({password, unquote(password)})
    with contextlib.suppress(DatabaseUrlError):
        found.update(parse_database_url(text).secrets())
    return tuple(sorted(s for s in found if len(s) >= MIN_SCRUBBED_SECRET_LENGTH))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` (any message or output) with each of `secrets` replaced by `***`, longest first,
    and the password of any URL or `password=` setting in it too."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET_PAIR.sub(
        lambda m: m.group(0) if m.group("value") in {"", "***"} else m.group("key") + "***", text
    )
    return _URI_USERINFO.sub(
        lambda m: f"{m.group('scheme')}{_redact_userinfo(m.group('userinfo'))}@", text
    )

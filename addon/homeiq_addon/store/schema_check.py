"""Whether a file is a HomeIQ database the add-on can take as its own (restore, snapshot).

A file that merely has the right table names is not enough: with other columns it
would leave every route failing, without a table it would break ingest, and with one
more trigger it could delete whatever ingest stores after the restore. So a file is
taken only when it is a whole SQLite database (integrity check) whose schema is exactly
the one a schema version of this add-on has: every table with its columns and
constraints, every index, trigger and view; none missing, none more. The expected
schemas are not written down a second time: they are built by running the add-on's own
migrations on an in-memory database, one version after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
from pathlib import Path
import re
import sqlite3
from typing import Final

from ..errors import InvalidBackup
from . import deferred_index
from .migrations import MIGRATIONS, SchemaTooNew, migrate

_HEADER: Final = b"SQLite format 3\x00"
# SQLite's own objects: the indexes of UNIQUE and PRIMARY KEY constraints and the
# AUTOINCREMENT sequence follow from a table's SQL, which is compared; the statistics of
# ANALYZE or PRAGMA optimize change query plans, never results.
_INTERNAL: Final = "sqlite_"
_LISTED: Final = 8  # differences named in a refusal; more are counted
_TOKENS: Final = re.compile(
    r"""(?P<skip>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
      | (?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
      | (?P<word>[A-Za-z0-9_$]+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


class InvalidDatabase(InvalidBackup):
    """The file is not a HomeIQ database the add-on can take; the message says why."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    notnull: bool
    default: str | None
    pk: int
    hidden: int  # generated columns


@dataclass(frozen=True, slots=True)
class SchemaObject:
    """A row of sqlite_schema, its SQL normalized; a table's columns to explain changes."""

    type: str
    name: str
    table: str
    sql: str
    columns: tuple[Column, ...] = ()

    def same_as(self, other: SchemaObject) -> bool:
        return (self.type, self.table.lower(), self.sql) == (
            other.type,
            other.table.lower(),
            other.sql,
        )


@dataclass(frozen=True, slots=True)
class Schema:
    version: int
    objects: dict[str, SchemaObject]  # by lower-case name, in the order they were made
    counters: frozenset[str]  # the rows of `counters` the migrations put in


def normalize_sql(sql: str) -> str:
    """SQL without comments, one space between tokens, unquoted words in lower case.

    So an edited comment or indentation in a migration does not make a database that
    an older add-on created look foreign; anything that changes meaning still differs.
    """
    tokens = []
    for match in _TOKENS.finditer(sql):
        kind, text = match.lastgroup, match.group()
        if kind == "word":
            tokens.append(text.lower())
        elif kind != "skip":
            tokens.append(text)
    return " ".join(tokens)


def describe(conn: sqlite3.Connection) -> dict[str, SchemaObject]:
    """Every table, index, trigger and view in the database (SQLite's own aside)."""
    objects = {}
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid")
    for kind, name, table, sql in rows.fetchall():
        if name.lower().startswith(_INTERNAL):
            continue
        columns: tuple[Column, ...] = ()
        if kind == "table":
            columns = tuple(
                Column(col, typ, bool(notnull), default, pk, hidden)
                for col, typ, notnull, default, pk, hidden in conn.execute(
                    'SELECT name, type, "notnull", dflt_value, pk, hidden'
                    " FROM pragma_table_xinfo(?)",
                    (name,),
                )
            )
        objects[name.lower()] = SchemaObject(kind, name, table, normalize_sql(sql or ""), columns)
    return objects


@functools.cache
def expected_schemas() -> tuple[Schema, ...]:
    """The schema of every version this add-on creates or migrates from (index: version - 1)."""
    conn = sqlite3.connect(":memory:", autocommit=True)
    try:
        schemas = []
        for version in range(1, len(MIGRATIONS) + 1):
            migrate(conn, upto=version)
            counters = frozenset(row[0] for row in conn.execute("SELECT name FROM counters"))
            schemas.append(Schema(version, describe(conn), counters))
        return tuple(schemas)
    finally:
        conn.close()


def _shown(default: str | None) -> str:
    return "none" if default is None else default


def _table_changes(want: SchemaObject, have: SchemaObject) -> str:
    wanted = {c.name.lower(): c for c in want.columns}
    found = {c.name.lower(): c for c in have.columns}
    changes = [f"column {c.name} is missing" for k, c in wanted.items() if k not in found]
    changes += [f"unexpected column {c.name}" for k, c in found.items() if k not in wanted]
    for key, w in wanted.items():
        if (h := found.get(key)) is None:
            continue
        parts = []
        if w.type.lower() != h.type.lower():
            parts.append(f"type {h.type or 'none'} instead of {w.type or 'none'}")
        if w.notnull != h.notnull:
            parts.append("NOT NULL" if h.notnull else "no NOT NULL")
        if w.default != h.default:
            parts.append(f"default {_shown(h.default)} instead of {_shown(w.default)}")
        if w.pk != h.pk:
            parts.append("in the primary key" if h.pk else "not in the primary key")
        if w.hidden != h.hidden:
            parts.append("generated differently")
        if parts:
            changes.append(f"column {w.name}: {', '.join(parts)}")
    if not changes:
        changes.append("its constraints or column order differ")
    return f"table {want.name}: {', '.join(changes)}"


def _on(item: SchemaObject) -> str:
    return f" on {item.table}" if item.type in ("index", "trigger") else ""


def differences(expected: dict[str, SchemaObject], found: dict[str, SchemaObject]) -> list[str]:
    """What differs, in words: changed objects first, then missing, then extra ones."""
    changed, missing, extra = [], [], []
    for key, want in expected.items():
        have = found.get(key)
        if have is None:
            missing.append(f"{want.type} {want.name} is missing")
        elif have.type != want.type:
            changed.append(f"{want.name} is a {have.type}, not a {want.type}")
        elif not have.same_as(want):
            if want.type == "table":
                changed.append(_table_changes(want, have))
            else:
                changed.append(f"{want.type} {want.name}{_on(have)} is defined otherwise")
    for key, have in found.items():
        if key not in expected:
            extra.append(f"unexpected {have.type} {have.name}{_on(have)}")
    return changed + missing + extra


def _listed(problems: list[str]) -> str:
    more = len(problems) - _LISTED
    return "; ".join(problems[:_LISTED]) + (f"; and {more} more" if more > 0 else "")


def _check_counters(conn: sqlite3.Connection, name: str, expected: Schema) -> None:
    """The rows every read and write of the add-on counts on."""
    present = {row[0] for row in conn.execute("SELECT name FROM counters")}
    if lacking := sorted(expected.counters - present):
        raise InvalidDatabase(
            f"{name}: the counters table lacks the row(s) {', '.join(map(repr, lacking))}"
        )
    rows = conn.execute("SELECT name FROM counters WHERE typeof(value) != 'integer' ORDER BY 1")
    if odd := [row[0] for row in rows]:
        raise InvalidDatabase(
            f"{name}: the counters row(s) {', '.join(map(repr, odd))} hold no whole number"
        )
    if "settled" in expected.counters:
        top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        # Above the newest event, new events would count as indexed without being so.
        if (mark := deferred_index.watermark(conn)) > top:
            raise InvalidDatabase(
                f"{name}: the counters mark the events up to id {mark} as indexed,"
                f" beyond the newest event ({top})"
            )


def check_database(path: Path, name: str | None = None) -> int:
    """Return the schema version of the HomeIQ database at ``path``, or refuse it.

    Raises InvalidDatabase (not SQLite, damaged, not exactly a known schema, rows the
    add-on needs missing) or SchemaTooNew; messages start with ``name`` (the file's).
    Blocking; the file is opened read-only and none of its SQL is run.
    """
    name = name or path.name
    with path.open("rb") as handle:
        if handle.read(len(_HEADER)) != _HEADER:
            raise InvalidDatabase(f"{name}: not a SQLite database")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, autocommit=True)
    except sqlite3.Error as err:
        raise InvalidDatabase(f"{name}: cannot be opened: {err}") from err
    try:
        # Its views and triggers are not ours until checked: no functions with side effects.
        conn.execute("PRAGMA trusted_schema = OFF")
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
        except sqlite3.DatabaseError as err:
            raise InvalidDatabase(f"{name}: integrity check failed: {err}") from err
        if result != ["ok"]:
            raise InvalidDatabase(f"{name}: integrity check failed: {'; '.join(result)}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise SchemaTooNew(
                f"{name}: schema version {version} is newer than this add-on's "
                f"({len(MIGRATIONS)}); upgrade the add-on first"
            )
        if version < 1:
            raise InvalidDatabase(f"{name}: not a HomeIQ database (it has no schema version)")
        expected = expected_schemas()[version - 1]
        problems = differences(expected.objects, describe(conn))
        if problems:
            raise InvalidDatabase(
                f"{name}: not a HomeIQ database: its schema differs from schema version "
                f"{version}'s: {_listed(problems)}"
            )
        _check_counters(conn, name, expected)
    except sqlite3.DatabaseError as err:
        raise InvalidDatabase(f"{name}: cannot be read: {err}") from err
    finally:
        conn.close()
    return version

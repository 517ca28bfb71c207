"""Command line and /data/options.json: everything the service is configured with."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import secrets
from typing import Any, Final
import uuid

import orjson
import voluptuous as vol

_LOGGER = logging.getLogger(__name__)

API_PORT: Final = 8765
INGRESS_PORT: Final = 8099
# Shorter tokens, or ones with spaces or control characters, are refused (see load_token).
MIN_TOKEN_LENGTH: Final = 16


LOG_LEVELS: Final = ("debug", "info", "warning", "error")
_HHMM: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


@dataclass(frozen=True, slots=True)
class Option:
    """One option of the add-on: its default, the check of a value, and the same rule as
    the Supervisor's schema element in addon/config.yaml."""

    default: Any
    check: Any  # a voluptuous validator
    supervisor: Any  # a schema element; for a list of dicts, [{key: element}]


def _hhmm(default: str) -> Option:
    return Option(default, vol.All(str, vol.Match(_HHMM, msg="expected HH:MM")), f"match({_HHMM})")


def _int(default: int, low: int, high: int | None = None) -> Option:
    return Option(
        default,
        vol.All(int, vol.Range(min=low, max=high)),
        f"int({low},{'' if high is None else high})",
    )


MIRROR_SEND: Final = ("events", "rollups", "both")
# A mirror target in the options: key -> (default, check, Supervisor element). A key
# without a default is required. Filters are comma-separated: domains, entity globs.
_TARGET_FIELDS: Final[dict[str, tuple[Any, Any, str]]] = {
    "name": (None, vol.All(str, vol.Match(r"^[A-Za-z0-9_.-]{1,64}$",
                                          msg="expected 1 to 64 of A-Z a-z 0-9 _ . -")), "str"),
    "url": (None, vol.All(str, vol.Match(r"^https?://[^\s/]+", msg="expected an http(s) URL")),
            "url"),
    "token": ("", str, "password?"),
    "org": ("", str, "str?"),
    "bucket": (None, vol.All(str, vol.Length(min=1, msg="expected a bucket name")), "str"),
    "verify_ssl": (True, bool, "bool?"),
    "send": ("events", vol.In(list(MIRROR_SEND)), f"list({'|'.join(MIRROR_SEND)})?"),
    "include_domains": ("", str, "str?"),
    "exclude_domains": ("", str, "str?"),
    "include_entities": ("", str, "str?"),
    "exclude_entities": ("", str, "str?"),
    "string_fields": (True, bool, "bool?"),
    "enabled": (True, bool, "bool?"),
}  # fmt: skip
_TARGET_SCHEMA: Final = vol.Schema(
    {
        (vol.Required(key) if default is None else vol.Optional(key, default=default)): check
        for key, (default, check, _) in _TARGET_FIELDS.items()
    }
)


def _mirror_targets(value: Any) -> list[dict[str, Any]]:
    """Each target checked with its defaults filled in; a refusal names the target."""
    if not isinstance(value, list):
        raise vol.Invalid("expected a list of targets")
    targets: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        who = f"target {name!r}" if isinstance(name, str) and name else f"target {index + 1}"
        if not isinstance(item, dict):
            raise vol.Invalid(f"{who}: expected a dictionary")
        try:
            targets.append(_TARGET_SCHEMA(item))
        except vol.Invalid as err:
            where = ".".join(str(p) for p in err.path)
            raise vol.Invalid(f"{who}: {where}: {err.msg}") from None
        if any(t["name"] == targets[-1]["name"] for t in targets[:-1]):
            raise vol.Invalid(f"{who}: name: another target has this name")
    return targets


# THE options, declared once: Config's defaults and OPTIONS_SCHEMA are built from this;
# tests/addon/test_packaging.py checks addon/config.yaml (options, schema) and addon/DOCS.md
# (the options table) against it.
OPTIONS: Final = {
    "log_level": Option("info", vol.In(list(LOG_LEVELS)), f"list({'|'.join(LOG_LEVELS)})"),
    "raw_retention_days": _int(30, 1),
    "hourly_retention_days": _int(365, 1),
    "daily_retention_days": _int(0, 0),
    "retention_schedule": _hhmm("03:30"),
    "backup_keep": _int(7, 0, 100),
    "backup_schedule": _hhmm("04:00"),
    "max_body_mb": _int(16, 1, 256),
    "mirror_targets": Option(
        [], _mirror_targets, [{key: element for key, (_, _, element) in _TARGET_FIELDS.items()}]
    ),
    # A target further behind than this no longer holds back retention.
    "mirror_max_lag_hours": _int(72, 1),
}


def _default(name: str) -> Any:
    return OPTIONS[name].default


@dataclass(frozen=True, slots=True)
class Config:
    """The service's settings; the options among them are declared in OPTIONS."""

    data_dir: Path
    port: int = API_PORT
    ingress_port: int | None = None
    host: str = "127.0.0.1"
    dev: bool = False
    log_level: str = _default("log_level")
    max_body_mb: int = _default("max_body_mb")
    raw_retention_days: int = _default("raw_retention_days")
    hourly_retention_days: int = _default("hourly_retention_days")
    daily_retention_days: int = _default("daily_retention_days")
    retention_schedule: str = _default("retention_schedule")
    backup_keep: int = _default("backup_keep")
    backup_schedule: str = _default("backup_schedule")
    mirror_targets: list[dict[str, Any]] = field(default_factory=list)
    mirror_max_lag_hours: int = _default("mirror_max_lag_hours")
    share_dir: Path = Path("/share/homeiq")
    # How long a client may stall (seconds): a new connection until its request head is
    # complete, a connection between requests, a request body from its head. Not options:
    # tests shorten them with hidden arguments.
    header_timeout: float = 15.0
    idle_timeout: float = 60.0
    body_timeout: float = 60.0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mb * 1024 * 1024


# The Supervisor checks the same rules before it writes options.json; checking again here
# turns a hand-edited file into a clear message.
OPTIONS_SCHEMA: Final = vol.Schema(
    {vol.Optional(name): option.check for name, option in OPTIONS.items()},
    extra=vol.ALLOW_EXTRA,
)


def _read_options(path: Path) -> dict[str, Any]:
    """options.json, checked; raise ValueError naming the file and the option."""
    try:
        options = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise ValueError(f"{path}: {err}") from None
    try:
        checked: dict[str, Any] = OPTIONS_SCHEMA(options)
    except vol.Invalid as err:
        where = ".".join(str(p) for p in err.path) or "options"
        raise ValueError(f"{path}: {where}: {err.msg}") from None
    return checked


def parse_args(argv: list[str] | None = None) -> Config:
    """Build the Config from arguments; --options reads the Supervisor's options.json."""
    parser = argparse.ArgumentParser(prog="python -m homeiq_addon")
    parser.add_argument("--data-dir", type=Path, help="where the database and token live")
    parser.add_argument("--options", type=Path, help="Supervisor options.json (container mode)")
    parser.add_argument("--port", type=int, help=f"API port (default {API_PORT})")
    parser.add_argument("--ingress-port", type=int, help="ingress (panel) port")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 in container)")
    parser.add_argument("--share-dir", type=Path, help="where exports go (default /share/homeiq)")
    parser.add_argument("--dev", action="store_true", help="ingress also answers 127.0.0.1/::1")
    parser.add_argument("--log-level", choices=LOG_LEVELS)
    for name in ("header", "idle", "body"):
        parser.add_argument(f"--{name}-timeout", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if args.options is not None:
        # Container mode: the Supervisor wrote the options; /data is the data dir.
        try:
            options = _read_options(args.options)
        except ValueError as err:
            parser.error(str(err))
        values.update({k: options[k] for k in OPTIONS if k in options})
        values["host"] = "0.0.0.0"  # noqa: S104 - the container's own network namespace
        values["ingress_port"] = INGRESS_PORT
        data_dir = args.data_dir or args.options.parent
    elif args.data_dir is None:
        parser.error("--data-dir or --options is required")
    else:
        data_dir = args.data_dir
    for name in (
        "port",
        "ingress_port",
        "host",
        "share_dir",
        "log_level",
        "header_timeout",
        "idle_timeout",
        "body_timeout",
    ):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.share_dir is None and args.options is None:
        values["share_dir"] = data_dir / "share"
    return Config(data_dir=data_dir, dev=args.dev, options=options, **values)


def _write_private(path: Path, value: str) -> None:
    # O_EXCL + mode 600: never readable by others, never half-written over an existing one.
    tmp = path.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def _read_or_create(path: Path, make: str) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    _write_private(path, make)
    return make


class TokenRefused(Exception):
    """The configured token is too weak to guard the API; the service does not start."""


def _token_problem(token: str) -> str | None:
    if len(token) < MIN_TOKEN_LENGTH:
        return f"shorter than {MIN_TOKEN_LENGTH} characters"
    if not all("!" <= char <= "~" for char in token):
        return "it may only hold visible ASCII characters (no spaces or control characters)"
    return None


def load_token(data_dir: Path) -> str:
    """The API token: $HOMEIQ_TOKEN, else DATA/token (created at first start).

    An empty token file (a disk that filled up, a copy gone wrong) gets a new token, which
    discovery hands to Home Assistant; a short or malformed token, from the file or the
    environment, is refused: TokenRefused names where it came from, never the token.
    """
    from_env = os.environ.get("HOMEIQ_TOKEN", "").strip()
    if from_env:
        if problem := _token_problem(from_env):
            raise TokenRefused(f"HOMEIQ_TOKEN is refused: {problem}")
        return from_env
    path = data_dir / "token"
    token = _read_or_create(path, secrets.token_urlsafe(32))
    if not token:
        token = secrets.token_urlsafe(32)
        _write_private(path, token)
        _LOGGER.warning("%s was empty; a new token was generated", path)
    if problem := _token_problem(token):
        raise TokenRefused(
            f"the token in {path} is refused: {problem}; "
            "delete the file and restart the add-on to get a new one"
        )
    return token


def load_instance_id(data_dir: Path) -> str:
    """This add-on installation's stable id (the integration's config entry unique_id)."""
    return _read_or_create(data_dir / "instance_id", uuid.uuid4().hex)

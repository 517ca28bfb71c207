"""Compact, lossless encodings of context ids (times: homeiq_addon/times.py).

A context id is a ULID (26 Crockford base-32 characters, 128 bits) almost always; it is
stored as 16 bytes instead of 26. Old-style 32-hex ids become 0x01 + 16 bytes. Only
the exact canonical spellings are encoded (uppercase ULID, lowercase hex), so decoding
always gives back the string that was sent; anything else is kept as text.

A ULID's first 48 bits are the millisecond it was made, and Home Assistant makes the
context of a state it sets at the very time it fires the event (``ulid_at_time`` of the
event's timestamp); a service call's context comes a few milliseconds before. So an
event's own context id is stored as its 80 random bits and the difference, in ms, from
the event's time (a zigzag varint: one byte within ±63 ms, three within ±17 minutes):
11 to 13 bytes instead of 16, told apart by the length. Other ids (parents, or a
context far from its event's time) keep their 16 bytes.
"""

from __future__ import annotations

import re
from typing import Final

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BASE32: Final = "0123456789abcdefghijklmnopqrstuv"
# Crockford digit -> the digit of the same value in Python's int(x, 32) alphabet.
TO_BASE32: Final = str.maketrans(_CROCKFORD, _BASE32)
# The same on bytes: a 256-byte table in C, ~0.3 µs less per event than str.translate.
TO_BASE32_BYTES: Final = bytes.maketrans(_CROCKFORD.encode(), _BASE32.encode())
ULID_RE: Final = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
_HEX_RE: Final = re.compile(r"^[0-9a-f]{32}$")
_HEX_TAG: Final = b"\x01"
# A ULID's 26 characters as 13 pairs of 10 bits (its 128 bits and 2 leading zeros), each
# pair looked up at once: a third of the time of 26 divisions by 32 (every event read
# decodes its context id).
_PAIRS: Final = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_PAIR_SHIFTS: Final = tuple(range(120, -1, -10))


def encode_context(value: str | None) -> bytes | str | None:
    """Context id as stored: 16-byte ULID, 17-byte hex, or the text itself."""
    if value is None:
        return None
    if len(value) == 26 and ULID_RE.match(value):
        return int(value.translate(TO_BASE32), 32).to_bytes(16)
    if len(value) == 32 and _HEX_RE.match(value):
        return _HEX_TAG + bytes.fromhex(value)
    return value


_RANDOM_BITS: Final = 80
_RANDOM_MASK: Final = (1 << _RANDOM_BITS) - 1
_MAX_DELTA_BYTES: Final = 3  # up to ±2^20 ms, about 17 minutes


def ulid_near(number: int, time_us: int) -> bytes:
    """A ULID (as its 128-bit number) of an event at ``time_us``: its random bits and its
    time as an offset from the event's, when that is short; else its 16 bytes."""
    delta = (number >> _RANDOM_BITS) - time_us // 1000
    zigzag = delta * 2 if delta >= 0 else -delta * 2 - 1
    if zigzag <= 0x7F:  # within ±63 ms, nearly every event: the varint is one byte
        return (((number & _RANDOM_MASK) << 8) | zigzag).to_bytes(11)
    varint = bytearray()
    while zigzag > 0x7F:
        varint.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    varint.append(zigzag)
    if len(varint) > _MAX_DELTA_BYTES:
        return number.to_bytes(16)
    return (number & _RANDOM_MASK).to_bytes(10) + bytes(varint)


def decode_context(value: bytes | str | None, time_us: int | None = None) -> str | None:
    """The context id string that ``encode_context`` (or, with the event's time,
    ``ulid_near``) was given."""
    if value is None or isinstance(value, str):
        return value
    if len(value) == 17:
        return value[1:].hex()
    if len(value) < 16:
        if time_us is None:
            raise ValueError("a context id stored beside its event's time needs that time")
        zigzag = shift = 0
        for byte in value[10:]:
            zigzag |= (byte & 0x7F) << shift
            shift += 7
        delta = zigzag >> 1 if not zigzag & 1 else -((zigzag + 1) >> 1)
        millisecond = time_us // 1000 + delta
        number = (millisecond << _RANDOM_BITS) | int.from_bytes(value[:10])
    else:
        number = int.from_bytes(value)
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in _PAIR_SHIFTS])

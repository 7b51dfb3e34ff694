"""Finnish personal identity codes (henkilötunnus): checking one and reading the birth date.

A code is ``DDMMYY`` + a century sign + a three-digit individual number + a check character:
``131052-308T``. The century signs are ``+`` (1800s), ``-``/``Y``/``X``/``W``/``V``/``U``
(1900s) and ``A``..``F`` (2000s); the check character is ``0123456789ABCDEFHJKLMNPRSTUVWXY``
indexed by the nine digits modulo 31. Temporary codes (individual number 900-999) are valid.
"""

from __future__ import annotations

import re
from datetime import date

CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
CENTURIES = {"+": 1800, "-": 1900, "Y": 1900, "X": 1900, "W": 1900, "V": 1900, "U": 1900}
CENTURIES.update({sign: 2000 for sign in "ABCDEF"})
PATTERN = re.compile(r"^(\d{2})(\d{2})(\d{2})([-+A-FU-Y])(\d{3})([0-9A-Y])$")


def check_character(digits: str) -> str:
    """The check character of the nine digits DDMMYYNNN."""
    return CHECK_CHARACTERS[int(digits) % 31]


def birthdate_of(code: str) -> date | None:
    """The birth date a valid Finnish identity code encodes; None for anything else (foreign
    identifiers, malformed codes, a wrong check character, an impossible date)."""
    found = PATTERN.fullmatch(code.strip().upper())
    if found is None:
        return None
    day, month, year, sign, individual, check = found.groups()
    if individual in ("000", "001") or check_character(day + month + year + individual) != check:
        return None
    try:
        return date(CENTURIES[sign] + int(year), int(month), int(day))
    except ValueError:
        return None


def is_identity_code(code: str) -> bool:
    """Exactly a valid code: upper case, no spaces around it."""
    return PATTERN.fullmatch(code) is not None and birthdate_of(code) is not None


def make_identity_code(born: date, individual: int = 123) -> str:
    """A valid code for a birth date (for tests and development data; 900-999 are the
    temporary individual numbers that no real person has)."""
    if not 2 <= individual <= 999:
        raise ValueError("the individual number is 2..999")
    sign = {1800: "+", 1900: "-", 2000: "A"}.get(born.year // 100 * 100)
    if sign is None:
        raise ValueError(f"no century sign for {born.year}")
    digits = f"{born:%d%m%y}{individual:03d}"
    return f"{born:%d%m%y}{sign}{individual:03d}{check_character(digits)}"


def age_on(born: date, day: date) -> int:
    """Completed years on a day (someone born on 29 February comes of age on 1 March)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

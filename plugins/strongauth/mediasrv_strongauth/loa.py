"""Levels of assurance (the ``acr`` claim) and their order.

The Finnish Trust Network names two levels and eIDAS three; they are mapped onto one scale:

    rank 1  http://eidas.europa.eu/LoA/low
    rank 2  http://ftn.ficora.fi/2017/loa2  ==  http://eidas.europa.eu/LoA/substantial
    rank 3  http://ftn.ficora.fi/2017/loa3  ==  http://eidas.europa.eu/LoA/high

so that ``min_acr = loa2`` accepts loa2, loa3, eIDAS substantial and eIDAS high, and
``min_acr = loa3`` accepts only loa3 and eIDAS high. An ``acr`` that is not on the scale is
refused (it is never assumed to be high enough).
"""

from __future__ import annotations

FTN_LOA2 = "http://ftn.ficora.fi/2017/loa2"
FTN_LOA3 = "http://ftn.ficora.fi/2017/loa3"
EIDAS_LOW = "http://eidas.europa.eu/LoA/low"
EIDAS_SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
EIDAS_HIGH = "http://eidas.europa.eu/LoA/high"

LOA_RANK: dict[str, int] = {
    EIDAS_LOW: 1,
    FTN_LOA2: 2,
    EIDAS_SUBSTANTIAL: 2,
    FTN_LOA3: 3,
    EIDAS_HIGH: 3,
}


def is_known(acr: object) -> bool:
    return isinstance(acr, str) and acr in LOA_RANK


def meets(acr: object, minimum: str) -> bool:
    """True when ``acr`` is a known level at least as high as ``minimum`` (a known level)."""
    return isinstance(acr, str) and LOA_RANK.get(acr, 0) >= LOA_RANK[minimum] > 0

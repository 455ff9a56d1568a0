"""The official wards of Ho Chi Minh City (province 79), from ``vietnam-provinces``."""

from __future__ import annotations

from functools import cache

from vietnam_provinces import ProvinceCode, Ward

CITY_PROVINCE_CODE = 79


def _code(ward: Ward) -> str:
    return str(int(ward.code)).zfill(5)


@cache
def city_wards() -> dict[str, str]:
    """Ward code (5 digits) → ward name, in the package's official order."""
    return {_code(w): w.name.strip() for w in Ward.iter_by_province(ProvinceCode(CITY_PROVINCE_CODE))}


@cache
def ward_codes() -> frozenset[str]:
    return frozenset(city_wards())

"""A community's broadcast rules: the owner's sending windows, frequency cap, sponsored disclosure and
price table (kept in ``communities.settings`` under ``broadcasts``)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from openline.quiet_hours import OwnerWindows, parse_owner_windows

__all__ = ["BroadcastSettings"]

_COUNTRY = re.compile(r"^([A-Z]{2}|\*)$")
# BCP 47 language, optionally with a region: what members' ``language`` holds.
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


class BroadcastSettings(BaseModel):
    """What every broadcast of a community obeys, on top of the law (openline.quiet_hours)."""

    model_config = ConfigDict(extra="forbid")
    windows: list[str] = Field(
        default_factory=list,
        description='The owner\'s sending windows, e.g. ["mon-fri 10:00-20:00", "holidays 10:00-18:00"]',
    )
    frequency_cap: int | None = Field(
        None, gt=0, le=100, description="At most this many broadcasts per member per 24 h"
    )
    disclosure: str = Field("#ad", min_length=1, max_length=40, description="Put before a sponsored broadcast")
    footer: dict[str, str] = Field(
        default_factory=dict,
        description='Put after every broadcast, by language ("*" for the rest), e.g. "Reply STOP to opt out"',
    )
    currency: str = Field("USD", min_length=3, max_length=3)
    prices: dict[str, float] = Field(
        default_factory=dict, description='Price of one segment by destination country; "*" for every other'
    )

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        if value:
            parse_owner_windows(value)  # raises ValueError with the exact problem
        return value

    @field_validator("prices")
    @classmethod
    def _prices(cls, value: dict[str, float]) -> dict[str, float]:
        checked: dict[str, float] = {}
        for country, price in value.items():
            code = country.strip().upper()
            if not _COUNTRY.match(code):
                raise ValueError(f"{country!r} is not a two-letter country code (or * for the rest)")
            if not 0 <= price < 100:
                raise ValueError(f"the price for {code} must be between 0 and 100 per segment")
            checked[code] = price
        return checked

    @field_validator("footer")
    @classmethod
    def _footer(cls, value: dict[str, str]) -> dict[str, str]:
        checked: dict[str, str] = {}
        for language, text in value.items():
            code = language.strip()
            if code != "*" and not _LANGUAGE.match(code):
                raise ValueError(f"{code!r} is not a language code (e.g. en, it, pt-BR) or * for the rest")
            if not text.strip() or len(text) > 160:
                raise ValueError(f"the {code} footer must be 1 to 160 characters")
            checked[code] = text.strip()
        return checked

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return value.upper()

    def owner_windows(self) -> OwnerWindows | None:
        return parse_owner_windows(self.windows) if self.windows else None

    def footer_for(self, language: str | None) -> str | None:
        """The footer in ``language`` (exact, then its base language), else the default one."""
        for code in (language, language.split("-")[0] if language else None, "*"):
            if code is not None and code in self.footer:
                return self.footer[code]
        return None

    def price_for(self, country: str | None) -> float | None:
        """One segment's price to ``country``; None when the table does not say."""
        if country is not None and country in self.prices:
            return self.prices[country]
        return self.prices.get("*")

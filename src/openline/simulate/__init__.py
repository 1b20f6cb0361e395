"""Rehearsing launch night: a flood of realistic texts at a running openline, a local carrier for its real
adapters to send through, and the arithmetic of how long thousands of autotexts take to leave."""

from __future__ import annotations

from openline.simulate.carrier import Carrier, CarrierOptions
from openline.simulate.carriers import TelnyxCarrier, TwilioCarrier
from openline.simulate.flood import FloodPlan, FloodReport, check_loopback, render, run_flood
from openline.simulate.projection import DEFAULT_VALIDITY_SECONDS, Projection, describe, project
from openline.simulate.story import LANGUAGES, Story, write_story
from openline.simulate.traffic import TwilioInbound, post_all

__all__ = [
    "DEFAULT_VALIDITY_SECONDS",
    "LANGUAGES",
    "Carrier",
    "CarrierOptions",
    "FloodPlan",
    "FloodReport",
    "Projection",
    "Story",
    "TelnyxCarrier",
    "TwilioCarrier",
    "TwilioInbound",
    "check_loopback",
    "describe",
    "post_all",
    "project",
    "render",
    "run_flood",
    "write_story",
]

"""The dispatcher: sends what the engine and the owner queue, paced per sender, never twice."""

from openline.dispatcher.checks import DEFAULT_VALIDITY, Due, SendRules, Verdict, final_check, final_checks, no_rules
from openline.dispatcher.dispatcher import MAX_ATTEMPTS, Dispatcher, backoff
from openline.dispatcher.leases import AMBIGUOUS
from openline.dispatcher.pacing import Pacer

__all__ = [
    "AMBIGUOUS",
    "DEFAULT_VALIDITY",
    "MAX_ATTEMPTS",
    "Dispatcher",
    "Due",
    "Pacer",
    "SendRules",
    "Verdict",
    "backoff",
    "final_check",
    "final_checks",
    "no_rules",
]

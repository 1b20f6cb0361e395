"""Segment counting throughput: the pure function the composer, the estimate and the dispatcher share.

One million texts of the kinds a fan line sends (plain GSM-7, long GSM-7 with € and CR LF, Italian,
emoji, Hindi, flags), counted one by one; the issue's target is 200,000 texts/s.
"""

from __future__ import annotations

import time

from bench.common import Headline, Options, Table
from openline.encoding import count_segments

__all__ = ["run"]

TARGET = 200_000
SAMPLES = [
    "Hi Sam, doors open at 8pm tonight. Reply STOP to opt out.",
    "Ciao! Il concerto è stasera alle 21. Rispondi STOP per annullare.",
    "See you in Milan on the 12th! 🎉🎉",
    "नमस्ते! आज रात 8 बजे मिलते हैं। बंद करने के लिए STOP लिखें।",
    "Tickets: €25 [VIP €60]\r\nReply YES to hold one. " * 4,
    "\U0001f1ee\U0001f1f9 " * 20,
    "This is a longer GSM-7 announcement for everyone on the list, " * 5,
]


def run(options: Options) -> Table:
    """segment counting texts/s (mixed GSM-7, UCS-2, emoji, Hindi, flags)"""
    count = 100_000 if options.smoke else 1_000_000
    texts = [SAMPLES[i % len(SAMPLES)] + str(i) for i in range(count)]
    started = time.perf_counter()
    for text in texts:
        count_segments(text)
    seconds = time.perf_counter() - started
    rate = count / seconds
    table = Table()
    table.rows.append(
        {
            "texts": f"{count:,}",
            "seconds": f"{seconds:.2f}",
            "texts/s": f"{rate:,.0f}",
            "target": f"{TARGET:,}",
            "rate/target": f"{rate / TARGET:.2f}",
        }
    )
    table.headlines.append(
        Headline("segment counting texts/s", "-", rate, "texts/s", target=f"≥ {TARGET:,}/s", met=rate >= TARGET)
    )
    table.notes.append(f"{len(SAMPLES)} kinds of text, each made distinct by a number")
    return table

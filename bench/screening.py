"""9. Privacy screening: the cost of `screen()` per 1,000 words of case text, against the floor of reading it.

The text is the labelled screening corpus (tests/unit/data/screening_corpus.jsonl: realistic wraparound case
texts, about half of them carrying identifiers), concatenated and cut into documents of 1,000 words, so the
rules meet the same mix of identifiers and plain prose the case form sends. The name index holds what a
deployment's would: ROSTER staff display names and AGENCIES agency names.

The anchor, measured in the same rounds over the same documents, is the physical floor of touching every
character once from Python: one pass of one compiled regex (`\\w+`, counting the words). A second reference,
`str.split()`, is printed too. The decomposition times the two halves of `screen()` (the structured rules,
phonenumbers included, and the name rules) and building the name index, which a case use case does per call.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Config, Figure, say
from services.community.domain import screening

BENCH = "9 screening"
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "unit" / "data" / "screening_corpus.jsonl"
WORDS = 1_000  # per document: the unit of the figure
DOCS = 20
ROUNDS = 15  # interleaved, median taken
ROSTER, AGENCIES = 500, 50
GOAL_MS = 50.0  # a case form re-screens on every save: this keeps it well under a human's notice

_SURNAMES = screening._words("""
Okafor Reyes Nguyen Whitfield Delgado Carter Brown Johnson Williams Garcia Miller Davis Rodriguez Martinez Hernandez
Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark
Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Hill Flores Green Adams Nelson Baker Hall Rivera
Campbell Mitchell Roberts
""")
_FIRST = sorted(screening._FIRST_NAMES)


def documents() -> list[str]:
    words: list[str] = []
    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    while len(words) < WORDS * DOCS:
        words += " ".join(texts).split()
    return [" ".join(words[i * WORDS:(i + 1) * WORDS]) for i in range(DOCS)]


def roster(r: random.Random) -> tuple[list[str], list[str]]:
    people = [f"{r.choice(_FIRST)} {r.choice(_SURNAMES)}" for _ in range(ROSTER)]
    agencies = [f"{r.choice(_SURNAMES)} {r.choice(['Family', 'Youth', 'Community'])} "
                f"{r.choice(['Services', 'Partners', 'Center', 'Alliance'])}" for _ in range(AGENCIES)]
    return people, agencies


def per_doc(fn: Callable[[str], object], docs: list[str]) -> float:
    """Seconds per document (1,000 words) for one pass over every document."""
    t = time.perf_counter()
    for d in docs:
        fn(d)
    return (time.perf_counter() - t) / len(docs)


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:,.3f} ms" if seconds < 0.01 else f"{seconds * 1000:,.1f} ms"


async def run(cfg: Config) -> list[Figure]:
    r = random.Random(2026)
    docs = documents()
    people, agencies = roster(r)
    index = screening.NameIndex.build(people, agencies)
    word = re.compile(r"\w+")
    cases: dict[str, Callable[[str], object]] = {
        "regex": lambda d: sum(1 for _ in word.finditer(d)),
        "split": lambda d: len(d.split()),
        "screen": lambda d: screening.screen(d, index),
        "screen_empty": lambda d: screening.screen(d),
        "structured": lambda d: list(screening._structured(d)),
        "names": lambda d: list(screening._names(d, index)),
    }
    for fn in cases.values():  # warm-up: compile caches, phonenumbers metadata
        per_doc(fn, docs[:2])
    times: dict[str, list[float]] = {k: [] for k in cases}
    builds: list[float] = []
    for _ in range(ROUNDS):
        for key in r.sample(list(cases), len(cases)):
            times[key].append(per_doc(cases[key], docs))
        t = time.perf_counter()
        screening.NameIndex.build(people, agencies)
        builds.append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    build = statistics.median(builds)
    anchor = med["regex"]
    findings = sum(len(screening.screen(d, index)) for d in docs) / len(docs)
    say(f"  {DOCS} documents of {WORDS:,} words from the labelled corpus, {findings:.0f} findings each; name index of "
        f"{ROSTER} staff and {AGENCIES} agencies; median of {ROUNDS} interleaved rounds, per 1,000 words:")
    for key, label in (("regex", "anchor: one \\w+ regex pass"), ("split", "str.split()"),
                       ("screen", "screen(), with the name index"), ("screen_empty", "screen(), no name index"),
                       ("structured", "structured rules (phonenumbers included)"), ("names", "name rules")):
        say(f"    {label:<45} {fmt(med[key]):>12}  {med[key] / anchor:>8.1f}x anchor")
    say(f"    {'NameIndex.build (once per call)':<45} {fmt(build):>12}")
    per_k = med["screen"]
    met = "met" if per_k * 1000 <= GOAL_MS else "NOT met"
    return [
        Figure(BENCH, "Anchor: one regex pass (\\w+) over 1,000 words of case text", fmt(anchor),
               f"anchor (str.split {fmt(med['split'])})"),
        Figure(BENCH, f"screen() per 1,000 words, name index of {ROSTER} staff + {AGENCIES} agencies", fmt(per_k),
               f"{per_k / anchor:.0f}x anchor", f"<= {GOAL_MS:.0f} ms: {met}"),
        Figure(BENCH, "  decomposition: structured rules (phonenumbers included)", fmt(med["structured"]),
               f"{med['structured'] / anchor:.0f}x anchor"),
        Figure(BENCH, "  decomposition: name rules", fmt(med["names"]), f"{med['names'] / anchor:.0f}x anchor"),
        Figure(BENCH, f"  decomposition: NameIndex.build ({ROSTER + AGENCIES} names, once per call)", fmt(build),
               f"{build / anchor:.0f}x anchor"),
    ]

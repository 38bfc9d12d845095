"""Privacy screening (HIPAA Safe Harbor) of case texts: a labelled corpus, targeted negatives, properties.

The corpus (data/screening_corpus.jsonl) holds short wraparound/ECHO case texts written for these tests, each
with the identifiers it carries as (kind, substring). A finding counts for an expected identifier when it has
the same kind and overlaps it. Recall on the structured kinds (all but name and place) must be >= 0.95;
precision and name recall are measured and reported (no fixed bar: names are the hard case).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.community.domain.screening import KINDS, STRUCTURED, Finding, NameIndex, screen

CORPUS = Path(__file__).parent / "data" / "screening_corpus.jsonl"
# What the roster and the agency list would hold in a real deployment.
KNOWN = NameIndex.build(people=["Maria Lopez", "Dana Whitfield", "Samuel Okafor"],
                        agencies=["Northside Family Partners", "Riverbend Youth Services"])


@dataclass(frozen=True)
class Item:
    text: str
    expect: list[tuple[str, int, int]]
    set: str  # "tuned"/"late": the rules were refined against it; "holdout": written last, never tuned against


def load() -> list[Item]:
    items = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        spans = []
        for kind, s in raw["expect"]:
            start = raw["text"].index(s)
            spans.append((kind, start, start + len(s)))
        items.append(Item(raw["text"], spans, raw.get("set", "tuned")))
    return items


def overlaps(f: Finding, kind: str, start: int, end: int) -> bool:
    return f.kind == kind and f.start < end and start < f.end


@dataclass
class Score:
    expected: Counter[str]
    recalled: Counter[str]
    found: Counter[str]
    correct: Counter[str]
    misses: list[str]
    false_positives: list[str]

    def recall(self, kinds: tuple[str, ...]) -> float:
        total = sum(self.expected[k] for k in kinds)
        return sum(self.recalled[k] for k in kinds) / total if total else 1.0

    def precision(self, kinds: tuple[str, ...] = KINDS) -> float:
        total = sum(self.found[k] for k in kinds)
        return sum(self.correct[k] for k in kinds) / total if total else 1.0

    def report(self, title: str = "screening corpus") -> str:
        lines = [f"{title}: {sum(self.expected.values())} labelled identifiers",
                 f"  recall structured {self.recall(STRUCTURED):.3f}, name {self.recall(('name',)):.3f}, "
                 f"place {self.recall(('place',)):.3f}; precision overall {self.precision():.3f}",
                 f"  {'kind':<15} {'expected':>8} {'recall':>7} {'found':>6} {'precision':>9}"]
        for k in KINDS:
            rec = f"{self.recall((k,)):.2f}" if self.expected[k] else "-"
            prec = f"{self.precision((k,)):.2f}" if self.found[k] else "-"
            lines.append(f"  {k:<15} {self.expected[k]:>8} {rec:>7} {self.found[k]:>6} {prec:>9}")
        lines += [f"  missed: {m}" for m in self.misses]
        lines += [f"  false positive: {m}" for m in self.false_positives]
        return "\n".join(lines)


def score(items: list[Item]) -> Score:
    s = Score(Counter(), Counter(), Counter(), Counter(), [], [])
    for item in items:
        findings = screen(item.text, KNOWN)
        for kind, start, end in item.expect:
            s.expected[kind] += 1
            if any(overlaps(f, kind, start, end) for f in findings):
                s.recalled[kind] += 1
            else:
                s.misses.append(f"{kind} {item.text[start:end]!r} in {item.text[:60]!r}")
        for f in findings:
            s.found[f.kind] += 1
            if any(overlaps(f, kind, start, end) for kind, start, end in item.expect):
                s.correct[f.kind] += 1
            else:
                s.false_positives.append(f"{f.kind} {f.text!r} in {item.text[:60]!r}")
    return s


@pytest.fixture(scope="module")
def measured(pytestconfig: pytest.Config) -> Score:
    items = load()
    s = score(items)
    holdout = score([i for i in items if i.set == "holdout"])
    text = (f"\n{s.report(f'screening corpus, all {len(items)} texts')}\n"
            f"{holdout.report('held-out part (written last, never tuned against)')}")
    # Shown whatever -s says: straight to the terminal (and in the report properties, see below).
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(text)
    else:
        print(text)
    return s


def test_the_corpus_is_large_and_mixed() -> None:
    items = load()
    assert len(items) >= 80
    with_ids = sum(1 for i in items if i.expect)
    assert 30 <= with_ids <= len(items) - 30


def test_recall_on_structured_identifiers_is_at_least_095(measured: Score, record_property) -> None:
    for k in KINDS:
        record_property(f"screening_{k}",
                        f"recall={measured.recall((k,)):.3f} precision={measured.precision((k,)):.3f}")
    record_property("screening_name_recall", f"{measured.recall(('name',)):.3f}")
    record_property("screening_precision", f"{measured.precision():.3f}")
    assert measured.recall(STRUCTURED) >= 0.95, measured.report()


def test_every_safe_harbor_kind_is_in_the_corpus_and_detected(measured: Score) -> None:
    assert {k for k in KINDS if measured.expected[k] == 0} == set()
    assert {k for k in KINDS if measured.recalled[k] == 0} == set(), measured.report()


# --- targeted cases ------------------------------------------------------------------------------------------

def kinds(text: str, names: NameIndex = NameIndex.EMPTY) -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in screen(text, names)]


@pytest.mark.parametrize("text", [
    "The family moved here in 2019 and the youth was age 7 then.",
    "She is 89 and still drives.", "Grandpa is 75 years old.", "The 45-year-old father works nights.",
    "aged 12, the youngest", "The Family Team Meeting is every Tuesday in March.",
    "MiiWrap strengths, needs and the question for the group.", "Mom and Dad both came; the coach facilitated.",
    "We meet in May and again in the fall.", "Scored 3/5 on the scale, 4 out of 5 last time.",
    "The youth has had 5 placements and 18 months in care, 20 years of history.",
    "Our Supervisor asked the Care Coordinator to invite the Probation Officer.",
    "In Ohio and in New York the rules differ.", "The plan was revised in 2025.", "", "   \n\t",
])
def test_things_that_are_not_identifiers(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("seen on March 3", [("date", "March 3")]),
    ("signed 3/14/2026 by mom", [("date", "3/14/2026")]),
    ("due the 5th of May", [("date", "the 5th of May")]),
    ("intake 2026-03-14", [("date", "2026-03-14")]),
    ("a 92-year-old grandmother", [("age_over_89", "92-year-old")]),
    ("grandma, aged 93,", [("age_over_89", "aged 93")]),
    ("she is 95", [("age_over_89", "she is 95")]),
    ("call 614-555-0199", [("phone", "614-555-0199")]),
    ("fax: 614-555-0142", [("fax", "614-555-0142")]),
    ("SSN 123-45-6789", [("ssn", "123-45-6789")]),
    ("MRN 448812", [("record_number", "448812")]),
    ("case #2023-11842", [("record_number", "2023-11842")]),
    ("client ID 55812", [("record_number", "55812")]),
    ("driver's license D1234567", [("license_number", "D1234567")]),
    ("lives at 1423 Elm Street", [("address", "1423 Elm Street")]),
    ("Apt 4B", [("address", "Apt 4B")]),
    ("Dayton, OH 45404", [("place", "Dayton"), ("zip", "45404")]),
    ("write to j.doe@example.org", [("email", "j.doe@example.org")]),
    ("from 192.168.10.4", [("ip", "192.168.10.4")]),
    ("see www.example.com/family", [("url", "www.example.com/family")]),
    ("her son Jaylen", [("name", "Jaylen")]),
    ("spoke with Ms. Okafor", [("name", "Okafor")]),
    ("Uncle Ray, 91, lives with them", [("name", "Ray"), ("age_over_89", "91")]),  # the age span is the number
    ("614-555-0142 (fax)", [("fax", "614-555-0142")]),
    ("please fax the release to 614-555-0102", [("fax", "614-555-0102")]),
    ("intake 2026-03-14", [("date", "2026-03-14")]),  # a date after a cue word stays a date
    ("Medicaid ID 7734112098", [("account_number", "7734112098")]),  # the cue beats a phone number's shape
    ("SSN ending in 3390", [("ssn", "3390")]),
    ("VIN 1HGCM82633A004352", [("vehicle", "1HGCM82633A004352")]),
    ("in her 90s", [("age_over_89", "in her 90s")]),
])
def test_identifiers_with_their_exact_spans(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


def test_known_names_are_found_whatever_their_case() -> None:
    index = NameIndex.build(["Samuel Okafor"], ["Riverbend Youth Services"])
    assert kinds("samuel okafor from riverbend youth services called", index) == [
        ("name", "samuel okafor"), ("name", "riverbend youth services")]
    assert kinds("samuel okafor called") == []  # only the index knows this lower-case name


def test_a_staff_first_name_that_is_a_word_counts_only_mid_sentence() -> None:
    index = NameIndex.build(["Will Hope"], [])
    assert kinds("Will the team meet again?", index) == []
    assert kinds("We asked Hope to facilitate.", index) == [("name", "Hope")]
    assert kinds("Will Hope facilitate?", index) == [("name", "Will Hope")]  # the whole name is known


def test_the_longest_most_specific_finding_wins_and_findings_do_not_overlap() -> None:
    found = screen("Fax 614-555-0142; SSN 123-45-6789; a.b@c.com")
    assert [(f.kind, f.text) for f in found] == [
        ("fax", "614-555-0142"), ("ssn", "123-45-6789"), ("email", "a.b@c.com")]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
       | st.lists(st.sampled_from(["Jaylen", "Ms.", "Okafor", "1423", "Elm", "Street", "Apt", "4B", "OH", "43215",
                                   "614-555-0199", "fax", "March", "3", "3/14/2026", "aged", "93", "MRN", "#",
                                   "a@b.co", "http://x.io", "10.0.0.1", "::1", "her son", ",", ".", "\n", " "]),
                  max_size=40).map(" ".join))
def test_screening_never_raises_and_spans_are_exact(text: str) -> None:
    found = screen(text, KNOWN)
    assert all(f.text == text[f.start:f.end] and f.start < f.end and f.kind in KINDS for f in found)
    assert found == sorted(found, key=lambda f: f.start)
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))

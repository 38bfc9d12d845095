"""HIPAA Safe Harbor screening of free text (45 CFR 164.514(b)(2)): find identifiers, report span and kind.

Pure: the standard library and `phonenumbers` (Google's libphonenumber, for telephone numbers) only.
`screen(text, names)` returns `Finding(kind, start, end, text)` sorted by start and never overlapping: when
two rules claim the same characters the longer span wins, then the more specific rule (an exact shape such as
an email or ###-##-####, then a cue-led identifier such as "Medicaid ID 7734112098", then fax, phone, the
other shapes, places, names, and last a bare run of digits). Every rule is linear in the text (bounded
look-backs, a word-keyed name index, phonenumbers run only on digit stretches): about 10 ms per 1,000 words
(`make bench ARGS="--only screening"`).

The 18 Safe Harbor categories, and what a case text can carry of each:

 1. Names -> `name`. The hard case, done by evidence, not by a model: the names Trellis knows (staff display
    names from the roster and agency names, `NameIndex`), titles ("Ms. Okafor", "Dr. Reyes"), cues ("named
    X", "called X", "her son Jaylen", "mom, Tasha"), a built-in list of common US first names (plus a
    following surname), and two capitalised words in running text that are not the template's vocabulary.
    A staff first name that is also a word ("Will") counts only mid-sentence; capitalised words with the
    endings of common nouns ("Quality Assurance", "Motivational Interviewing") are not taken for names.
    LIMITS: a lone surname or an unusual first name with no cue is missed ("Okonkwo-Baptiste was late"); a
    capitalised pair that is in fact a title or an organisation may be flagged ("Harry Potter"); precision
    and name recall are measured, not asserted (tests/unit/test_community_screening.py). Lower-case names
    are seen only when the index knows them.
 2. Geographic subdivisions smaller than a state -> `address` (street addresses with a house number, streets
    named without one, "Apt 4B", PO Boxes), `zip` (5 or 9 digits next to an address, a state or the word
    ZIP) and `place` ("Franklin County", "City of Dayton", "lives in Springfield", a named school, hospital or
    shelter). LIMITS: a bare city name with no cue ("back to Akron") is missed: no gazetteer is shipped.
    States are allowed by Safe Harbor and never flagged.
 3. Dates more specific than a year (and ages over 89) -> `date` ("March 3", "3/14/2026", "the 5th of May",
    "2026-03-14", "March 2026": the month is an element of a date) and `age_over_89` ("92-year-old", "aged
    93", "she is 95", "in her 90s", "ninety-one"). A bare year, a month or weekday alone, and ages up to 89
    are allowed. LIMITS: holidays ("Christmas Day") and relative dates ("last Tuesday") are not flagged.
 4. Telephone numbers -> `phone` (phonenumbers.PhoneNumberMatcher, region US, plus a pattern for
    fictional 555 numbers the library rejects). 5. Fax numbers -> `fax` (a phone number after "fax").
 6. Email addresses -> `email`.
 7. Social Security numbers -> `ssn` (###-##-####, or 9 digits / "ending in 1234" after an SSN cue).
 8. Medical record numbers -> `record_number` (MRN, chart, record, case, file, referral, client ID...).
 9. Health plan beneficiary numbers and 10. account numbers -> `account_number` (Medicaid/member/policy
    IDs, bank/card/account numbers after a cue).
11. Certificate/license numbers -> `license_number` (driver's license, license/permit/certificate number).
12. Vehicle identifiers -> `vehicle` (VINs by shape, plates and tags after a cue).
13. Device identifiers and serial numbers -> `device` (serial, S/N, IMEI, device ID after a cue).
14. URLs -> `url`. 15. IP addresses -> `ip` (IPv4 and IPv6, validated by `ipaddress`).
16. Biometric identifiers and 17. full-face photographs are not text: a case text can only mention them.
    They are not flagged (a mention of a fingerprint identifies no one); attachments are not screened here.
18. Any other unique identifying number, characteristic or code -> `other_id` (student/inmate/booking/
    passport/alien/voucher numbers, "ID 55812" after a cue, social media @handles, and any bare run of 7+
    digits no other rule explains). LIMITS: a username with no @ and no cue ("gamertag is ShadowWolf4417")
    is missed; so are numbers spelt out in words.

Screening is an aid, not a guarantee: the presenter fixes or justifies every finding, and the hub reviews.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import phonenumbers

KINDS = (
    "name", "date", "phone", "fax", "email", "address", "zip", "ssn", "record_number", "account_number",
    "license_number", "vehicle", "device", "url", "ip", "age_over_89", "other_id", "place",
)
STRUCTURED = tuple(k for k in KINDS if k not in ("name", "place"))

# Same span claimed by two rules: the lower priority wins (more specific first). A cue ("MRN", "Medicaid ID")
# says what a number is, so it beats the shape of a phone number; a bare run of digits comes last.
EXACT, CUED, FAX, PHONE, SHAPE, PLACE, NAME, BARE = range(8)
_Candidate = tuple[int, "Finding"]


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    text: str


def _words(block: str) -> list[str]:
    return block.split()


# --- names -----------------------------------------------------------------------------------------------

# Common US given names (Social Security top names across generations, and names common in the families the
# agencies serve). Names that are also everyday words (Hope, Grace, Will, May, June, Faith...) are left out:
# they are found only through a cue ("her daughter Hope") or the roster.
_FIRST_NAMES = frozenset(_words("""
Aaliyah Aaron Abigail Adam Adrian Aiden Aisha Alejandro Alex Alexander Alexis Alicia Alisha Allison Alyssa
Amanda Amari Amber Amir Amy Ana Andre Andrea Andrew Angel Angela Angelica Anita Ann Anna Anthony Antonio Ariana
Arianna Ashley Austin Ava Avery Barbara Benjamin Beth Betty Bianca Brandon Brayden Brenda Brian Brianna Brittany
Brooklyn Bryan Caleb Cameron Camila Carlos Carmen Carol Caroline Carter Cassandra Catherine Charles Charlotte
Chelsea Cheryl Chloe Christian Christina Christopher Cindy Claire Cody Connor Courtney Crystal Cynthia Daisy
Dakota Damian Daniel Daniela Danielle Darius Darnell David Deandre Deborah Denise Derek Deshawn Desiree Destiny
Devon Diana Diego Dominic Donald Donna Dylan Ebony Eduardo Elena Eli Elijah Elizabeth Ella Emily Emma Eric Erica
Erin Esperanza Ethan Eva Evelyn Fatima Felicia Fernando Francisco Gabriel Gabriela Gabriella Gary George Gloria
Guadalupe Hannah Harper Hector Heather Heidi Henry Isaac Isabel Isabella Isaiah Ivan Jacob Jada Jaden Jaime
Jake Jalen Jamal James Jamie Jaquan Jasmine Jason Javier Jayden Jaylen Jaylin Jazmin Jeffrey Jennifer Jeremiah
Jeremy Jesse Jessica Jesus Joanna Joel John Johnny Jonathan Jordan Jorge Jose Joseph Joshua Josiah Juan Julia
Julian Juliana Justin Kaitlyn Karen Karina Kate Katherine Kayla Keisha Kelly Kendra Kenneth Kevin Keyshawn Kiara
Kimberly Kyle Kylie Lakisha Latasha Latoya Laura Lauren Leah Leticia Liam Linda Lisa Logan Lucas Lucia Luis Luz
Madison Malik Marcus Maria Mariah Marisol Marquis Martha Martin Mary Mason Mateo Matthew Megan Melissa Mia
Michael Michelle Miguel Mohamed Monique Nancy Natalia Natalie Nathan Nevaeh Nicholas Nicole Noah Nora Olivia
Omar Oscar Pamela Patricia Patrick Paul Paula Pedro Priya Rachel Rafael Raul Rebecca Ricardo Richard Robert
Rosa Ryan Samantha Samuel Sandra Sara Sarah Savannah Scott Sean Sebastian Shanice Shaniqua Sharon Shawn Sofia
Sophia Stephanie Steven Susan Tamika Tanisha Tasha Taylor Terrence Thomas Tiffany Timothy Tonya Trevon Tyler
Tyrone Valentina Valeria Vanessa Veronica Victor Victoria William Xavier Yesenia Yolanda Zachary Zoe
"""))

# Capitalised words that are not names: the case template, the model's vocabulary, roles, calendar words,
# organisations and everyday sentence openers. A capitalised pair made of these is never a name.
_NOT_NAMES = frozenset(_words("""
A About After Again Agency All Also An And Any April As At August Aunt Auntie Baby Back Because Before Behavioral
Being Big Both Boys But By CPS Care Caregiver Case Center Child Children Christmas Church Clinic Coach Community
County Court Crisis Dad Daddy December Department During ECHO Each Early Easter Elementary English February
Family Father Finally First Fitness For Foster Friday From Grandma Grandmother Grandpa Grandfather Group Head He
Health Her Here High His Home Hospital How However I IEP If In Individualized It January July June Juvenile Last
March May Medicaid Medical Meeting Mental Middle MiiWrap Mom Mommy Monday Mother Mr Mrs Ms Dr Next No Not November
Now October Of On One Our Over Parent Partner Plan Probation Program Protective Public Question Recently Safety
Saturday School Section September Services She Since Sister So Social Some Spanish Start State Still Strengths
Sunday Support Teacher Team Thanksgiving That The Their Then There These They This Thursday To Today Tried
Tuesday Uncle Until We Wednesday What When Where While Who Why With Wraparound Yesterday You Youth Zoom Needs
Intensive Outpatient Residential Treatment Services Unit Plan Goals Goal Meetings Coordinator Facilitator
Supervisor Practitioner Therapist Worker Caseworker Judge Officer Nurse Doctor Principal Counselor Team's
Black White Latino Latina Hispanic Asian American African Native Christian Muslim Catholic Jewish God Bible
Street Avenue Road Lane Drive Boulevard Apt Apartment Suite Box Unit Fax Phone Email Date Age Name Yes Ok OK
Anonymous League Club Scouts YMCA YWCA Alcoholics Narcotics Planned Parenthood Security Income Supplemental
Medicare WIC SNAP
Monday's Friday's Week Weekend Month Year Morning Evening Night Afternoon Summer Winter Fall Spring Holiday
Emergency Room Primary Behavioral Developmental Disability Disabilities Services' Child's Mom's Dad's
Therapy Response General Guard National Dollar Villages Village Junior Senior Fair Quality Mobile Learning
Trauma Housing Authority Informed Functional Clinical Director Alternative Break Index Model Varsity Academy
University College Institute Association Alliance Network Coalition Foundation Society Council Board Office
Division Bureau Administration Ministry Hotline Helpline Shelter Pantry Bank Depot Store Market Express
Ford Dodge Chevy Chevrolet Toyota Honda Nissan Jeep Kia Hyundai Subaru Tesla Buick
Attention Deficit Hyperactivity Disorder Autism Spectrum Bipolar Depression Anxiety PTSD ADHD
"""))

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")

_STATES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho|"
    "Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|"
    "Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York|North Carolina|"
    "North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|"
    "Utah|Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming|District of Columbia|Puerto Rico"
)
_STATE_ABBR = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|"
    "OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|PR"
)
_STATE_NAMES = frozenset(_STATES.split("|"))

_CAP = r"[A-Z][a-z]+(?:['’-][A-Za-z][a-z]+)?"  # Jaylen, O'Neil, Smith-Jones (no possessive 's)
_TITLE = re.compile(rf"\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Judge|Officer|Detective|Pastor|Father|Sister|Rev|Reverend|"
                    r"Sgt|Deputy|Coach|Nurse|Attorney)\.?\s+"
                    rf"(?P<n>{_CAP}(?:\s+{_CAP})?)")
_CUE = re.compile(rf"\b(?i:named|called|calls? (?:him|her|them)self|name is|names are|goes by|known as|"
                  rf"nicknamed|signed by|spoke (?:to|with)|talked (?:to|with)|met with)\s+(?P<n>{_CAP}(?:\s+{_CAP})?)")
_REL = re.compile(
    r"\b(?i:son|daughter|brother|sister|mother|father|mom|mum|dad|grandmother|grandma|grandfather|grandpa|aunt|"
    r"auntie|uncle|cousin|niece|nephew|partner|boyfriend|girlfriend|husband|wife|fiancée?|stepdad|stepmom|"
    r"stepfather|stepmother|stepson|stepdaughter|sibling|child|baby|twins?|youth|friend|neighbou?r|"
    r"caseworker|teacher|therapist|counsel(?:l)?or|worker|PO|probation officer|foster (?:mom|dad|parent))"
    rf"(?:,|\s)\s*(?P<n>{_CAP}(?:\s+{_CAP})?)(?:\s+and\s+(?P<m>{_CAP}))?")
_CAPWORD = re.compile(rf"\b{_CAP}\b")
_NEXT_CAP = re.compile(rf"\s+({_CAP})\b")
_PAIR = re.compile(rf"\b(?P<a>{_CAP})\s+(?P<b>{_CAP})\b")


# Endings of common nouns and adjectives, rare in names: "Quality Assurance", "Motivational Interviewing" and the
# capitalised programme names of case notes are not people. A listed first name is exempt ("Avery").
_COMMON_ENDING = re.compile(r"(?:ing|tion|sion|ment|ity|ive|ics|ance|ence|ship|ness|ism|ory|ery|ative|ual|ial|"
                            r"ional|ized|ated|ful|less|apy|ogy|[a-z]{4}ed)$")


def _namey(word: str) -> bool:
    if word in _FIRST_NAMES:
        return True
    return (word not in _NOT_NAMES and word not in _MONTHS and word not in _STATE_NAMES
            and not _COMMON_ENDING.search(word))


_WORD = re.compile(r"\w+")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0).casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _gap(text: str) -> str:
    return " " if text.isspace() else " ".join(text.split()) or text


@dataclass(frozen=True)
class NameIndex:
    """Names Trellis knows: staff display names (roster) and agency names. Matched whole, case-insensitively,
    word by word (a dictionary keyed by the first word: linear in the text whatever the roster's size); single
    words of people's names (3+ letters, not everyday words) also count as name evidence when capitalised."""

    # first word -> every known name starting with it, as (words, the separators between them), longest first
    by_first: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = field(
        default_factory=dict, compare=False, hash=False)
    tokens: frozenset[str] = field(default_factory=frozenset)
    EMPTY: ClassVar[NameIndex]

    @classmethod
    def build(cls, people: Iterable[str], agencies: Iterable[str]) -> NameIndex:
        people = [p for p in people if p and p.strip()]
        grouped: dict[str, set[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        for name in [*people, *(a for a in agencies if a and a.strip())]:
            words = _tokens(name)
            if not words or len(name.strip()) < 3:
                continue
            gaps = tuple(_gap(name[a[2]:b[1]]) for a, b in itertools.pairwise(words))
            grouped.setdefault(words[0][0], set()).add((tuple(w for w, _, _ in words), gaps))
        by_first = {k: tuple(sorted(v, key=lambda n: -len(n[0]))) for k, v in grouped.items()}
        tokens = frozenset(t for p in people for t in re.findall(r"[A-Za-z][A-Za-z'’-]+", p)
                           if len(t) >= 3 and t[0].isupper() and _namey(t))
        return cls(by_first, tokens)

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        """Spans of known names in `text` (whole words, any case)."""
        if not self.by_first:
            return
        words = _tokens(text)
        i = 0
        while i < len(words):
            for names, gaps in self.by_first.get(words[i][0], ()):
                n = len(names)
                window = words[i:i + n]
                if len(window) == n and all(w[0] == x for w, x in zip(window, names, strict=True)) and all(
                        _gap(text[a[2]:b[1]]) == g for a, b, g in zip(window, window[1:], gaps, strict=False)):
                    yield window[0][1], window[-1][2]
                    i += n - 1
                    break
            i += 1


NameIndex.EMPTY = NameIndex()


# --- structured identifiers ------------------------------------------------------------------------------

_ID = r"(?P<id>[A-Z0-9][A-Z0-9-]*\d[A-Z0-9-]*)"  # an identifier token with at least one digit
_SEP = r"\s*(?:number|num\.?|no\.?|#|ID)?\s*(?:is|was|of|:|#)?\s*#?\s*"


def _cued(cues: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{cues}){_SEP}{_ID}(?![\w-])", re.IGNORECASE)


_RULES: list[tuple[str, int, re.Pattern[str]]] = [
    ("email", EXACT, re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("url", EXACT, re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>()\"']+[^\s<>()\"'.,;:!?]", re.IGNORECASE)),
    ("url", EXACT, re.compile(r"(?<![@\w.-])(?:[a-z0-9-]+\.)+(?:com|org|net|gov|edu|io|us|info|ly|me|co|app)"
                       r"(?:/[^\s<>()\"']*[^\s<>()\"'.,;:!?])?\b(?![@.\w])", re.IGNORECASE)),
    ("ssn", EXACT, re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")),
    ("ssn", CUED, re.compile(r"\b(?:SSN|SS#|social security(?: number| no\.?| #)?|social)\s*(?:is|:|#|of)?\s*"
                       r"(?:ending(?: in)? |last four(?: digits)?(?: are| is|:)? )?"
                       r"(?P<id>\d{3}[ -]?\d{2}[ -]?\d{4}|\d{4})\b",
                       re.IGNORECASE)),
    ("record_number", CUED, _cued(r"MRN|medical record|health record|record|chart|case|file|docket|petition|referral|"
                            r"intake|client|patient|encounter|claim|report|probation|court|juvenile|warrant|citation|"
                            r"CPS|DCFS|CYS|DHS")),
    ("account_number", CUED, _cued(r"account|acct\.?|bank account|checking|savings|routing|card(?: ending in)?|"
                             r"credit card|debit card|EBT(?: card)?|Medicaid|Medicare|member|policy|insurance|"
                             r"health plan|subscriber|beneficiary|group")),
    ("account_number", CUED, re.compile(r"\b(?:card|account) ending in\s+(?P<id>\d{4})\b", re.IGNORECASE)),
    ("license_number", CUED, _cued(r"driver'?’?s licen[cs]e|driving licen[cs]e|licen[cs]e|DL|permit|certificate|"
                             r"certification|registration|NPI|DEA|CDL|commercial driver'?’?s licen[cs]e")),
    ("vehicle", CUED, _cued(r"licen[cs]e plate|plate|tag|VIN|vehicle")),
    ("vehicle", CUED, re.compile(r"\b(?:licen[cs]e plate|plate|tag)(?:\s+(?:number|no\.?|#|is|reads|reading|of))*"
                                 r"\s*[:#]?\s*(?P<id>(?=[A-Z0-9 -]*\d)[A-Z0-9]{1,4}[ -][A-Z0-9]{2,5})(?![\w-])",
                                 re.IGNORECASE)),
    ("vehicle", SHAPE, re.compile(r"\b(?P<id>(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])"
                                  r"[A-HJ-NPR-Z0-9]{17})\b")),  # a VIN's shape
    ("device", CUED, _cued(r"serial|S/N|SN|IMEI|MAC|device|pump|monitor|tablet|phone serial|hearing aid|implant|"
                     r"ankle monitor")),
    ("other_id", CUED, _cued(r"student|inmate|booking|passport|alien|A-number|badge|employee|ID|identification|"
                       r"tribal|visa|green card|I-94|WIC|SNAP|housing voucher|voucher")),
    ("other_id", CUED, re.compile(r"(?<![\w@./])(?P<id>@[A-Za-z0-9_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?)")),  # @handle
    ("other_id", BARE, re.compile(r"(?<![\w$.,-])(?P<id>\d{7,})(?![\w.,-]\d)")),
]

_DATES = [
    re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"),  # ISO
    re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b"),  # 3/14/2026, 03-14-26, 14.03.2026
    re.compile(r"\b(?:on|since|until|by|from|dated|before|after|due|of|around|about|through|thru|date:|DOB:?)\s*"
               r"(?P<id>(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))\b(?!/)", re.IGNORECASE),  # "on 3/14"
    re.compile(rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}})?"),  # March 3(, 2026)
    re.compile(rf"\b(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?"),  # 5th of May
    re.compile(r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December|"
               r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.?,?\s+(?:of\s+)?(?:19|20)\d{2}\b"),  # March 2026
    re.compile(r"\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|"
               r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\s+(?:the\s+)?\d{1,2}(?:st|nd|rd|th)\b"),
]

_DATE_SHAPE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})")

_NUM_WORDS = r"ninety(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|(?:one )?hundred(?: and \w+)?"
_AGE = r"(?P<age>\d{2,3}|" + _NUM_WORDS + r")"
_AGES = [
    re.compile(rf"\b{_AGE}[- ](?:years?|yrs?|y/?o)(?:[- ]old)?\b", re.IGNORECASE),
    re.compile(rf"\b{_AGE}\s*y/?o\b", re.IGNORECASE),
    re.compile(rf"\b(?:aged?|age:|turn(?:ed|s|ing)?|(?:is|was) now)\s+{_AGE}\b", re.IGNORECASE),
    re.compile(rf"\b(?:she|he|they|grandma|grandpa|grandmother|grandfather|who) (?:is|was|are|'s|’s) {_AGE}\b"
               r"(?! (?:minutes|percent|%|pounds|lbs|miles|days|weeks|months|dollars))", re.IGNORECASE),
    re.compile(r"\b(?:in )?(?:her|his|their|the) (?:late |mid-?|early )?(?P<age>90s|nineties|100s)\b",
               re.IGNORECASE),
    # an appositive or a bracket after a person: "the great-aunt, 101 this spring," / "Grandma Rose (95)"
    re.compile(r"\b(?:(?i:grand\w*|great-\w+|aunt|uncle|mother|father|widow\w*|neighbou?r)|[A-Z][a-z]+)"
               r"(?:,\s*|\s*\()(?P<at>(?P<age>\d{2,3}))(?=\)|,| this| now| last| next| and| years)"),
]

_SUFFIX = (r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
           r"Circle|Cir|Highway|Hwy|Parkway|Pkwy|Trail|Trl|Pike|Square|Sq|Alley|Row|Loop")
_UNIT_ID = r"(?:\d+[A-Z]?|[A-Z]-?\d*)(?![\w-])"  # 4B, 12, C, B-2: a word ("unit on") is not a unit
_UNIT_WORD = rf"(?i:Apt|Apartment|Unit|Suite|Ste|Lot|Room|Rm|Trailer)\.?\s*#?\s*{_UNIT_ID}"
_UNIT = rf"(?:{_UNIT_WORD}|#\s*{_UNIT_ID})"
_ADDRESSES = [
    re.compile(rf"\b\d{{1,6}}\s+(?:[NSEW]\.?\s+|North\s+|South\s+|East\s+|West\s+)?(?:[A-Z0-9][\w'’-]*\s+){{1,3}}"
               rf"(?:{_SUFFIX})\b\.?(?:,?\s*{_UNIT})?"),
    re.compile(r"\b(?:on|at|off|near|down|of)\s+(?P<id>(?:[A-Z][\w'’]*\s+){1,2}"
               r"(?:Street|Avenue|Road|Boulevard|Lane|Drive|Terrace|Parkway|Highway|Pike))\b"),
    re.compile(rf"(?<![\w#]){_UNIT_WORD}"),
    re.compile(r"\bP\.?\s?O\.?\s+Box\s+\d+\b", re.IGNORECASE),
    re.compile(r"\b(?:corner of|intersection of)\s+(?P<id>[A-Z]\w+(?:\s+(?:and|&)\s+[A-Z]\w+))"),
]

_ZIP = r"(?P<zip>\d{5}(?:-\d{4})?)(?![\w-])"
_ZIPS = [
    re.compile(rf"\b(?:{_STATES}|{_STATE_ABBR})\.?,?\s+{_ZIP}"),
    re.compile(rf"\b(?:zip|zip code|postal code|zipcode)\s*(?:is|of|:)?\s*{_ZIP}", re.IGNORECASE),
]

_PLACE_WORDS = (r"Elementary|Middle School|High School|Academy|Hospital|Medical Center|Clinic|Shelter|"
                r"Church|Mosque|Temple|Park|Apartments|Homes|Courts|Village|Projects|Mall|Library|Jail|"
                r"Detention Center|Recreation Center|Rec Center|Community Center|Family Center|Head Start")
_PLACES = [
    re.compile(rf"\b(?:{_CAP}\s+){{1,2}}(?:County|Parish|Borough|Township)\b"),
    re.compile(rf"(?P<id>\b{_CAP}(?:\s+{_CAP})?),\s+(?:{_STATES}|{_STATE_ABBR})\b"),  # Columbus, OH
    re.compile(rf"\b(?:City|Town|Village|County) of\s+{_CAP}(?:\s+{_CAP})?"),
    re.compile(rf"\b(?:St\.?\s+)?{_CAP}(?:['’]s)?(?:\s+{_CAP})?\s+(?:{_PLACE_WORDS})\b"),
    re.compile(rf"\b(?:lives?|living|lived|moved|relocated|grew up|born|raised|resides?|stay(?:s|ed|ing)?|"
               rf"from|back)\s+(?:in|to|from|out of)\s+(?P<id>{_CAP}(?:\s+{_CAP})?)"),
]

# "fax" before the number in the same clause with no other number between ("fax the release to ..."), or "(fax)" after
_FAX = re.compile(r"\bfax(?:ed|ing)?\b[^.;!?\n\d]{0,40}$", re.IGNORECASE)
_FAX_AFTER = re.compile(r"\s*(?:\(fax\)|fax\b)", re.IGNORECASE)
_PHONE_STRETCH = re.compile(r"\+?\(?\d[\d\s().\-/]{5,24}\d")
_PHONE_FALLBACK = re.compile(r"(?<![\d-])(?:\+?1[-. ]?)?(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\d-])")


def _spans(kind: str, priority: int, pattern: re.Pattern[str], text: str, group: str = "id") -> Iterator[_Candidate]:
    for m in pattern.finditer(text):
        g = group if group in pattern.groupindex and m.group(group) is not None else 0
        start, end = m.span(g)
        if end > start:
            yield priority, Finding(kind, start, end, text[start:end])


def _structured(text: str) -> Iterator[_Candidate]:
    for kind, priority, pattern in _RULES:
        for c in _spans(kind, priority, pattern, text):
            if not (priority == CUED and _DATE_SHAPE.fullmatch(c[1].text)):  # "intake 2026-03-14" is a date
                yield c
    for pattern in _DATES:
        yield from _spans("date", SHAPE, pattern, text)
    for pattern in _AGES:
        for m in pattern.finditer(text):
            raw = m.group("age").lower()
            if raw.isdigit():
                over = 89 < int(raw) <= 125  # past 125 it is not an age
            else:
                over = raw.startswith(("ninet", "90s", "100s", "one hundred", "hundred"))
            if over:
                g = "at" if "at" in pattern.groupindex else 0  # the appositive's span is the number, not the person
                yield SHAPE, Finding("age_over_89", m.start(g), m.end(g), m.group(g))
    for pattern in _ADDRESSES:
        yield from _spans("address", SHAPE, pattern, text)
    for pattern in _ZIPS:
        yield from _spans("zip", SHAPE, pattern, text, "zip")
    for pattern in _PLACES:
        for c in _spans("place", PLACE, pattern, text):
            if c[1].text not in _NOT_NAMES:  # "a gray Dodge, Ohio plate": a make, not a town
                yield c
    yield from _ips(text)
    yield from _phones(text)


def _ips(text: str) -> Iterator[_Candidate]:
    for m in re.finditer(r"(?<![\w.:])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)|(?<![\w:])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:"
                         r"[0-9A-Fa-f:.]*(?![\w:])", text):
        try:
            ipaddress.ip_address(m.group(0))
        except ValueError:
            continue
        yield EXACT, Finding("ip", m.start(), m.end(), m.group(0))


def _phones(text: str) -> Iterator[_Candidate]:
    seen: list[tuple[int, int]] = []
    # libphonenumber's matcher is the slow part: hand it only the stretches that could hold a number
    # (7+ digits with the separators phone numbers use), each with a little context.
    for c in _PHONE_STRETCH.finditer(text):
        if sum(ch.isdigit() for ch in c.group(0)) < 7:
            continue
        lo = max(0, c.start() - 2)
        for match in phonenumbers.PhoneNumberMatcher(text[lo:c.end() + 2], "US",
                                                     leniency=phonenumbers.Leniency.POSSIBLE):
            seen.append((lo + match.start, lo + match.end))
    for m in _PHONE_FALLBACK.finditer(text):
        if not any(s <= m.start() < e for s, e in seen):
            seen.append(m.span())
    for start, end in seen:
        raw = text[start:end]
        if re.fullmatch(r"\d{3}-\d{2}-\d{4}", raw) or re.fullmatch(r"[\d\s]{1,6}", raw):
            continue  # an SSN's shape, or a short number phonenumbers accepts as a local one
        fax = _FAX.search(text[max(0, start - 50):start]) is not None or _FAX_AFTER.match(text, end) is not None
        yield (FAX, Finding("fax", start, end, raw)) if fax else (PHONE, Finding("phone", start, end, raw))


def _names(text: str, names: NameIndex) -> Iterator[_Candidate]:
    for start, end in names.find(text):
        yield NAME, Finding("name", start, end, text[start:end])
    for pattern in (_TITLE, _CUE):
        for m in pattern.finditer(text):
            yield from _name_words(text, m.start("n"), m.group("n"))
    for m in _REL.finditer(text):
        yield from _name_words(text, m.start("n"), m.group("n"))
        if m.group("m"):
            yield from _name_words(text, m.start("m"), m.group("m"))
    known = _FIRST_NAMES | names.tokens
    for m in _CAPWORD.finditer(text):
        word = m.group(0)
        if word in _FIRST_NAMES or (word in names.tokens and not _sentence_start(text, m.start())):
            # a staff member's first name that is also a word ("Will", "Hope") counts only mid-sentence
            end = m.end()
            after = _NEXT_CAP.match(text, end)
            if after and _namey(after.group(1)):
                end = after.end()
            yield NAME, Finding("name", m.start(), end, text[m.start():end])
    for m in _PAIR.finditer(text):
        a, b = m.group("a"), m.group("b")
        if not (_namey(a) and _namey(b)) or m.group(0) in _STATE_NAMES:
            continue
        if a not in known and _sentence_start(text, m.start()):
            continue  # "Transportation Vouchers were..." at a sentence start is not evidence
        yield NAME, Finding("name", m.start(), m.end(), m.group(0))


def _sentence_start(text: str, at: int) -> bool:
    window = text[max(0, at - 8):at]  # a bounded look back keeps the whole scan linear
    before = window.rstrip()
    return not before or "\n" in window[len(before):] or before[-1] in ".!?:;\"'(-–—•*"


def _name_words(text: str, start: int, words: str) -> Iterator[_Candidate]:
    """A cue-led name, dropping trailing words that are vocabulary ("Ms. Okafor Tuesday" -> "Ms. Okafor")."""
    parts = words.split()
    while parts and not _namey(parts[-1]):
        parts.pop()
    if parts:
        end = start + len(words) if len(parts) == len(words.split()) else text.index(parts[-1], start) + len(parts[-1])
        yield NAME, Finding("name", start, end, text[start:end])


def _resolve(found: Iterable[_Candidate]) -> list[Finding]:
    """Longest first, then the most specific; a candidate overlapping one already kept is dropped."""
    starts: list[int] = []  # kept spans never overlap, so sorted by start they are sorted by end too
    kept: list[Finding] = []
    for _, f in sorted(found, key=lambda c: (-(c[1].end - c[1].start), c[0], c[1].start)):
        k = bisect.bisect_right(starts, f.start)
        if (k > 0 and kept[k - 1].end > f.start) or (k < len(kept) and kept[k].start < f.end):
            continue
        starts.insert(k, f.start)
        kept.insert(k, f)
    return kept


def screen(text: str, names: NameIndex = NameIndex.EMPTY) -> list[Finding]:
    """Every Safe Harbor identifier found in `text`, sorted by start, non-overlapping."""
    if not text:
        return []
    return _resolve([*_structured(text), *_names(text, names)])

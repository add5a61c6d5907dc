"""Builds the labelled archival-search set: notes about people, and questions whose answer is one of the notes.

    .venv/bin/python benchmarks/data/make_archival_set.py          # writes benchmarks/data/archival_set.json

Every person has one note of each of 24 kinds (a pet, a job, a fear, a trip ...), so 50 people make 1,200 passages,
and every question names a person and asks about one kind. Two sorts of question:

- ``paraphrase``: asked in other words. Apart from the person's name and stopwords, a paraphrased question shares no
  word with ANY wording of its kind's notes (the script checks this), which is the case search by words cannot
  answer: "What frightens Ines?" for "Ines is terrified of deep water."
- ``keyword``: asked with a word the note contains, which search by words should keep answering.

The answer to a question is the one note of that person and kind. The same script makes the 100,000-passage store
of the speed benchmark (``people(n)`` with surnames), so the speed figures use the same kind of text. Deterministic:
the same seed gives the same file.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

SEED = 16
OUT = Path(__file__).with_name("archival_set.json")


def _list(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = _list("""Ana Bruno Chiara Dmitri Elif Farid Greta Hamid Ines Jonas Keiko Lars Malik Nadia Oskar Priya
Quentin Rosa Sami Tereza Umar Vera Wendell Ximena Yusuf Zofia Aiko Bram Carmen Desmond Esme Femi Gideon Hana Ivo Jolene
Kofi Leona Mateo Nell Otto Paloma Ravi Selma Tobias Ursula Viktor Wren Yara Zeno""")
SURNAMES = _list("""Abbott Bauer Castillo Dunn Eriksen Fischer Gallo Horvat Ito Jensen Kowalski Laine Moreau Novak
Okafor
Petrov Quinn Rossi Sato Tanaka Ueda Varga Weber Xu Yilmaz Zielinski""")

MONTHS = _list("January February March April May June July August September October November December")
CITIES = _list("Lisbon Tampere Galway Ljubljana Porto Bergen Tartu Graz Malmo Cork Lyon Brno Gdansk Seville Utrecht")


@dataclass(frozen=True)
class Kind:
    """One kind of note: how a note is worded, and how a question about it is asked."""

    name: str
    notes: tuple[str, ...]
    """Wordings of the note; ``{name}`` and ``{v}`` (a value) are filled in, and ``{month}``/``{city}`` at random."""
    values: tuple[str, ...]
    paraphrases: tuple[str, ...]
    keywords: tuple[str, ...]
    """One per wording of the note, in the same order: a few of that wording's own words."""


KINDS = (
    Kind(
        "pet",
        ("{name} adopted {v} from the rescue centre last spring.", "{name} shares the flat with {v}."),
        (
            "a grey tabby cat",
            "a shy greyhound",
            "two green parakeets",
            "an old tortoise",
            "a black labrador",
            "a pair of goldfish",
            "a ginger kitten",
            "a beagle puppy",
        ),
        ("Which animal does {name} keep?", "Is there a furry or feathered companion in {name}'s household?"),
        ("{name} rescue centre", "{name} flat"),
    ),
    Kind(
        "birthday",
        ("{name} turns {v} on the ninth of {month}.", "{name}'s birthday falls in {month}; the cake is ordered."),
        ("thirty", "forty", "twenty-five", "sixty", "fifty", "thirty-three"),
        (
            "When should I congratulate {name} for getting older?",
            "What date is {name}'s party to celebrate another year?",
        ),
        ("{name} turns ninth", "{name} birthday cake"),
    ),
    Kind(
        "job",
        ("{name} works as {v}.", "{name} has been earning a living as {v} for six years."),
        (
            "a night-shift nurse",
            "a primary school teacher",
            "a software engineer",
            "a bus driver",
            "a pastry chef",
            "an accountant",
            "a carpenter",
            "a vet",
        ),
        ("What is {name}'s profession?", "How does {name} pay the bills?"),
        ("{name} works", "{name} earning living"),
    ),
    Kind(
        "allergy",
        ("{name} is allergic to {v} and always carries antihistamines.", "{v} give {name} a rash and swollen eyes."),
        ("peanuts", "shellfish", "cat hair", "pollen", "penicillin", "wasp stings", "strawberries"),
        ("What must {name} avoid for health reasons?", "Which substance causes {name} a bad reaction?"),
        ("{name} allergic", "{name} rash swollen eyes"),
    ),
    Kind(
        "hometown",
        ("{name} grew up in {v}, a small town by the sea.", "{name} spent a childhood in {v} and still misses it."),
        ("Whitby", "Hoorn", "Cefalu", "Piran", "Kinsale", "Honfleur", "Skagen"),
        ("Where was {name} raised?", "Which place does {name} come from originally?"),
        ("{name} grew up", "{name} childhood"),
    ),
    Kind(
        "food",
        ("{name}'s favourite dish is {v}.", "Ask {name} about {v}: it is the meal they love most."),
        ("mushroom risotto", "lamb tagine", "pad thai", "spinach lasagne", "fish tacos", "chicken katsu curry"),
        ("What would {name} order at a restaurant?", "Which cooking makes {name} happiest?"),
        ("{name} favourite dish", "{name} meal"),
    ),
    Kind(
        "fear",
        ("{name} is terrified of {v}.", "{name} panics around {v} and cannot hide it."),
        ("heights", "spiders", "deep water", "thunderstorms", "flying", "crowded lifts", "clowns"),
        ("What frightens {name}?", "What scares {name}?"),
        ("{name} terrified", "{name} panics"),
    ),
    Kind(
        "instrument",
        ("{name} plays the {v} in a weekend band.", "{name} practises the {v} every evening after dinner."),
        ("cello", "drums", "trumpet", "banjo", "piano", "violin", "saxophone", "harp"),
        ("What music does {name} make?", "Which instrument is {name} good at?"),
        ("{name} band", "{name} practises"),
    ),
    Kind(
        "sport",
        ("{name} {v} twice a week.", "To stay in shape {name} {v} before work."),
        (
            "swims lengths at the public pool",
            "cycles along the canal",
            "plays tennis at the club",
            "climbs at the bouldering gym",
            "rows on the river",
            "practises judo",
            "goes running in the park",
        ),
        ("How does {name} keep fit?", "What exercise does {name} do?"),
        ("{name} twice a week", "{name} shape"),
    ),
    Kind(
        "car",
        ("{name} drives {v} that needs new brakes before winter.", "{name} bought {v} second-hand last year."),
        ("a battered red hatchback", "an electric van", "a vintage motorbike", "a silver estate", "a camper van"),
        ("What vehicle does {name} own?", "Is {name}'s transport due for repairs?"),
        ("{name} brakes", "{name} bought second-hand"),
    ),
    Kind(
        "language",
        ("{name} is learning {v} at an evening class.", "{name} takes {v} lessons on Tuesdays."),
        ("Japanese", "Portuguese", "Welsh", "Korean", "Arabic", "Finnish", "Greek"),
        ("Which foreign tongue is {name} studying?", "What is {name} trying to speak?"),
        ("{name} learning", "{name} lessons"),
    ),
    Kind(
        "travel",
        ("{name} plans a trip to {v} in {month}.", "{name} has booked flights to {v}."),
        ("Iceland", "Vietnam", "Peru", "Morocco", "New Zealand", "Georgia", "Japan"),
        ("Where is {name} going on holiday?", "Which destination did {name} pick for a vacation?"),
        ("{name} trip", "{name} flights"),
    ),
    Kind(
        "appointment",
        ("{name} sees the {v} on Thursday morning.", "{name} booked a slot with the {v} for next week."),
        ("dentist", "physiotherapist", "optician", "dermatologist", "cardiologist"),
        ("When is {name}'s upcoming health check?", "Which clinic visit is coming up for {name}?"),
        ("{name} Thursday", "{name} booked slot"),
    ),
    Kind(
        "reading",
        ("{name} is halfway through {v}.", "{name} borrowed {v} from the library."),
        (
            "a biography of a Victorian engineer",
            "a crime novel set in Oslo",
            "a history of bees",
            "a collection of Irish poems",
            "a thriller about submarines",
        ),
        ("What is {name} reading at the moment?", "Which title is on {name}'s bedside table?"),
        ("{name} halfway", "{name} library"),
    ),
    Kind(
        "family",
        ("{name}'s {v} lives in {city}.", "{name} phones a {v} in {city} every Sunday."),
        ("older brother", "younger sister", "grandmother", "cousin", "uncle", "twin"),
        ("Where do {name}'s relatives live?", "Which relation of {name} is far away?"),
        ("{name} lives in", "{name} phones Sunday"),
    ),
    Kind(
        "diet",
        ("{name} follows {v}.", "{name} switched to {v} for good."),
        ("a strict vegan diet", "a gluten-free diet", "a low-salt diet", "a vegetarian diet", "a dairy-free diet"),
        ("Are there foods {name} refuses?", "What can't {name} have at dinner?"),
        ("{name} follows", "{name} switched"),
    ),
    Kind(
        "garden",
        ("{name} grows {v} on the allotment.", "{name}'s vegetable patch is full of {v} this year."),
        ("tomatoes", "pumpkins", "strawberries", "runner beans", "courgettes", "potatoes"),
        ("What crops does {name} cultivate?", "What does {name} harvest?"),
        ("{name} allotment", "{name} vegetable patch"),
    ),
    Kind(
        "drink",
        ("{name} drinks {v} every morning.", "{name} cannot start the day without {v}."),
        ("strong black coffee", "green tea", "hot chocolate", "fresh orange juice", "mint tea"),
        ("What is {name}'s breakfast beverage?", "What does {name} sip at dawn?"),
        ("{name} drinks", "{name} start day"),
    ),
    Kind(
        "moving",
        ("{name} is moving to a flat in {v} next month.", "{name} signed a lease on a house in {v}."),
        tuple(CITIES[:8]),
        ("Where will {name} relocate?", "What is {name}'s new address going to be?"),
        ("{name} moving", "{name} lease"),
    ),
    Kind(
        "wedding",
        ("{name} and {v} got married in {month}.", "{name} said yes to {v} at a registry office."),
        ("Sam", "Alex", "Robin", "Jamie", "Noor", "Kit"),
        ("Who is {name}'s spouse?", "When was {name}'s wedding?"),
        ("{name} married", "{name} registry office"),
    ),
    Kind(
        "sleep",
        ("{name} rarely goes to bed before {v}.", "{name} stays up until {v} most nights."),
        ("one in the morning", "two in the morning", "midnight", "half past eleven"),
        ("Is {name} a night owl?", "What time does {name} fall asleep?"),
        ("{name} bed", "{name} stays up"),
    ),
    Kind(
        "children",
        ("{name}'s daughter {v} starts school in September.", "{name}'s son {v} just learned to ride a bike."),
        ("Lily", "Omar", "Maya", "Theo", "Zara", "Leo"),
        ("Does {name} have kids?", "How old is {name}'s child?"),
        ("{name} daughter", "{name} son"),
    ),
    Kind(
        "volunteering",
        ("{name} volunteers at {v} on Saturdays.", "{name} gives time to {v} without pay."),
        ("the food bank", "a hospice", "the animal shelter", "a youth football club", "the repair cafe"),
        ("Where does {name} help out for free?", "What charity work does {name} do?"),
        ("{name} volunteers", "{name} without pay"),
    ),
    Kind(
        "injury",
        ("{name} broke {v} skiing last winter.", "{name} still has a cast on {v} after a fall."),
        ("a wrist", "an ankle", "two ribs", "a collarbone", "a thumb"),
        ("Has {name} been hurt recently?", "What injury did {name} suffer?"),
        ("{name} broke skiing", "{name} cast"),
    ),
)

STOPWORDS = set(
    _list("""a about am an and any are as at be been but by can could did do does for from had has have he her him
    his how i
    if in into is it its me my no not of on or our she so than that the their them then there these they this to us
    was we were what when where which who whom why will with would you your s t""")
)


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPWORDS}


def check_paraphrases() -> None:
    """A paraphrase shares no word (but the name and stopwords) with any wording or value of its kind."""
    for kind in KINDS:
        note_words = set().union(*(words(n) for n in kind.notes), *(words(v) for v in kind.values))
        note_words |= words(" ".join(MONTHS + CITIES))
        for question in kind.paraphrases:
            shared = words(question.replace("{name}", "")) & note_words
            assert not shared, f"{kind.name}: {question!r} shares {sorted(shared)} with its notes"


def people(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct names: first names alone while they last, then first name and surname (1,300), then with a
    middle initial as well (33,800 more)."""
    if count <= len(FIRST_NAMES):
        return FIRST_NAMES[:count]
    names = [f"{first} {last}" for last in SURNAMES for first in FIRST_NAMES]
    if count > len(names):
        names += [f"{f} {chr(65 + i)}. {s}" for i in range(26) for s in SURNAMES for f in FIRST_NAMES]
    if count > len(names):
        raise ValueError(f"at most {len(names)} people")
    rng.shuffle(names)
    return names[:count]


def note(kind: Kind, name: str, rng: random.Random) -> tuple[str, int]:
    """The note's text, and which wording it used."""
    wording = rng.randrange(len(kind.notes))
    value = rng.choice(kind.values)
    text = kind.notes[wording].format(name=name, v=value, month=rng.choice(MONTHS), city=rng.choice(CITIES))
    return text[0].upper() + text[1:], wording


def passages(people_names: list[str], rng: random.Random, limit: int | None = None) -> list[dict[str, object]]:
    """One note per person and kind, shuffled, numbered from 0."""
    rows = [(name, kind) for name in people_names for kind in KINDS]
    rng.shuffle(rows)
    rows = rows[:limit] if limit else rows
    out = []
    for i, (name, kind) in enumerate(rows):
        text, wording = note(kind, name, rng)
        out.append({"id": i, "person": name, "kind": kind.name, "wording": wording, "text": text})
    return out


def questions(rows: list[dict[str, object]], rng: random.Random, paraphrased: int, keyword: int) -> list[dict]:
    by_kind = {k.name: k for k in KINDS}
    picked = rng.sample(rows, paraphrased + keyword)
    out = []
    for i, row in enumerate(picked):
        kind = by_kind[str(row["kind"])]
        sort = "paraphrase" if i < paraphrased else "keyword"
        template = rng.choice(kind.paraphrases) if sort == "paraphrase" else kind.keywords[int(row["wording"])]
        out.append({"text": template.format(name=row["person"]), "sort": sort, "relevant": [row["id"]]})
    return out


def build(people_count: int = 50, paraphrased: int = 120, keyword: int = 40, seed: int = SEED) -> dict:
    check_paraphrases()
    rng = random.Random(seed)
    rows = passages(people(people_count, rng), rng)
    return {
        "about": "Made by benchmarks/data/make_archival_set.py; see its docstring.",
        "seed": seed,
        "passages": rows,
        "queries": questions(rows, rng, paraphrased, keyword),
    }


if __name__ == "__main__":
    data = build()
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(data['passages'])} passages, {len(data['queries'])} questions")

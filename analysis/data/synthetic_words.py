"""Word lists and phrase tables for the synthetic news generator (our own text, no external data).

Each topic has actors (noun phrase + a two-word short form), events (verb base / past /
third-person present + object phrase + a short form), a unit for the affected number, and quotes.
"""

from __future__ import annotations

# topic -> {"actors": [(phrase, short)], "events": [(base, past, present, object, short)],
#           "unit": str, "quotes": [str]}
TOPICS: dict[str, dict] = {
    "science": {
        "actors": [
            ("a university research team", "research team"),
            ("the national space agency", "space agency"),
            ("a group of marine biologists", "marine biologists"),
            ("two young engineers", "young engineers"),
        ],
        "events": [
            ("discover", "discovered", "discovers", "a new species of glowing fish", "glowing fish"),
            ("launch", "launched", "launches", "a small weather satellite", "weather satellite"),
            ("build", "built", "builds", "a solar powered boat", "solar boat"),
            ("map", "mapped", "maps", "an ancient underground river", "underground river"),
        ],
        "unit": "students",
        "quotes": ["We did not expect results this fast", "This changes how we study the sea"],
    },
    "sports": {
        "actors": [
            ("the local football club", "football club"),
            ("a veteran marathon runner", "marathon runner"),
            ("the women's hockey team", "hockey team"),
            ("a teenage tennis player", "tennis player"),
        ],
        "events": [
            ("win", "won", "wins", "the regional championship", "regional title"),
            ("break", "broke", "breaks", "a forty year old record", "old record"),
            ("sign", "signed", "signs", "a new head coach", "new coach"),
            ("open", "opened", "opens", "a free summer training camp", "training camp"),
        ],
        "unit": "fans",
        "quotes": ["We trained every single morning for this", "The whole town deserves this moment"],
    },
    "business": {
        "actors": [
            ("a family owned bakery", "family bakery"),
            ("the largest local employer", "local employer"),
            ("a small software startup", "software startup"),
            ("the city's oldest bookstore", "old bookstore"),
        ],
        "events": [
            ("open", "opened", "opens", "a second shop downtown", "second shop"),
            ("raise", "raised", "raises", "wages for all workers", "worker wages"),
            ("close", "closed", "closes", "its main factory", "main factory"),
            ("launch", "launched", "launches", "a delivery service by bicycle", "bike delivery"),
        ],
        "unit": "customers",
        "quotes": ["Our customers asked for this for years", "It was a hard choice but the right one"],
    },
    "health": {
        "actors": [
            ("the regional hospital", "regional hospital"),
            ("a team of nurses", "nurse team"),
            ("the public health office", "health office"),
            ("a community clinic", "community clinic"),
        ],
        "events": [
            ("start", "started", "starts", "a free vaccination drive", "vaccination drive"),
            ("open", "opened", "opens", "a new children's ward", "children's ward"),
            ("test", "tested", "tests", "a faster flu screening", "flu screening"),
            ("extend", "extended", "extends", "its night opening hours", "night hours"),
        ],
        "unit": "patients",
        "quotes": ["Nobody should wait hours to see a doctor", "Prevention is cheaper than treatment"],
    },
    "politics": {
        "actors": [
            ("the city council", "city council"),
            ("the newly elected mayor", "new mayor"),
            ("a coalition of local parties", "party coalition"),
            ("the regional governor", "regional governor"),
        ],
        "events": [
            ("approve", "approved", "approves", "a plan for a new bridge", "bridge plan"),
            ("reject", "rejected", "rejects", "a proposed parking tax", "parking tax"),
            ("announce", "announced", "announces", "an early election", "early election"),
            ("cut", "cut", "cuts", "the budget for road repairs", "road budget"),
        ],
        "unit": "voters",
        "quotes": ["This decision was long overdue", "We listened to every neighbourhood"],
    },
    "environment": {
        "actors": [
            ("a volunteer cleanup group", "cleanup group"),
            ("the parks department", "parks department"),
            ("local beekeepers", "local beekeepers"),
            ("a school climate club", "climate club"),
        ],
        "events": [
            ("plant", "planted", "plants", "a thousand oak trees", "oak trees"),
            ("clean", "cleaned", "cleans", "the polluted river banks", "river banks"),
            ("protect", "protected", "protects", "a rare wetland", "rare wetland"),
            ("ban", "banned", "bans", "plastic bags at the market", "plastic bags"),
        ],
        "unit": "residents",
        "quotes": ["Small steps add up to real change", "Our children will thank us for this"],
    },
    "culture": {
        "actors": [
            ("the city museum", "city museum"),
            ("a local jazz band", "jazz band"),
            ("a first time novelist", "new novelist"),
            ("the community theatre", "community theatre"),
        ],
        "events": [
            ("host", "hosted", "hosts", "a free open air festival", "open air festival"),
            ("unveil", "unveiled", "unveils", "a lost painting", "lost painting"),
            ("win", "won", "wins", "a national arts prize", "arts prize"),
            ("restore", "restored", "restores", "a historic concert hall", "concert hall"),
        ],
        "unit": "visitors",
        "quotes": ["Art belongs to everyone in this town", "We wanted people to dance in the streets"],
    },
    "technology": {
        "actors": [
            ("the public library", "public library"),
            ("a high school robotics team", "robotics team"),
            ("the transit authority", "transit authority"),
            ("a group of retired engineers", "retired engineers"),
        ],
        "events": [
            ("introduce", "introduced", "introduces", "free wireless internet", "free internet"),
            ("design", "designed", "designs", "a delivery robot", "delivery robot"),
            ("test", "tested", "tests", "driverless shuttle buses", "driverless buses"),
            ("release", "released", "releases", "a phone app for bus times", "bus app"),
        ],
        "unit": "commuters",
        "quotes": ["Technology should make daily life simpler", "We built it in a garage over one winter"],
    },
}

PLACES = [
    "Riverton", "Maple Falls", "Port Ellis", "Cedar Bay", "Northfield",
    "Silver Lake", "Oakridge", "Brightwater", "Stonehaven", "Willow Creek",
]  # fmt: skip

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

INTERROGATIVES = ("why", "how", "what", "will", "can", "could", "should", "is", "are", "did", "does", "who")
QUESTION_OPENERS = ("Why did", "How did")
LIST_NOUNS = ("things", "facts", "reasons", "ways")
INTERJECTIONS = ("wow", "huge", "amazing", "incredible", "big")
EXCLAIM_OPENERS = ("Wow", "Huge news", "Amazing", "Big day")

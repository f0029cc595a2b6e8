"""Cues that a topic word is said of someone else, or taught (issue 13).

Why: a topic word ("self harm", "anorexia", "nudes", "county lines", "samobójstwo") names a
subject. In a school it is mostly said in a lesson, a help page, a policy, or by a pupil asking
how to help a friend; the detection data's labelling rule is that help for someone else is benign,
because an alert on it punishes what PSHE teaches. The lists first answered this with enumerated
``unless`` frames ("friend who self harms", "signs of self harm"); on unseen text those frames
caught about a third of the phrasings (BENCHMARKS.md, issue 13). This is the general form: a rule
marked ``topic = true`` does not fire when one of these cue words stands in the same sentence
within :data:`NEAR` words of it (before or after). A first-person phrase ("i self harm", "im
anorexic", "i want to kill myself") is its own rule, is not a topic rule, and is never cancelled
by a cue, so "my friend self harms and so do i, i cut myself" still fires on "cut myself". The
sentence model is not silenced by a cue: it judges the whole sentence for itself.

The cues were written from general knowledge of how these topics come up in school: other people
named (friends, classmates, "someone"; not bare pronouns, since "her nudes going round" names a
victim, not a lesson, and not relatives: "my brother has a gambling addiction" is about the
child's home), the words of lessons and help pages, and other PSHE topics named beside it.
A few ("talked to us", "nurse", "coping", "impact", "affects", the PSHE topics) were added after
reading the dev split's list false alarms with the generated ``unless`` frames switched off; none
came from a test split. Branch detect6 added words for a text studied, a subject taught, help for
a named other, a policy and help sites, plus a book word per language, after a hard dev batch
written before any tuning showed lessons and books still firing (wordlists/README.md, "More cues
and frames"). Each is matched as whole words after the matcher's folding (diacritics
and case folded, so "kolezanka" covers "koleżanka").
"""

from __future__ import annotations

__all__ = ["CUES", "NEAR"]

NEAR = 8  # words between a cue and the topic word, in the same sentence

_EN = (
    # someone else
    "friend", "friends", "frend", "freind", "frnd", "mate", "mates", "bestie", "bff", "classmate", "classmates",
    "someone", "somebody", "anyone", "people", "person", "pupil", "pupils", "student", "students",
    "child", "children", "kids", "teens", "teenagers", "young people", "character",
    "characters", "victim", "victims",
    # taught, read or looked up
    "lesson", "lessons", "learn", "learned", "learnt", "learning", "taught", "teaching",
    "assembly", "pshe", "rshe", "rse", "citizenship", "tutor time", "form time", "homework",
    "essay", "project", "presentation", "research", "revision", "quiz", "worksheet", "leaflet",
    "poster", "documentary", "article", "novel", "poem", "statistics", "stats", "signs",
    "symptoms", "awareness", "prevention", "support", "helpline", "charity", "nhs", "childline",
    "samaritans", "papyrus", "young minds", "youngminds", "kooth", "information", "facts",
    "myths", "dangers", "effects", "causes", "risks", "policy", "debate", "discuss",
    "discussed", "discussion", "topic", "topics", "wikipedia", "bitesize", "news",
    "talked to us", "told us", "showed us", "taught us", "nurse", "counsellor", "coping",
    "impact", "understand", "affects", "brain", "stimulant", "illegal", "law",
    # another PSHE topic named beside it: a list of topics is a lesson or a policy
    "mental health", "wellbeing", "cyberbullying", "cyber bullying", "online safety",
    "e safety", "consent", "radicalisation", "knife crime", "gangs", "exploitation", "trolling",
    # branch detect6: a text studied, a subject taught, help for a named other, a policy, a help
    # site. Not "history" ("a history of self harm"), "exam" ("exam stress made me self harm"),
    # "teacher" or "staff" ("a teacher saw my self harm"), bare "re" (the matcher splits "we're")
    "book", "books", "chapter", "quote", "quotes", "analysis", "analyse", "analyze", "theme",
    "themes", "author", "shakespeare", "literature", "science", "biology", "chemistry",
    "sociology", "psychology", "computing", "in re", "re lesson", "re homework", "religious",
    "religion", "religions", "christians", "christianity", "islam", "bible", "quran", "debated",
    "debating", "debates", "helplines", "charities", "help him", "help her", "help them",
    "support him", "support her", "support them", "worried about him", "worried about her",
    "worried about them", "safeguarding", "designated", "acceptable use", "forbidden",
    "prohibited", "not permitted", "thinkuknow", "ceop", "nspcc", "barnardos", "gambleaware",
    "gamcare",
)
_OTHER = (
    # cy
    "ffrind", "ffrindiau", "gwers", "gwersi", "dysgu", "dysgon", "abch", "rhywun", "pobl",
    # pl
    "przyjaciel", "przyjaciolka", "przyjaciółka", "kolega", "kolezanka", "koleżanka", "lekcja",
    "lekcji", "lekcje", "lekcjach", "wychowawczej", "ktos", "ktoś", "ludzie", "ludzi",
    "uczniowie", "mlodziez", "młodzież", "mlodziezy", "młodzieży", "profilaktyka",
    # ro
    "prieten", "prietena", "prietenă", "prietenul", "prietenei", "lectie", "lecție", "lectia",
    "lecția", "dirigentie", "dirigenție", "cineva", "oameni", "oamenii", "elevi", "tineri",
    "tinerii",
    # ur, ur-Latn
    "دوست", "سبق", "کلاس", "کوئی", "لوگ", "لوگوں", "dost", "sabaq", "koi", "logon",
    # pa
    "ਦੋਸਤ", "ਸਹੇਲੀ", "ਪਾਠ", "ਕਲਾਸ", "ਕੋਈ", "ਲੋਕ", "ਲੋਕਾਂ",
    # bn
    "বন্ধু", "বান্ধবী", "ক্লাস", "ক্লাসে", "পাঠ", "কেউ", "মানুষ", "লোক",
    # ar
    "صديق", "صديقي", "صديقتي", "صاحبي", "صاحبتي", "درس", "الدرس", "الحصة", "احد", "أحد",
    "الناس",
    # so
    "saaxiib", "saaxiibkay", "saaxiibtay", "saaxiibkey", "cashar", "casharka", "qof", "dadka",
    # pt, es
    "amigo", "amiga", "amigos", "amigas", "colega", "aula", "alguem", "alguém", "pessoas",
    "palestra", "clase", "tutoria", "tutoría", "alguien", "personas", "companero", "compañero",
    "companera", "compañera", "charla",
    # fr
    "ami", "amie", "copain", "copine", "cours", "quelqu un", "gens", "personnes",
    # lt
    "draugas", "drauge", "draugė", "draugei", "draugui", "pamoka", "pamokoje", "pamokos",
    "per pamoka", "kazkas", "kažkas", "zmones", "žmonės",
    # tr
    "arkadas", "arkadaş", "arkadasim", "arkadaşım", "ders", "derste", "dersinde", "biri",
    "birisi", "insanlar",
    # a book or a novel read in class, per language (branch detect6)
    "llyfr", "ksiazka", "książka", "ksiazce", "książce", "lektura", "lekturze", "carte",
    "cartea", "romanul", "کتاب", "kitab", "ਕਿਤਾਬ", "বই", "كتاب", "الكتاب", "رواية", "buug",
    "buugga", "livro", "libro", "novela", "obra", "livre", "roman", "knyga", "knygoje", "kitap",
    "kitapta",
)
CUES: tuple[str, ...] = tuple(dict.fromkeys((*_EN, *_OTHER)))

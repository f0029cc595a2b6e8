"""Per-category cases for the default wordlists: real obfuscations and real false-positive traps.

One section per category. A ``Hit`` names the text a pupil might type or see, the rule that must
fire, its severity (so a severity change is a deliberate edit here too) and the exact original
substring the match must report. A trap is school text that must fire nothing at all. Every
case runs through the one-shot interface (titles, pasted text) and the streaming interface
(typed one character at a time), on the real default lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.matcher import Match, Matcher
from core.rules import CATEGORIES, default_dir, load_dirs


@dataclass(frozen=True)
class Hit:
    text: str
    rule: str
    severity: int
    matched: str


CASES: dict[str, tuple[list[Hit], list[str]]] = {}

# --------------------------------------------------------------------------- suicide
CASES["suicide"] = (
    [
        Hit("im going to k1ll mys3lf tonight", "suicide.kill_myself", 5, "k1ll mys3lf"),
        Hit("gonna k i l l myself", "suicide.kill_myself", 5, "k i l l myself"),
        Hit("K.I.L.L myself", "suicide.kill_myself", 5, "K.I.L.L myself"),
        Hit("ｋｉｌｌ ｍｙｓｅｌｆ", "suicide.kill_myself", 5, "ｋｉｌｌ ｍｙｓｅｌｆ"),
        Hit("kіll myself", "suicide.kill_myself", 5, "kіll myself"),  # Cyrillic і
        Hit("killlll myselfff", "suicide.kill_myself", 5, "killlll myselfff"),
        Hit("omg kmssss", "suicide.kms", 4, "kmssss"),
        Hit("thinking of sewerslide", "suicide.sewerslide", 4, "sewerslide"),
        Hit("catch me on the bridge", "suicide.catch_me_on_the_bridge", 4,
            "catch me on the bridge"),
        Hit("how do i un4live myself", "suicide.unalive_myself", 5, "un4live myself"),
        Hit("I'm feeling suicidal", "suicide.feeling_suicidal", 5, "feeling suicidal"),
        Hit("$u1c1de", "suicide.suicid", 2, "$u1c1d"),
        Hit("i don't want to live", "suicide.dont_want_to_live_apostrophe", 4,
            "don't want to live"),
        Hit("kill myseIf", "suicide.kill_myself", 5, "kill myseIf"),  # capital I for l
        Hit("I want to 3nd my l1fe", "suicide.end_my_life", 5, "3nd my l1fe"),
        Hit("might just ctb tonight", "suicide.ctb", 4, "ctb"),
        # Another child's intent, reported, is a concern for the DSL: no frame silences it.
        Hit("my mate said she wants to end it all tonight", "suicide.end_it_all", 4,
            "end it all"),
        Hit("i want to 0ff myself", "suicide.want_to_off_myself", 5, "want to 0ff myself"),
        Hit("back from my grippy sock vacation", "suicide.grippy_sock_vacation", 3, "grippy sock vacation"),
    ],
    [
        "I kill myself laughing every time",
        "kmsl that video",  # "kill myself laughing"
        "This homework is killing me.",
        "Hitler committed suicide in his bunker in 1945.",
        "Suicide prevention week starts on Monday.",
        "If your friends jumped off a bridge, would you?",
        "The median lethal dose is used to compare toxicity.",
        "Dumb Ways to Die is a catchy song.",
        "I nearly died when the teacher called my name.",
        "I catch the bus to school at ten past eight.",
        "Look both ways and don't step in front of a bus.",
        "At climbing club I had to rope myself to the belay.",
    ],
)

# --------------------------------------------------------------------------- self_harm
CASES["self_harm"] = (
    [
        Hit("i cut myself again", "self_harm.cut_myself", 4, "cut myself"),
        Hit("cuttinggg myself", "self_harm.cutting_myself", 4, "cuttinggg myself"),
        Hit("s3lf h4rm", "self_harm.self_harm", 2, "s3lf h4rm"),
        Hit("self-harm", "self_harm.self_harm", 2, "self-harm"),
        Hit("took the sharpener blade out", "self_harm.sharpener_blade", 4, "sharpener blade"),
        Hit("I think I cut too deep", "self_harm.cut_too_deep", 5, "cut too deep"),
        Hit("i want to hurt myself", "self_harm.want_to_hurt_myself", 4, "want to hurt myself"),
        Hit("how do i h1de my cuts", "self_harm.hide_my_cuts", 4, "h1de my cuts"),
        Hit("my barcode arms", "self_harm.barcode_arms", 4, "barcode arms"),
        Hit("cut to beans again", "self_harm.cut_to_beans", 4, "cut to beans"),
        Hit("need new blades mine are blunt", "self_harm.need_new_blades", 4, "need new blades"),
    ],
    [
        "I cut myself a slice of cake.",
        "I accidentally cut myself on paper in DT.",
        "Styrofoam cups make a good calorimeter.",
        "Cut yourself some slack, you did your best.",
        "I'm starving, what's for lunch?",
        "My grandad is in a hospice.",
        "Take a selfie with the class mascot.",
        "Self harm awareness week starts on Monday.",  # the file's own [[exclude]]
        "Scan the barcode at the self-checkout.",
        "Beans on toast is my favourite tea.",
        "i need new blades for my skates before the rink",  # session 9: its trap
    ],
)

# --------------------------------------------------------------------------- eating_disorder
# Split out of self_harm in issue 13: the pro-ana cases that were there now fire here.
CASES["eating_disorder"] = (
    [
        Hit("pr0 @na tips", "eating_disorder.pro_ana", 4, "pr0 @na"),
        Hit("need thinspiration", "eating_disorder.thinsp", 4, "thinsp"),
        Hit("ѕtarving myself", "eating_disorder.starving_myself", 4, "ѕtarving myself"),
        Hit("looking for an ana buddy", "eating_disorder.ana_buddy", 4, "ana buddy"),
        Hit("any #edtwt moots", "eating_disorder.edtwt", 4, "edtwt"),
        Hit("i make myself v0mit after tea", "eating_disorder.make_myself_vomit", 4,
            "make myself v0mit"),
        Hit("i purge after every meal", "eating_disorder.i_purge_after", 4, "i purge after"),
        Hit("I don't deserve to eat", "eating_disorder.dont_deserve_to_eat_apostrophe", 4,
            "don't deserve to eat"),
        Hit("i think i have an eating disorder", "eating_disorder.i_have_an_eating_disorder", 4,
            "i have an eating disorder"),
        Hit("passed out from not eating in PE", "eating_disorder.passed_out_from_not_eating", 5,
            "passed out from not eating"),
        Hit("what is anorexia", "eating_disorder.anorexi", 2, "anorexi"),
        Hit("chew and spit", "eating_disorder.chew_and_spit", 4, "chew and spit"),
    ],
    [
        "In food tech we made a low calorie salad and counted the calories.",
        "Skipping meals is bad for your concentration, so have breakfast.",
        "A balanced diet gives you the energy you need for PE.",
        "I'm starving, can we have tea early?",
        "You can skip the queue if you have a fast pass.",
        "Stalin's purges killed millions; the Great Purge began in 1936.",
        "The Purge is a horror film franchise.",
        "Purge the cache and restart the server.",
        "Cromwell purged Parliament in 1648.",
        "The recipe says to whisk the eggs and fold in the flour.",
        "A new diet pill for adults was in the news today.",
        "Ana tips the waiter at the end of the meal.",
        "We fast during Ramadan from sunrise to sunset.",
        "The nurse said throwing up after eating bad prawns is food poisoning.",
        "I threw up after the cross country because I ran too fast.",
        "Body checking is against the rules in under-12s ice hockey.",
        "Ed accounted for every penny of the trip money.",
    ],
)

# --------------------------------------------------------------------------- bullying
CASES["bullying"] = (
    [
        Hit("just kys", "bullying.kys", 4, "kys"),
        Hit("k y s loser", "bullying.kys", 4, "k y s"),
        Hit("go k1ll yours3lf", "bullying.kill_yourself", 4, "k1ll yours3lf"),
        Hit("everyone h4tes you", "bullying.everyone_hates_you", 3, "everyone h4tes you"),
        Hit("nobody would miss you", "bullying.nobody_would_miss_you", 4,
            "nobody would miss you"),
        Hit("i'm being bullied", "bullying.im_being_bullied_apostrophe", 4, "i'm being bullied"),
        Hit("happy slapping vid", "bullying.happy_slapping", 3, "happy slapping"),
        Hit("you w4steman", "bullying.wasteman", 2, "w4steman"),
        Hit("you c u n t", "bullying.cunt", 2, "c u n t"),
        Hit("go r0pe yourself", "bullying.rope_yourself", 4, "r0pe yourself"),
        Hit("shes a sket", "bullying.sket", 2, "sket"),
    ],
    [
        "Tell a trusted adult if you are being bullied online.",
        "Scunthorpe United won at Glanford Park.",
        "The Aberfan disaster happened when a slag heap collapsed.",
        "Anti-bullying week starts on Monday.",
        "I'm going to expose the answer in the next lesson.",
        "Kill two birds with one stone.",
        "Take some pressure off yourself before the exams.",
        "In PE you rope yourself to your partner on the climbing wall.",
    ],
)

# --------------------------------------------------------------------------- grooming
CASES["grooming"] = (
    [
        Hit("this is our little secret", "grooming.our_little_secret", 4, "our little secret"),
        Hit("don't tell your mum", "grooming.dont_tell_your_mum_apostrophe", 4,
            "don't tell your mum"),
        Hit("dont tell ur mum", "grooming.dont_tell_ur_mum", 4, "dont tell ur mum"),
        Hit("s3nd p1cs", "grooming.send_pics", 4, "s3nd p1cs"),
        Hit("sеnd nudes", "grooming.send_nudes", 4, "sеnd nudes"),  # Cyrillic е
        # A request made of another child is a concern too, unlike a lesson's advice.
        Hit("a guy on snap asked my friend to send nudes", "grooming.send_nudes", 4,
            "send nudes"),
        Hit("what r u wearing", "grooming.what_r_u_wearing", 4, "what r u wearing"),
        Hit("ur so mature for your age", "grooming.mature_for_your_age", 4,
            "mature for your age"),
        Hit("meet me alone after", "grooming.meet_me_alone", 4, "meet me alone"),
        Hit("i'll leak your nudes", "grooming.leak_your_nudes", 5, "leak your nudes"),
        Hit("add me on snap and delete this chat", "grooming.and_delete_this_chat", 4, "and delete this chat"),
        Hit("r u home alone", "grooming.r_u_home_alone", 4, "r u home alone"),
        Hit("robux for pics", "grooming.robux_for_pics", 5, "robux for pics"),
    ],
    [
        "Can you send pics of the homework sheet?",
        "What are you wearing to the party on Saturday?",
        "Pics or it didn't happen!",
        "Don't tell anyone but I got a puppy!",
        "It's a surprise party so don't tell her.",
        "My mum is picking me up at 4.",
        "Add me on Snap after the match.",
        "Delete this chat?",
        "Are you alone in thinking the book was too long?",
    ],
)

# --------------------------------------------------------------------------- extremism
CASES["extremism"] = (
    [
        Hit("h0w to m4ke a b0mb", "extremism.make_a_bomb", 5, "m4ke a b0mb"),
        Hit("p1pe b0mb", "extremism.pipe_bomb", 5, "p1pe b0mb"),
        Hit("h e i l hitler", "extremism.heil_hitler", 4, "h e i l hitler"),
        Hit("HEIL HITLERRRR", "extremism.heil_hitler", 4, "HEIL HITLERRRR"),
        Hit("ѕіеg hеіl", "extremism.sieg_heil", 4, "ѕіеg hеіl"),
        Hit("j01n 1s1s", "extremism.join_isis", 5, "j01n 1s1s"),
        Hit("1488", "extremism.1488", 4, "1488"),
        Hit("wh1te p0wer", "extremism.white_power", 3, "wh1te p0wer"),
        Hit("look up the kalergi plan", "extremism.kalergi_plan", 3, "kalergi plan"),
        Hit("where can i get the full christchurch stream", "extremism.christchurch_stream", 3,
            "christchurch stream"),
        Hit("i'm ready to be a martyr", "extremism.im_ready_to_be_a_martyr_apostrophe", 4,
            "i'm ready to be a martyr"),
    ],
    [
        "Crowds at the Nuremberg rallies chanted sieg heil.",
        "In 1488 Bartolomeu Dias sailed round the Cape.",
        "Isis was an Egyptian goddess associated with magic.",
        "The government published its national action plan.",
        "In Islam, the greater jihad is the inner struggle.",
        "The 7/7 bombings killed 52 people in London.",
        "That film was the bomb.",
        "Make a bomb shelter out of a shoebox for the WW2 project.",
        "How to make a bath bomb for the Christmas fair.",
        "Take one black pill with water twice a day.",
        "in re we learned christians were ready to be martyrs",  # session 9: its traps
        "Christchurch earthquake video - BBC Bitesize",
    ],
)

# --------------------------------------------------------------------------- drugs
CASES["drugs"] = (
    [
        Hit("got some k3t", "drugs.ket", 3, "k3t"),
        Hit("keeeet", "drugs.ket", 3, "keeeet"),
        Hit("smoking sp1ce", "drugs.smoking_spice", 3, "smoking sp1ce"),
        Hit("ask ur plug", "drugs.ur_plug", 3, "ur plug"),
        Hit("c0unty l1nes", "drugs.county_lines", 2, "c0unty l1nes"),
        Hit("they made me do c0unty l1nes", "drugs.do_county_lines", 4, "do c0unty l1nes"),
        Hit("n o s balloons", "drugs.nos_balloons", 2, "n o s balloons"),
        Hit("w33d", "drugs.weed", 2, "w33d"),
        Hit("line of coke", "drugs.line_of_coke", 3, "line of coke"),
        Hit("ｗｅｅｄ", "drugs.weed", 2, "ｗｅｅｄ"),
        Hit("got some zaza", "drugs.zaza", 2, "zaza"),
        Hit("popping bars", "drugs.popping_bars", 3, "popping bars"),
        Hit("drinking lean", "drugs.drinking_lean", 3, "drinking lean"),
        Hit("tryna get zooted after school", "drugs.zooted", 2, "zooted"),
        Hit("got a plug on snap", "drugs.plug_on_snap", 3, "plug on snap"),
        Hit("theres a plug on snapchat", "drugs.plug_on_snapchat", 3, "plug on snapchat"),
    ],
    [
        "Add a pinch of mixed spice to the cake mix.",
        "The spice trade made Venice rich.",
        "Let me plug my laptop in, it's on 2%.",
        "Nos amis sont allés au cinéma samedi.",
        "Nous avons fait nos devoirs et nos chiens dorment.",
        "Nitrous oxide is also known as laughing gas.",
        "A weed is simply a plant growing in the wrong place.",
        "Can I have a bottle of Coke please?",
        "Ketchup on my chips please.",
        "Explain why a drug trial must be double blind.",
        "The war on drugs began in the 1970s.",
        "Discuss the risks of vaping compared with smoking.",
        "Let's get za tonight, I fancy pepperoni.",
        "His bars in that song are hard.",
        "Lean meat like chicken is high in protein.",
        "There was a line of snow along the fence.",
        "i need a plug adapter for spain",  # session 9 slang rules: their traps
        "zoot suit riots history homework",
    ],
)

# --------------------------------------------------------------------------- violence
CASES["violence"] = (
    [
        Hit("gonna sh00t up the sch00l", "violence.shoot_up_the_school", 5,
            "sh00t up the sch00l"),
        Hit("bringing a knife to school", "violence.knife_to_school", 5, "knife to school"),
        Hit("i'll st4b you", "violence.stab_you", 4, "st4b you"),
        Hit("ѕtаb him", "violence.stab_him", 4, "ѕtаb him"),
        Hit("i'll kill you", "violence.ill_kill_you_apostrophe", 4, "i'll kill you"),
        Hit("i know where you live", "violence.i_know_where_you_live", 4,
            "i know where you live"),
        Hit("r4pe", "violence.rape", 3, "r4pe"),
        Hit("zombie knife", "violence.zombie_knife", 3, "zombie knife"),
        Hit("slide on the opps", "violence.slide_on_the_opps", 4, "slide on the opps"),
        Hit("ill wet him", "violence.wet_him", 4, "wet him"),
        Hit("bring the sk3ng", "violence.skeng", 3, "sk3ng"),
        Hit("im strapped if anyone tries it", "violence.im_strapped", 3, "im strapped"),
        Hit("i'm strapped tho", "violence.im_strapped_apostrophe", 3, "i'm strapped"),
        Hit("how to make a molotov", "violence.make_a_molotov", 4, "make a molotov"),
    ],
    [
        "Oilseed rape fields turn bright yellow in May.",
        "We ate grapes on the school trip.",
        "Can you shoot me a message when you're home?",
        "I'll shoot you an email with the homework.",
        "We should shoot a video for the media project.",
        "I could murder a pizza right now.",
        "Use kill -9 to kill the process if it hangs.",
        "Food technology: make a lamb shank stew.",
        "Henry VIII ordered the beheading of Anne Boleyn.",
        "Opps, sorry, wrong chat.",
        "She wet him with the water pistol.",
        "Maths lessons bore him to tears.",
        "Sylvester Stallone played Rambo.",
        "im strapped for cash this month",  # session 9 slang rules: their traps
        "i'm strapped into the rollercoaster seat",
        "the molotov ribbentrop pact split poland",
        "finnish soldiers threw molotov cocktails in the winter war",
    ],
)

# --------------------------------------------------------------------------- pornography
CASES["pornography"] = (
    [
        Hit("p0rn", "pornography.porn", 2, "p0rn"),
        Hit("p.o.r.n", "pornography.porn", 2, "p.o.r.n"),
        Hit("рorn", "pornography.porn", 2, "рorn"),  # Cyrillic р
        Hit("pornhub.com", "pornography.pornhub", 2, "pornhub"),
        Hit("ch1ld p0rn", "pornography.child_porn", 5, "ch1ld p0rn"),
        Hit("nuuuudes", "pornography.nudes", 2, "nuuuudes"),
        Hit("nudify app", "pornography.nudify", 4, "nudify"),
        Hit("h3nt41", "pornography.hentai", 2, "h3nt41"),
        Hit("wanna have seggs", "pornography.have_seggs", 2, "have seggs"),
        Hit("c0rnhub", "pornography.cornhub", 2, "c0rnhub"),
    ],
    [
        "Relationships and sex education helps you understand consent.",
        "The legal age to have sex in the UK is 16.",
        "Blue tits and great tits visit the bird feeder.",
        "She graduated summa cum laude.",
        "Apply paint stripper in a well ventilated area.",
        "Cumulus clouds are fluffy.",
        "Happy birthday! Love you lots xxx",
        "Corn on the cob with butter is lovely.",
        "In science we watched corn grow in a time-lapse video.",
    ],
)

# --------------------------------------------------------------------------- gambling
CASES["gambling"] = (
    [
        Hit("b3t365", "gambling.bet365", 2, "b3t365"),
        Hit("ｂｅｔ３６５", "gambling.bet365", 2, "ｂｅｔ３６５"),
        Hit("bеtway", "gambling.betway", 2, "bеtway"),  # Cyrillic е
        Hit("my acca came in", "gambling.acca", 2, "acca"),
        Hit("odds b00st", "gambling.odds_boost", 2, "odds b00st"),
        Hit("chasing my losses", "gambling.chasing_my_losses", 3, "chasing my losses"),
        Hit("how to get round gamstop", "gambling.gamstop", 3, "gamstop"),
        Hit("spent £50 on loot boxes", "gambling.on_loot_boxes", 1, "on loot boxes"),
        Hit("my parlay hit", "gambling.parlay", 2, "parlay"),
        Hit("lost all my money gambling", "gambling.lost_all_my_money_gambling", 3, "lost all my money gambling"),
    ],
    [
        "Against all odds we won the cup final.",
        "What are the odds of that happening?",
        "A roulette wheel has 37 pockets.",
        "I bet you can't finish the quiz first.",
        "The coral reef is home to thousands of species.",
        "Gambling harms: why are loot boxes controversial?",
        "The vampire was killed with a wooden stake.",
        "I bet you can't finish before tea.",
    ],
)

# --------------------------------------------------------------------------- discrimination
CASES["discrimination"] = (
    [
        Hit("p4ki", "discrimination.paki", 4, "p4ki"),
        Hit("раki", "discrimination.paki", 4, "раki"),  # Cyrillic р, а
        Hit("f4ggot", "discrimination.faggot", 4, "f4ggot"),
        Hit("r3tard", "discrimination.retard", 3, "r3tard"),
        Hit("sp4z", "discrimination.spaz", 3, "sp4z"),
        Hit("that's so gay", "discrimination.thats_so_gay_apostrophe", 2, "that's so gay"),
        Hit("go back to your own country", "discrimination.back_to_your_own_country", 3,
            "back to your own country"),
        Hit("you homo", "discrimination.homo", 2, "homo"),
        Hit("ching chong", "discrimination.ching_chong", 3, "ching chong"),
    ],
    [
        "Homo sapiens evolved in Africa.",
        "My nan makes faggots and peas on Fridays.",
        "Offa's Dyke runs along the border with Wales.",
        "A chink of light came through the curtains.",
        "The Maine Coon is a large cat.",
        "Flame retardant materials slow the spread of fire.",
        "Pakistan won the cricket.",
        "Scunthorpe is a town in North Lincolnshire.",
        "My cousin came out as trans.",
        "My nan is a bit batty.",
        "We made a curry in food tech.",
    ],
)

# --------------------------------------------------------------------------- filter_bypass
CASES["filter_bypass"] = (
    [
        Hit("v p n", "filter_bypass.vpn", 2, "v p n"),
        Hit("vрn", "filter_bypass.vpn", 2, "vрn"),  # Cyrillic р
        Hit("ｖｐｎ", "filter_bypass.vpn", 2, "ｖｐｎ"),
        Hit("t0r br0wser", "filter_bypass.tor_browser", 2, "t0r br0wser"),
        Hit("unbl0cked g4mes 66", "filter_bypass.unblocked_games", 1, "unbl0cked g4mes"),
        Hit("bypass goguardian", "filter_bypass.bypass_goguardian", 2, "bypass goguardian"),
        Hit("how to uninstall vigil", "filter_bypass.uninstall_vigil", 3, "uninstall vigil"),
        Hit("1nc0gn1t0", "filter_bypass.incognito", 1, "1nc0gn1t0"),
        Hit("best unblocker", "filter_bypass.unblocker", 2, "unblocker"),
    ],
    [
        "A VPN stands for virtual private network.",
        "What is the dark web? Explain how it differs from the deep web.",
        "The protagonist travelled incognito to avoid being recognised.",
        "Volcanic hotspots such as Hawaii form away from plate boundaries.",
        "Change the default admin password on the router.",
        "The Newbury bypass opened in 1998.",
        "Buy a drain unblocker from the hardware shop.",
    ],
)


# --------------------------------------------------------------------------- the checks

HITS = [pytest.param(cat, hit, id=f"{cat}:{hit.text}") for cat, (hits, _) in CASES.items()
        for hit in hits]
TRAPS = [pytest.param(cat, text, id=f"{cat}:{text}") for cat, (_, traps) in CASES.items()
         for text in traps]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dirs(default_dir()))


def typed(matcher: Matcher, text: str) -> list[Match]:
    stream = matcher.stream()
    found = [m for ch in text for m in stream.feed(ch)]
    return found + stream.end_utterance()


def test_every_category_has_a_section() -> None:
    assert set(CASES) == set(CATEGORIES)
    for category, (hits, traps) in CASES.items():
        assert len(hits) >= 8 and len(traps) >= 5, category


def _check(found: list[Match], text: str, category: str, hit: Hit) -> None:
    mine = [m for m in found if m.rule.id == hit.rule]
    assert mine, f"{hit.rule} did not fire on {text!r}; got {[m.rule.id for m in found]}"
    m = mine[0]
    assert (m.rule.category, m.rule.severity) == (category, hit.severity)
    assert m.matched == text[m.start:m.end] == hit.matched


@pytest.mark.parametrize(("category", "hit"), HITS)
def test_positive_fires_one_shot(matcher: Matcher, category: str, hit: Hit) -> None:
    _check(matcher.match(hit.text), hit.text, category, hit)


@pytest.mark.parametrize(("category", "hit"), HITS)
def test_positive_fires_when_typed(matcher: Matcher, category: str, hit: Hit) -> None:
    _check(typed(matcher, hit.text), hit.text, category, hit)


@pytest.mark.parametrize(("category", "text"), TRAPS)
def test_trap_stays_quiet(matcher: Matcher, category: str, text: str) -> None:
    assert [m.rule.id for m in matcher.match(text)] == []
    assert [m.rule.id for m in typed(matcher, text)] == []


def test_typo_fixed_with_backspace_fires_on_the_corrected_word(matcher: Matcher) -> None:
    stream = matcher.stream()
    for ch in "i want to end my lifr":
        assert stream.feed(ch) == []
    stream.key("backspace")
    assert [m for ch in "e" for m in stream.feed(ch)] == []  # the word has not ended yet
    found = stream.feed(" ")
    assert [(m.rule.id, m.matched) for m in found] == [("suicide.end_my_life", "end my life")]
    assert stream.text[found[0].start:found[0].end] == "end my life"


def test_unless_context_typed_after_the_phrase_cancels_at_utterance_end(
        matcher: Matcher) -> None:
    """ "kill myself laughing": the stream must not report before the context can arrive."""
    found = typed(matcher, "I kill myself laughing at that")
    assert [m.rule.id for m in found] == []


# --------------------------------------------------------------------------- joined word parts
# Obfuscations that split a word into multi-letter parts with a separator. They were gaps in the
# first matcher ("kill myseIf" and "3nd my l1fe" too) and are kept here as ordinary cases.

JOINED_PARTS = [
    pytest.param("sui.cide", "suicide.suicid", id="dot-inside-a-word"),
]


@pytest.mark.parametrize(("text", "rule"), JOINED_PARTS)
def test_joined_word_parts(matcher: Matcher, text: str, rule: str) -> None:
    assert rule in {m.rule.id for m in matcher.match(text)}

#!/usr/bin/env python3
"""Writes corpus.jsonl, the sentences of the VADER differential test (tests/sentiment_vader.rs).

Deterministic (fixed seed, standard library only, words read from the committed lexicon files),
so the committed corpus can be regenerated and reviewed: `python3 gen_corpus.py` in this folder.
Each line is one JSON string. The sentences aim at every rule of vaderSentiment 3.3.2: lexicon
words, negations (and their 1-3 word windows), boosters and dampeners, `no`, `least`, `kind of`,
`but` (with repeated values, for its list.index quirk), the special-case idioms, ALL CAPS in
mixed and all-caps text, ! and ?, emoticons, emoji (single and multi code point), non-ASCII
letters and Unicode whitespace, punctuation around tokens, empty and blank strings, and 1,000
texts of random code points from cased scripts among lexicon words and emoji.
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "src", "sentiment", "data")

rng = random.Random(20261203)

with open(os.path.join(DATA, "vader_lexicon.txt"), encoding="utf-8") as f:
    LEX = [line.split("\t")[0] for line in f.read().split("\n") if line.strip()]
with open(os.path.join(DATA, "emoji_utf8_lexicon.txt"), encoding="utf-8") as f:
    EMOJI = [line.strip().split("\t")[0] for line in f.read().split("\n") if line.strip()]
WORDS = [w for w in LEX if w.isalpha()]
EMOTICONS = [w for w in LEX if not any(c.isalpha() for c in w) and " " not in w]
SINGLE_EMOJI = [e for e in EMOJI if len(e) == 1]
MULTI_EMOJI = [e for e in EMOJI if len(e) > 1]

NEGATIONS = ["not", "never", "isn't", "don't", "didn't", "wasn't", "can't", "cannot", "without",
             "nothing", "none", "nor", "neither", "rarely", "seldom", "despite", "aint", "dont",
             "wont", "won't", "shouldn't", "uh-uh", "nope", "couldn't", "hasn't", "needn't"]
BOOSTERS = ["very", "really", "so", "extremely", "totally", "absolutely", "most", "more",
            "quite", "incredibly", "hella", "uber", "friggin", "utterly", "deeply", "highly",
            "almost", "barely", "hardly", "kinda", "sorta", "slightly", "somewhat", "less",
            "little", "partly", "marginally", "kind-of", "sort-of", "occasionally", "scarcely"]
FILLER = ["the", "a", "this", "that", "it", "was", "is", "are", "product", "movie", "food",
          "service", "staff", "and", "or", "of", "to", "for", "at", "with", "my", "we", "i",
          "they", "delivery", "hotel", "room", "app", "price", "just", "enough", "kind", "sort",
          "least", "doubt", "no", "but", "so", "this", "very", "bus", "stop", "yeah", "right"]
IDIOMS = ["the shit", "the bomb", "bad ass", "badass", "bus stop", "yeah right", "kiss of death",
          "to die for", "beating heart", "kind of", "sort of", "just enough", "at least",
          "very least", "the least", "without doubt", "without a doubt", "never so", "never this",
          "no doubt", "no no", "not bad", "cut the mustard", "upper hand", "in the red"]
NON_ASCII = ["café", "naïve", "ÉNORME", "größe", "STRAẞE", "Ørsted", "smörgåsbord", "ΣΟΦΟΣ",
             "όμορφος", "хорошо", "ПЛОХО", "日本語", "좋아요", "مرحبا", "ǅemal", "ﬁne", "İyi",
             "\u212aind", "GOOD\u0301", "ḡood", "sẞ", "Æsir", "œuvre", "ŁÓDŹ", "ÿes"]
SPACES = [" ", " ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\x1c", "\u2028",
          "\u200b", "\u0085", " \r\n "]
PUNCT_END = ["", "", "", ".", ",", "!", "!!", "!!!", "!!!!!", "?", "??", "???", "????", "?!",
             "...", ";", ":", "!?!?"]
WRAP = [("", ""), ("(", ")"), ("'", "'"), ('"', '"'), ("--", "--"), ("*", "*"), ("#", ""),
        ("@", ""), ("", "'s"), ("", "-"), ("[", "]")]


def lexword():
    return rng.choice(WORDS)


def case(w):
    r = rng.random()
    if r < 0.12:
        return w.upper()
    if r < 0.2:
        return w.capitalize()
    return w


def piece():
    """One word-ish unit of a sentence."""
    r = rng.random()
    if r < 0.34:
        w = lexword()
    elif r < 0.5:
        w = rng.choice(FILLER)
    elif r < 0.6:
        w = rng.choice(NEGATIONS)
    elif r < 0.7:
        w = rng.choice(BOOSTERS)
    elif r < 0.76:
        w = rng.choice(IDIOMS)
    elif r < 0.8:
        w = rng.choice(EMOTICONS)
    elif r < 0.85:
        w = rng.choice(SINGLE_EMOJI)
    elif r < 0.87:
        w = rng.choice(MULTI_EMOJI)
    elif r < 0.9:
        w = rng.choice(NON_ASCII)
    else:
        w = lexword()
    w = case(w)
    if rng.random() < 0.12:
        a, b = rng.choice(WRAP)
        w = a + w + b
    if rng.random() < 0.1:
        w += rng.choice(PUNCT_END)
    return w


def join(parts):
    out = ""
    for i, p in enumerate(parts):
        if i:
            out += rng.choice(SPACES) if rng.random() < 0.08 else " "
        out += p
    return out


def random_sentence():
    n = rng.randint(1, 20)
    s = join([piece() for _ in range(n)])
    s += rng.choice(PUNCT_END)
    r = rng.random()
    if r < 0.05:
        s = s.upper()
    elif r < 0.08:
        s = s.lower()
    return s


def templated():
    """Review-like sentences that put one rule next to one lexicon word."""
    subj = rng.choice(["The food", "This movie", "Our room", "The staff", "It", "The app",
                       "Delivery", "The plot"])
    verb = rng.choice(["is", "was", "seems", "looked", "felt"])
    mods = rng.choice([[], [rng.choice(NEGATIONS)], [rng.choice(BOOSTERS)],
                       [rng.choice(NEGATIONS), rng.choice(BOOSTERS)],
                       [rng.choice(NEGATIONS), rng.choice(FILLER), rng.choice(BOOSTERS)],
                       ["no"], ["no", rng.choice(FILLER)], ["no", lexword(), "or"],
                       ["no", lexword(), "nor"], ["least"], ["at", "least"],
                       ["very", "least"], ["kind", "of"], ["sort", "of"], ["never", "so"],
                       ["never", "this"], ["without", "doubt"], ["just", "enough"],
                       [rng.choice(BOOSTERS).upper()]])
    word = case(lexword())
    s = " ".join([subj, verb] + mods + [word]) + rng.choice(PUNCT_END)
    if rng.random() < 0.3:
        s += " but " + " ".join(rng.choice(["it", "the", "price"]) for _ in range(rng.randint(0, 2)))
        s += " " + rng.choice(NEGATIONS + BOOSTERS + [""]) + " " + case(lexword())
        s += rng.choice(PUNCT_END)
    return s


def but_quirk():
    """`_but_check` finds each value again with list.index: repeat values around `but`."""
    a, b = lexword(), lexword()
    forms = [f"{a} {a} but {a} {a}", f"{a} but {b} {b}", f"{a} {b} but {a} {b}",
             f"{a} very {a} but {a}", f"but {a} {a}", f"{a} {a} but", f"{a} BUT {b} but {a}",
             f"good but good great", f"love BUT love love", f"{a} but {a} {a} {a}"]
    return rng.choice(forms) + rng.choice(PUNCT_END)


FIXED = [
    "", " ", "   ", "\t\n", "\u00a0", "!!!", "???", "?", ".", ":)", ":(", ":-D", "<3", "xD",
    "😀", "😀😀", "💘!", "x💘y", "©", "a ® b", "🇫🇷", "👍🏽", "👨‍👩‍👧", "GOOD", "good", "Good",
    "GOOD good", "NOT GOOD", "not GOOD at all", "NO GOOD", "No good", "no no no", "no",
    "VADER is smart, handsome, and funny.", "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.", "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.", "The book was good.",
    "At least it isn't a horrible book.", "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!", "Today only kinda sux! But I'll get by, lol", "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁", "Not bad at all",
    "Sentiment analysis has never been good.", "Sentiment analysis has never been this good!",
    "Most automated sentiment analysis tools are shit.",
    "With VADER, sentiment analysis is the shit!",
    "Other sentiment analysis tools can be quite bad.",
    "On the other hand, VADER is quite bad ass", "VADER is such a badass!",
    "Without a doubt, excellent idea.",
    "Roger Dodger is one of the most compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "Not such a badass after all.", "Without a doubt, an excellent idea.",
    "It was one of the worst movies I've seen, despite good reviews.",
    "Unbelievably bad acting!!", "Poor direction.", "VERY poor production.",
    "The movie was bad.", "Very bad movie.", "VERY BAD movie!",
    "we went to the bus stop and it was great", "yeah right, that was smart",
    "it is the kiss of death for sure", "a cake to die for", "my beating heart sang",
    "this is the bomb", "the service was the shit", "so so good", "this this good",
    "I am never so happy", "we were never this sad", "without doubt the best",
    "the very least good thing", "at least good", "least good", "good least good",
    "kind of good", "kind of bad", "sort of sad", "just enough fun", "just enough",
    "ÉNORME succès!!", "Das ist gut", "ΣΟΦΟΣ good", "\u212aind words", "İyi günler",
    "good\u00a0bad\u2003great\u3000awful", "good\x1cbad", "good\u200bbad", "bad \ufffd good",
]


# Code point ranges for `random_unicode`: cased scripts, Latin extensions, letterlike symbols
# (KELVIN SIGN), circled letters (uppercase but not letters), Unicode spaces, emoji.
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x1E00, 0x1FFF),
          (0x2000, 0x206F), (0x2100, 0x214F), (0x2460, 0x24FF), (0x3000, 0x303F),
          (0x1F300, 0x1F9FF), (0x1C, 0x1F), (0x9, 0xD)]


def random_unicode():
    """Lexicon words and emoji among random code points, cased and spaced at random."""
    parts = []
    for _ in range(rng.randint(1, 15)):
        k = rng.random()
        if k < 0.4:
            w = rng.choice(LEX)
        elif k < 0.5:
            w = rng.choice(EMOJI)
        else:
            a, b = rng.choice(RANGES)
            w = "".join(chr(rng.randint(a, b)) for _ in range(rng.randint(1, 6)))
        if rng.random() < 0.2:
            w = w.upper()
        elif rng.random() < 0.1:
            w = w.title()
        parts.append(w)
    return "".join(p + rng.choice([" ", " ", " ", "", "\u00a0", "\t", "!", "?"]) for p in parts)


def main():
    seen = set()
    out = []

    def add(s):
        if s not in seen:
            seen.add(s)
            out.append(s)

    for s in FIXED:
        add(s)
    while len(out) < 2200:
        add(templated())
    while len(out) < 2700:
        add(but_quirk())
    while len(out) < 5000:
        add(random_sentence())
    for _ in range(40):  # a few paragraphs
        add(" ".join(random_sentence() for _ in range(rng.randint(5, 15))))
    while len(out) < 6040:
        add(random_unicode())
    with open(os.path.join(HERE, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for s in out:
            f.write(json.dumps(s, ensure_ascii=True) + "\n")
    print(f"wrote {len(out)} sentences")


if __name__ == "__main__":
    main()

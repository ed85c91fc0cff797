//! The word table VADER looks words up in, built once from the embedded vaderSentiment 3.3.2
//! files: lexicon valences, booster/dampener weights, negation words, and the handful of words
//! the rules compare by name, all behind one hash look-up per token. Also the emoji table.
//!
//! Not here: the rules themselves (`rules.rs`) or tokenising (`text.rs`).

use std::sync::OnceLock;

use hashbrown::HashTable;

const LEXICON_TXT: &str = include_str!("data/vader_lexicon.txt");
const EMOJI_TXT: &str = include_str!("data/emoji_utf8_lexicon.txt");

/// Empirically derived booster increment (vaderSentiment's `B_INCR`; `B_DECR` is its negation).
pub(crate) const B_INCR: f64 = 0.293;
pub(crate) const B_DECR: f64 = -0.293;

/// vaderSentiment's `NEGATE` list, verbatim.
const NEGATE: [&str; 59] = [
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// The one-token keys of vaderSentiment's `BOOSTER_DICT` (the two-token keys `kind of`,
/// `sort of` and `just enough` are matched by word codes in the idiom rule).
const BOOST_UP: [&str; 60] = [
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];
const BOOST_DOWN: [&str; 21] = [
    "almost",
    "barely",
    "hardly",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sorta",
    "sortof",
    "sort-of",
];

/// Words the rules test by name (`words[i-1] == "no"`, idioms, `kind of`...): each gets a code
/// so the rules compare one byte instead of strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Word {
    Other,
    No,
    But,
    Kind,
    Of,
    Least,
    At,
    Very,
    Never,
    So,
    This,
    Without,
    Doubt,
    Or,
    Nor,
    The,
    Shit,
    Bomb,
    Bad,
    Ass,
    Bus,
    Stop,
    Yeah,
    Right,
    Kiss,
    Death,
    To,
    Die,
    For,
    Beating,
    Heart,
    Just,
    Enough,
    Sort,
}

const NAMED: [(&str, Word); 33] = [
    ("no", Word::No),
    ("but", Word::But),
    ("kind", Word::Kind),
    ("of", Word::Of),
    ("least", Word::Least),
    ("at", Word::At),
    ("very", Word::Very),
    ("never", Word::Never),
    ("so", Word::So),
    ("this", Word::This),
    ("without", Word::Without),
    ("doubt", Word::Doubt),
    ("or", Word::Or),
    ("nor", Word::Nor),
    ("the", Word::The),
    ("shit", Word::Shit),
    ("bomb", Word::Bomb),
    ("bad", Word::Bad),
    ("ass", Word::Ass),
    ("bus", Word::Bus),
    ("stop", Word::Stop),
    ("yeah", Word::Yeah),
    ("right", Word::Right),
    ("kiss", Word::Kiss),
    ("death", Word::Death),
    ("to", Word::To),
    ("die", Word::Die),
    ("for", Word::For),
    ("beating", Word::Beating),
    ("heart", Word::Heart),
    ("just", Word::Just),
    ("enough", Word::Enough),
    ("sort", Word::Sort),
];

/// What the rules know about one lower-cased token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub key: &'static str,
    /// Lexicon valence, NaN when the word is not in the lexicon.
    pub lex: f64,
    /// `BOOSTER_DICT` weight, 0 when the word is no booster (no booster weighs 0).
    pub booster: f64,
    /// In `NEGATE` (the `n't` substring test is the tokeniser's, it is not a table property).
    pub negate: bool,
    pub word: Word,
}

impl Entry {
    const fn new(key: &'static str) -> Entry {
        Entry {
            key,
            lex: f64::NAN,
            booster: 0.0,
            negate: false,
            word: Word::Other,
        }
    }
}

/// The entry of a word that is in no list.
pub(crate) const NONE: Entry = Entry::new("");

pub(crate) struct Tables {
    words: HashTable<Entry>,
    /// Single-code-point emoji keys, sorted (multi-code-point keys can never match:
    /// vaderSentiment tests one code point at a time).
    emoji: Vec<(char, &'static str)>,
}

fn hash(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

impl Tables {
    pub(crate) fn get() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(Tables::build)
    }

    fn entry_mut(&mut self, key: &'static str) -> &mut Entry {
        self.words
            .entry(hash(key), |e| e.key == key, |e| hash(e.key))
            .or_insert(Entry::new(key))
            .into_mut()
    }

    fn build() -> Tables {
        let mut t = Tables {
            words: HashTable::with_capacity(8192),
            emoji: Vec::with_capacity(1300),
        };
        // `make_lex_dict`: one `word<TAB>mean<TAB>...` per line; a repeated word keeps its
        // last value, as a Python dict does.
        for line in LEXICON_TXT.trim_end_matches('\n').split('\n') {
            let mut cols = line.trim().split('\t');
            let (Some(word), Some(mean)) = (cols.next(), cols.next()) else {
                continue;
            };
            let lex = mean
                .parse::<f64>()
                .expect("vader_lexicon.txt: valence is a number");
            t.entry_mut(word).lex = lex;
        }
        for w in BOOST_UP {
            t.entry_mut(w).booster = B_INCR;
        }
        for w in BOOST_DOWN {
            t.entry_mut(w).booster = B_DECR;
        }
        for w in NEGATE {
            t.entry_mut(w).negate = true;
        }
        for (w, code) in NAMED {
            t.entry_mut(w).word = code;
        }
        for line in EMOJI_TXT.trim_end_matches('\n').split('\n') {
            let mut cols = line.trim().split('\t');
            let (Some(key), Some(desc)) = (cols.next(), cols.next()) else {
                continue;
            };
            let mut chars = key.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                t.emoji.push((c, desc));
            }
        }
        // The file has no repeated key, so the order among equal keys cannot matter.
        t.emoji.sort_by_key(|&(c, _)| c);
        t
    }

    /// The entry of a lower-cased word, or [`NONE`].
    #[inline]
    pub(crate) fn lookup(&self, lower: &str) -> &Entry {
        self.words
            .find(hash(lower), |e| e.key == lower)
            .unwrap_or(&NONE)
    }

    /// The description that replaces this code point, if it is an emoji key.
    #[inline]
    pub(crate) fn emoji(&self, c: char) -> Option<&'static str> {
        self.emoji
            .binary_search_by_key(&c, |&(k, _)| k)
            .ok()
            .map(|i| self.emoji[i].1)
    }
}

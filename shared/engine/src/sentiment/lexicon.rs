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

/// What the rules know about one lower-cased token, in 16 bytes: the table (16,384 slots) takes
/// 256 KiB instead of ~900 KiB with full keys and f64 values, so it competes less for cache
/// with the rest of a chunk worker (the bench alone did not move measurably).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The key's first eight bytes.
    w0: u64,
    /// Index of the key's bytes 8..24 in `Tables::rest` (keys longer than eight bytes).
    rest: u16,
    len: u8,
    /// Lexicon valence in tenths (every value in the file has one decimal, checked when the
    /// table is built), `i8::MIN` when the word is not in the lexicon.
    lex10: i8,
    /// `BOOSTER_DICT` weight in units of B_INCR: 1, -1, or 0 for no booster.
    boost: i8,
    /// In `NEGATE` (the `n't` substring test is the tokeniser's, it is not a table property).
    pub negate: bool,
    pub word: Word,
}

impl Entry {
    const fn new(w0: u64, rest: u16, len: u8) -> Entry {
        Entry {
            w0,
            rest,
            len,
            lex10: i8::MIN,
            boost: 0,
            negate: false,
            word: Word::Other,
        }
    }

    /// Lexicon valence, NaN when the word is not in the lexicon. `k / 10.0` is the double
    /// nearest the decimal, the same one Python's `float("1.9")` gives.
    #[inline]
    pub fn lex(&self) -> f64 {
        if self.lex10 == i8::MIN {
            f64::NAN
        } else {
            f64::from(self.lex10) / 10.0
        }
    }

    /// `BOOSTER_DICT` weight, 0 when the word is no booster (no booster weighs 0).
    #[inline]
    pub fn booster(&self) -> f64 {
        f64::from(self.boost) * B_INCR
    }

    #[inline]
    fn matches(&self, key: &Key, rest: &[[u64; 2]]) -> bool {
        self.w0 == key.words[0]
            && usize::from(self.len) == key.len
            && (key.len <= 8 || rest[usize::from(self.rest)] == [key.words[1], key.words[2]])
    }

    fn key(&self, rest: &[[u64; 2]]) -> Key {
        let [w1, w2] = if self.len > 8 {
            rest[usize::from(self.rest)]
        } else {
            [0, 0]
        };
        Key {
            words: [self.w0, w1, w2],
            len: usize::from(self.len),
        }
    }
}

/// The entry of a word that is in no list.
pub(crate) const NONE: Entry = Entry::new(0, 0, 0);

pub(crate) struct Tables {
    words: HashTable<Entry>,
    /// Bytes 8..24 of the keys longer than eight bytes.
    rest: Vec<[u64; 2]>,
    /// Single-code-point emoji keys, sorted (multi-code-point keys can never match:
    /// vaderSentiment tests one code point at a time).
    emoji: Vec<(char, &'static str)>,
    /// One bit per code point below U+20000 (every key is): set for the keys of `emoji`.
    emoji_bits: Vec<u64>,
}

const EMOJI_BITS: usize = 0x20000 / 64;

/// Longest key of the word table, in bytes: a longer token is in no list.
pub(crate) const MAX_KEY: usize = 24;

/// A word of at most [`MAX_KEY`] bytes packed little-endian into three words, zero-padded:
/// tokens are packed (and lower-cased) in registers, then hashed and compared word by word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub words: [u64; 3],
    pub len: usize,
}

impl Key {
    /// The key of these bytes as they are, if short enough.
    pub fn new(bytes: &[u8]) -> Option<Key> {
        if bytes.len() > MAX_KEY {
            return None;
        }
        let mut words = [0u64; 3];
        for (k, &c) in bytes.iter().enumerate() {
            words[k / 8] |= u64::from(c) << (8 * (k % 8));
        }
        Some(Key {
            words,
            len: bytes.len(),
        })
    }

    /// Multiply-fold over the words in use: short words are most tokens, and a general
    /// hasher spends most of its time on their tails.
    #[inline]
    pub fn hash(&self) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h = (self.len as u64).wrapping_mul(K);
        for &w in &self.words[..self.len.div_ceil(8)] {
            let m = u128::from(h ^ w) * u128::from(K);
            h = (m as u64) ^ ((m >> 64) as u64);
        }
        h
    }
}

impl Tables {
    pub(crate) fn get() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(Tables::build)
    }

    fn entry_mut(&mut self, key: &str) -> &mut Entry {
        // The tokeniser relies on it (text.rs, non-ASCII tokens).
        assert!(key.is_ascii(), "non-ASCII key {key:?}");
        let key = Key::new(key.as_bytes()).expect("a list word longer than MAX_KEY");
        let Tables { words, rest, .. } = self;
        if words.find(key.hash(), |e| e.matches(&key, rest)).is_none() {
            let idx = if key.len > 8 {
                rest.push([key.words[1], key.words[2]]);
                u16::try_from(rest.len() - 1).expect("fewer than 65,536 long keys")
            } else {
                0
            };
            let len = u8::try_from(key.len).expect("MAX_KEY < 256");
            let entry = Entry::new(key.words[0], idx, len);
            words.insert_unique(key.hash(), entry, |e| e.key(rest).hash());
        }
        words
            .find_mut(key.hash(), |e| e.matches(&key, rest))
            .expect("just inserted")
    }

    fn build() -> Tables {
        let mut t = Tables {
            words: HashTable::with_capacity(8192),
            rest: Vec::with_capacity(4096),
            emoji: Vec::with_capacity(1300),
            emoji_bits: vec![0; EMOJI_BITS],
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
            // Look-ups are by lower-cased token, which holds no space and no uppercase
            // letter: keys such as `:D`, `O_o` or `fed up` can never be found (in the
            // reference either), so they are left out. No other key is longer than MAX_KEY.
            if !word.contains(' ') && word.to_lowercase() == word {
                let tenths = (lex * 10.0).round();
                assert!(
                    tenths / 10.0 == lex && tenths.abs() < 128.0,
                    "vader_lexicon.txt: {word} {mean} is not in tenths"
                );
                t.entry_mut(word).lex10 = tenths as i8;
            }
        }
        for w in BOOST_UP {
            t.entry_mut(w).boost = 1;
        }
        for w in BOOST_DOWN {
            t.entry_mut(w).boost = -1;
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
        for &(c, _) in &t.emoji {
            let c = c as usize;
            assert!(c < EMOJI_BITS * 64, "emoji key U+{c:X} above the bitmap");
            // text.rs `first_emoji` decodes only after these UTF-8 lead bytes.
            assert!(
                matches!(c, 0xa9 | 0xae | 0x2000..=0x33ff | 0x1f000..=0x1ffff),
                "emoji key U+{c:X} outside the ranges first_emoji looks at"
            );
            t.emoji_bits[c / 64] |= 1 << (c % 64);
        }
        t
    }

    /// The entry of a lower-cased word, or [`NONE`].
    #[inline]
    pub(crate) fn lookup(&self, key: &Key) -> &Entry {
        self.words
            .find(key.hash(), |e| e.matches(key, &self.rest))
            .unwrap_or(&NONE)
    }

    /// Whether this code point is an emoji key (a bit test: most non-ASCII text has none).
    #[inline]
    pub(crate) fn is_emoji(&self, c: char) -> bool {
        let c = c as usize;
        c < EMOJI_BITS * 64 && self.emoji_bits[c / 64] & (1 << (c % 64)) != 0
    }

    /// The description that replaces this code point, if it is an emoji key.
    #[inline]
    pub(crate) fn emoji(&self, c: char) -> Option<&'static str> {
        if !self.is_emoji(c) {
            return None;
        }
        self.emoji
            .binary_search_by_key(&c, |&(k, _)| k)
            .ok()
            .map(|i| self.emoji[i].1)
    }
}

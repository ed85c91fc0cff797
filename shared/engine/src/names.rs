//! Making names unique in linear time: header names (`dialect`) and rule ids (`rules`) both
//! turn a repeated name into `<name>_2`, `<name>_3`, ... (the first not already taken).
//!
//! The obvious loop (try `_2`, `_3`, ... from 2 for every repeat) is quadratic: a header that
//! repeats one name 20,000 times took 41 s to sniff. [`UniqueNames`] remembers, per base, the
//! next suffix to try. Names are only ever added to the taken set, so a suffix found taken stays
//! taken and each base can resume where it stopped; and a taken name `<b>_<k>` can only stop
//! the one base `<b>` (the text before its last `_`), once. Over a whole header that is at most
//! one failed try per name: linear, with exactly the names the obvious loop gives.
//!
//! Not here: what a base is (an empty header name becomes `col_<n>`, a rule id is built from its
//! column and check): that is the caller's.

use std::collections::{HashMap, HashSet};

/// The names taken so far, handing out the first free `<base>`, `<base>_2`, `<base>_3`, ...
#[derive(Debug, Default)]
pub(crate) struct UniqueNames {
    taken: HashSet<String>,
    /// Per base that was found taken: the next suffix to try.
    next: HashMap<String, u64>,
}

impl UniqueNames {
    /// An empty set, with room for `n` names.
    pub(crate) fn with_capacity(n: usize) -> Self {
        UniqueNames {
            taken: HashSet::with_capacity(n),
            next: HashMap::new(),
        }
    }

    /// Marks `name` as taken without handing it out (names given explicitly elsewhere).
    pub(crate) fn reserve(&mut self, name: &str) {
        if !self.taken.contains(name) {
            self.taken.insert(name.to_string());
        }
    }

    /// The first of `base`, `base_2`, `base_3`, ... not yet taken; it is taken from now on.
    pub(crate) fn claim(&mut self, base: String) -> String {
        if !self.taken.contains(&base) {
            self.taken.insert(base.clone());
            return base;
        }
        let k = self.next.entry(base.clone()).or_insert(2);
        let name = loop {
            let name = format!("{base}_{k}");
            *k += 1;
            if !self.taken.contains(&name) {
                break name;
            }
        };
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The quadratic loop this replaces (the reference: the names must not change).
    fn reference(bases: &[String], reserved: &[String]) -> Vec<String> {
        let mut used: HashSet<String> = reserved.iter().cloned().collect();
        bases
            .iter()
            .map(|base| {
                let mut name = base.clone();
                let mut k = 2;
                while used.contains(&name) {
                    name = format!("{base}_{k}");
                    k += 1;
                }
                used.insert(name.clone());
                name
            })
            .collect()
    }

    fn claim_all(bases: &[String], reserved: &[String]) -> Vec<String> {
        let mut u = UniqueNames::default();
        for r in reserved {
            u.reserve(r);
        }
        bases.iter().map(|b| u.claim(b.clone())).collect()
    }

    proptest! {
        /// Names that collide with each other's suffixes (`a`, `a_2`, `a_2_2`, `a_10`...) in any
        /// order and with any reserved names: the same names as the quadratic loop.
        #[test]
        fn same_names_as_the_quadratic_loop(
            bases in prop::collection::vec(
                prop::sample::select(vec!["a", "a_2", "a_3", "a_2_2", "a_10", "b", "b_2", "x_"]),
                0..40,
            ),
            reserved in prop::collection::vec(
                prop::sample::select(vec!["a", "a_2", "a_4", "b_3", "c"]),
                0..4,
            ),
        ) {
            let bases: Vec<String> = bases.into_iter().map(String::from).collect();
            let reserved: Vec<String> = reserved.into_iter().map(String::from).collect();
            prop_assert_eq!(claim_all(&bases, &reserved), reference(&bases, &reserved));
        }
    }

    #[test]
    fn sixty_thousand_repeats_of_one_name_are_numbered_in_order() {
        let bases = vec!["id".to_string(); 60_000];
        let names = claim_all(&bases, &[]);
        assert_eq!(names[0], "id");
        assert_eq!(names[1], "id_2");
        assert_eq!(names[59_999], "id_60000");
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), 60_000);
    }
}

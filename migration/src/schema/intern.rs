//! The category values of one schema, interned in a bounded table.
//!
//! Files a user brings (recorded requests, specs, segment lists) intern their values up to
//! the bound; past it a new value becomes [`Text::UNSEEN`], which matches no vocabulary,
//! table or segment and so is scored as the spec's `unknown` rule says. Requests from a
//! client are only looked up, never added: a stream of never-seen strings costs nothing
//! and cannot make a later request fail.

use std::sync::RwLock;

use rustc_hash::FxHashMap;

use super::value::{Text, UNSEEN};

/// How many distinct values a schema keeps, unless told otherwise.
pub const MAX_INTERNED: usize = 200_000;

#[derive(Debug, Default)]
struct Table {
    ids: FxHashMap<Box<str>, u32>,
    strings: Vec<Box<str>>,
}

impl Table {
    fn get_or_add(&mut self, s: &str, limit: usize) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        if self.strings.len() >= limit {
            return UNSEEN;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }
}

/// A bounded table of category values.
#[derive(Debug)]
pub struct Interner {
    table: RwLock<Table>,
    limit: usize,
}

impl Default for Interner {
    fn default() -> Self {
        Interner::with_limit(MAX_INTERNED)
    }
}

impl Interner {
    /// A table that keeps at most `limit` distinct strings (a value and its lowercased
    /// form count apart when they differ).
    pub fn with_limit(limit: usize) -> Interner {
        Interner { table: RwLock::new(Table::default()), limit: limit.min(UNSEEN as usize) }
    }

    /// Interns a value (and its lowercased form), while the table has room.
    pub fn intern(&self, s: &str) -> Text {
        // Most values of a file are known already: a shared lock finds them.
        let known = self.lookup(s);
        if known.id != UNSEEN && known.folded != UNSEEN {
            return known;
        }
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        let id = t.get_or_add(s, self.limit);
        let folded = if s.bytes().any(|b| b.is_ascii_uppercase()) {
            t.get_or_add(&s.to_ascii_lowercase(), self.limit)
        } else {
            id
        };
        Text { id, folded }
    }

    /// Interns a value a user's file names (a vocabulary, a table key, a segment): one
    /// the full table cannot keep is an error naming the limit, never a silent unknown.
    pub fn intern_kept(&self, s: &str) -> Result<Text, String> {
        let t = self.intern(s);
        if t.id == UNSEEN || t.folded == UNSEEN {
            return Err(format!(
                "`{}` cannot be kept: the table of category values is full (at most {} distinct values, counting each \
                 value's lower-case form)",
                cutover_models::shown(s),
                self.limit
            ));
        }
        Ok(t)
    }

    /// The symbols of a value without adding it: [`UNSEEN`] for what the table lacks.
    pub fn lookup(&self, s: &str) -> Text {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        let id = t.ids.get(s).copied().unwrap_or(UNSEEN);
        let folded = if s.bytes().any(|b| b.is_ascii_uppercase()) {
            // Lowercase on the stack: a lookup allocates nothing for the values requests carry.
            let mut buf = [0u8; 64];
            match buf.get_mut(..s.len()) {
                Some(b) => {
                    b.copy_from_slice(s.as_bytes());
                    b.make_ascii_lowercase();
                    std::str::from_utf8(b).ok().and_then(|l| t.ids.get(l)).copied().unwrap_or(UNSEEN)
                }
                None => t.ids.get(s.to_ascii_lowercase().as_str()).copied().unwrap_or(UNSEEN),
            }
        } else {
            id
        };
        Text { id, folded }
    }

    /// The text of a symbol.
    pub fn resolve(&self, id: u32) -> Option<String> {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        t.strings.get(id as usize).map(|s| s.to_string())
    }

    /// Distinct strings kept.
    pub fn len(&self) -> usize {
        self.table.read().unwrap_or_else(|e| e.into_inner()).strings.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fold_case_and_lookups_never_add() {
        let i = Interner::with_limit(10);
        let ios = i.intern("ios");
        let app = i.intern("iOS");
        assert_ne!(ios.id, app.id);
        assert_eq!(ios.folded, app.folded, "iOS folds onto ios");
        assert_eq!(i.lookup("IOS").folded, ios.id);
        assert_eq!(i.lookup("IOS").id, UNSEEN);
        let before = i.len();
        for k in 0..1000 {
            assert_eq!(i.lookup(&format!("new-{k}")), Text::UNSEEN);
        }
        assert_eq!(i.len(), before, "a lookup keeps nothing");
        assert_eq!(i.resolve(app.id).as_deref(), Some("iOS"));
    }

    #[test]
    fn a_full_table_gives_unseen_and_keeps_what_it_has() {
        let i = Interner::with_limit(3);
        let a = i.intern("a");
        i.intern("b");
        i.intern("c");
        assert_eq!(i.intern("d"), Text::UNSEEN);
        let e = i.intern_kept("d").unwrap_err();
        assert!(e.contains("full") && e.contains("at most 3") && !e.contains("differs"), "{e}");
        assert_eq!(i.intern_kept("a"), Ok(a));
        assert_eq!(i.intern("a"), a, "known values still resolve when full");
        assert_eq!(i.len(), 3);
    }
}

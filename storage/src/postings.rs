//! Secondary indexes (service, product, risk, port, status) as posting runs: a few keys
//! per batch instead of a few keys per asset.
//!
//! A term is a (field, value) pair. Each batch that gives assets a term writes one *run*
//! for it: the sorted keys of those assets, cut into pieces of at most [`PIECE`]
//! entries. A batch that takes a term away writes a run of *tombstones*. Runs are
//! numbered by sled's monotonic id generator; for the same asset the newest run says
//! whether it has the term. When a level holds [`MERGE_AT`] runs of a term they are
//! merged into one run a level up (size-tiered, as LSM trees do), so a term has a few
//! dozen runs at most and a read merges that many sorted streams.
//!
//! Postings may over-approximate but never miss: additions are written before the
//! batch's records commit and tombstones after, so a crash in between leaves an extra
//! entry, never a missing one; duplicates from replays merge away. A listing checks
//! every candidate against its record, which it reads anyway to return it. So postings
//! need no atomicity with the records, and sit outside the batch's transaction.
//!
//! Keys, under `U<tenant>\0<field>\0<len u16><value>`:
//! - `R<level><run u64>` → the run's entry count: the run exists (written last);
//! - `P<level><run u64><first asset key>` → a piece: `(op, len, asset key bytes)*`.
//!
//! A merged run keeps the number of its newest input, which is exactly how recent its
//! content is; runs written meanwhile have larger numbers. Merges take a mutex of their
//! own and readers a gate that a merge closes only while it deletes the runs it merged.

use crate::error::{Result, StoreError};
use crate::keys::{self, Rec, TenantId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Entries per piece (one sled value). sled writes a leaf whose values add up to more
/// than a quarter of a log segment (128 KiB) as a blob file of its own, so values stay
/// a few KiB.
pub(crate) const PIECE: usize = 256;
/// Runs of one level that trigger a merge into the next.
pub(crate) const MERGE_AT: usize = 8;

const HEADER: u8 = b'R';
const PIECE_TAG: u8 = b'P';
const ADD: u8 = 1;
const TOMBSTONE: u8 = 0;

/// `(field, value)` with the value lower-cased: filters match case-insensitively.
pub(crate) type Term = (String, String);

/// The prefix of every key of one term.
pub(crate) fn term_prefix(tenant: &TenantId, field: &str, value: &str) -> Vec<u8> {
    let value = value.to_ascii_lowercase();
    let len = value.len().min(u16::MAX as usize);
    let mut rest = Vec::with_capacity(field.len() + len + 3);
    rest.extend_from_slice(field.as_bytes());
    rest.push(0);
    rest.extend_from_slice(&(len as u16).to_be_bytes());
    rest.extend_from_slice(value.as_bytes().get(..len).unwrap_or_default());
    keys::key(Rec::Posting, tenant, &rest)
}

/// What a batch does to the indexes: per term, the asset keys (byte form) that gain it
/// and those that lose it.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub adds: BTreeMap<Term, Vec<Vec<u8>>>,
    pub removes: BTreeMap<Term, Vec<Vec<u8>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RunId {
    level: u8,
    run: u64,
}

fn header_key(term: &[u8], id: RunId) -> Vec<u8> {
    let mut k = Vec::with_capacity(term.len() + 10);
    k.extend_from_slice(term);
    k.push(HEADER);
    k.push(id.level);
    k.extend_from_slice(&id.run.to_be_bytes());
    k
}

fn run_pieces_prefix(term: &[u8], id: RunId) -> Vec<u8> {
    let mut k = Vec::with_capacity(term.len() + 40);
    k.extend_from_slice(term);
    k.push(PIECE_TAG);
    k.push(id.level);
    k.extend_from_slice(&id.run.to_be_bytes());
    k
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("posting {what}"))
}

/// The runs of a term, oldest level first.
fn runs(tree: &sled::Tree, term: &[u8]) -> Result<Vec<RunId>> {
    let mut p = term.to_vec();
    p.push(HEADER);
    let mut out = Vec::new();
    for item in tree.scan_prefix(&p) {
        let (k, _) = item?;
        let rest = k.get(p.len()..).ok_or_else(|| corrupt("header"))?;
        let (&level, run) = rest.split_first().ok_or_else(|| corrupt("header"))?;
        let run: [u8; 8] = run.try_into().map_err(|_| corrupt("header"))?;
        out.push(RunId {
            level,
            run: u64::from_be_bytes(run),
        });
    }
    Ok(out)
}

fn encode_piece(entries: &[(Vec<u8>, bool)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(entries.iter().map(|(k, _)| k.len() + 2).sum());
    for (key, add) in entries {
        v.push(if *add { ADD } else { TOMBSTONE });
        v.push(key.len().min(255) as u8);
        v.extend_from_slice(key.get(..255.min(key.len())).unwrap_or_default());
    }
    v
}

fn decode_piece(bytes: &[u8]) -> Result<Vec<(Vec<u8>, bool)>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((&op, tail)) = rest.split_first() {
        let (&len, tail) = tail.split_first().ok_or_else(|| corrupt("piece"))?;
        let (key, tail) = tail
            .split_at_checked(usize::from(len))
            .ok_or_else(|| corrupt("piece"))?;
        out.push((key.to_vec(), op == ADD));
        rest = tail;
    }
    Ok(out)
}

/// Writes a run (sorted, distinct keys); its header goes last, so a run is either
/// wholly visible or not at all.
fn write_run(tree: &sled::Tree, term: &[u8], id: RunId, entries: &[(Vec<u8>, bool)]) -> Result<()> {
    let prefix = run_pieces_prefix(term, id);
    for piece in entries.chunks(PIECE) {
        let Some((first, _)) = piece.first() else {
            continue;
        };
        let mut k = prefix.clone();
        k.extend_from_slice(first);
        tree.insert(k, encode_piece(piece))?;
    }
    tree.insert(header_key(term, id), &(entries.len() as u64).to_be_bytes())?;
    Ok(())
}

fn delete_run(tree: &sled::Tree, term: &[u8], id: RunId) -> Result<()> {
    tree.remove(header_key(term, id))?;
    for item in tree.scan_prefix(run_pieces_prefix(term, id)) {
        let (k, _) = item?;
        tree.remove(k)?;
    }
    Ok(())
}

/// Writes one level-0 run per term of `entries` (keys need not be sorted). Returns the
/// terms written, for [`merge`].
pub(crate) fn write(
    db: &sled::Db,
    tree: &sled::Tree,
    tenant: &TenantId,
    entries: &BTreeMap<Term, Vec<Vec<u8>>>,
    add: bool,
) -> Result<Vec<Vec<u8>>> {
    let mut terms = Vec::with_capacity(entries.len());
    for ((field, value), keys) in entries {
        let mut sorted: Vec<(Vec<u8>, bool)> = keys.iter().map(|k| (k.clone(), add)).collect();
        sorted.sort();
        sorted.dedup();
        if sorted.is_empty() {
            continue;
        }
        let term = term_prefix(tenant, field, value);
        let id = RunId {
            level: 0,
            run: db.generate_id()?,
        };
        write_run(tree, &term, id, &sorted)?;
        terms.push(term);
    }
    Ok(terms)
}

/// Merges full levels of each term. `gate` is held for writing only while the merged
/// runs are deleted.
pub(crate) fn merge(
    tree: &sled::Tree,
    terms: &[Vec<u8>],
    gate: &std::sync::RwLock<()>,
) -> Result<()> {
    for term in terms {
        let mut level = 0u8;
        loop {
            let all = runs(tree, term)?;
            let inputs: Vec<RunId> = all.iter().copied().filter(|r| r.level == level).collect();
            if inputs.len() < MERGE_AT {
                break;
            }
            let newest = inputs.iter().map(|r| r.run).max().unwrap_or_default();
            // Tombstones can go when nothing older could still hold the entry they cancel.
            let keep_tombstones = all.iter().any(|r| r.level > level);
            let mut merged = Vec::new();
            for entry in merged_entries(tree, term, &inputs, None)? {
                let (key, add) = entry?;
                if add || keep_tombstones {
                    merged.push((key, add));
                }
            }
            let out = RunId {
                level: level.saturating_add(1),
                run: newest,
            };
            write_run(tree, term, out, &merged)?;
            let _closed = gate.write().unwrap_or_else(|p| p.into_inner());
            for id in inputs {
                delete_run(tree, term, id)?;
            }
            level = level.saturating_add(1);
        }
    }
    Ok(())
}

/// One run read in key order from a starting key on, a piece at a time.
struct RunCursor {
    id: RunId,
    pieces: sled::Iter,
    buffer: std::vec::IntoIter<(Vec<u8>, bool)>,
}

impl RunCursor {
    fn open(tree: &sled::Tree, term: &[u8], id: RunId, from: Option<&[u8]>) -> Result<Self> {
        let prefix = run_pieces_prefix(term, id);
        let end = keys::prefix_end(&prefix);
        // Start at the piece holding `from`: the last piece whose first key is not after it.
        let start = match from {
            Some(f) => {
                let mut probe = prefix.clone();
                probe.extend_from_slice(f);
                match tree.range(prefix.clone()..=probe).next_back() {
                    Some(item) => item?.0.to_vec(),
                    None => prefix,
                }
            }
            None => prefix,
        };
        Ok(RunCursor {
            id,
            pieces: tree.range(start..end),
            buffer: Vec::new().into_iter(),
        })
    }

    fn next_entry(&mut self) -> Result<Option<(Vec<u8>, bool)>> {
        loop {
            if let Some(e) = self.buffer.next() {
                return Ok(Some(e));
            }
            match self.pieces.next() {
                Some(item) => self.buffer = decode_piece(&item?.1)?.into_iter(),
                None => return Ok(None),
            }
        }
    }
}

/// The entries of `inputs` merged in key order after `after`: for each key the op of the
/// newest run that has it.
fn merged_entries(
    tree: &sled::Tree,
    term: &[u8],
    inputs: &[RunId],
    after: Option<&[u8]>,
) -> Result<Merged> {
    let mut cursors = Vec::with_capacity(inputs.len());
    let mut heap = BinaryHeap::new();
    for (i, id) in inputs.iter().enumerate() {
        let mut c = RunCursor::open(tree, term, *id, after)?;
        if let Some((key, add)) = c.next_entry()? {
            heap.push(Reverse((key, Reverse(c.id.run), i, add)));
        }
        cursors.push(c);
    }
    Ok(Merged {
        cursors,
        heap,
        after: after.map(<[u8]>::to_vec),
    })
}

type HeapItem = Reverse<(Vec<u8>, Reverse<u64>, usize, bool)>;

pub(crate) struct Merged {
    cursors: Vec<RunCursor>,
    heap: BinaryHeap<HeapItem>,
    after: Option<Vec<u8>>,
}

impl Merged {
    fn advance(&mut self, i: usize) -> Result<()> {
        if let Some(c) = self.cursors.get_mut(i) {
            if let Some((key, add)) = c.next_entry()? {
                self.heap.push(Reverse((key, Reverse(c.id.run), i, add)));
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Option<(Vec<u8>, bool)>> {
        while let Some(Reverse((key, _, i, add))) = self.heap.pop() {
            self.advance(i)?;
            // Older runs' ops for the same key lose to this one (the heap gives the
            // newest run first among equal keys).
            while let Some(Reverse((next, _, j, _))) = self.heap.peek() {
                if *next != key {
                    break;
                }
                let j = *j;
                self.heap.pop();
                self.advance(j)?;
            }
            if self.after.as_ref().is_some_and(|a| key <= *a) {
                continue;
            }
            return Ok(Some((key, add)));
        }
        Ok(None)
    }
}

impl Iterator for Merged {
    type Item = Result<(Vec<u8>, bool)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

/// Asset keys (byte form) that have the term, in key order, after `after`. A superset:
/// callers check each against its record.
pub(crate) fn candidates(
    tree: &sled::Tree,
    term: &[u8],
    after: Option<&[u8]>,
) -> Result<impl Iterator<Item = Result<Vec<u8>>>> {
    let inputs = runs(tree, term)?;
    let merged = merged_entries(tree, term, &inputs, after)?;
    Ok(merged.filter_map(|e| match e {
        Ok((key, true)) => Some(Ok(key)),
        Ok((_, false)) => None,
        Err(e) => Some(Err(e)),
    }))
}

/// How many runs a term has.
#[cfg(test)]
pub(crate) fn run_count(tree: &sled::Tree, term: &[u8]) -> Result<usize> {
    Ok(runs(tree, term)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::sync::RwLock;

    fn setup() -> (tempfile::TempDir, sled::Db, sled::Tree, TenantId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("db");
        let tree = db.open_tree("data").expect("tree");
        (dir, db, tree, TenantId::new("acme").expect("id"))
    }

    fn key(n: u32) -> Vec<u8> {
        let mut k = vec![b's'];
        k.extend_from_slice(&n.to_be_bytes());
        k
    }

    fn all(tree: &sled::Tree, term: &[u8], after: Option<&[u8]>) -> Vec<Vec<u8>> {
        candidates(tree, term, after)
            .expect("reads")
            .collect::<Result<Vec<_>>>()
            .expect("entries")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any sequence of batches that add and remove a term: the postings give exactly
        /// the keys that have it (merges and tombstone drops included), from any cursor.
        #[test]
        fn postings_follow_adds_and_removes(
            batches in prop::collection::vec(
                prop::collection::vec((0u32..400, any::<bool>()), 1..60), 1..40),
            cursor in 0u32..400,
        ) {
            let (_d, db, tree, t) = setup();
            let gate = RwLock::new(());
            let term: Term = ("port".into(), "22".into());
            let mut truth = BTreeSet::new();
            for batch in batches {
                let mut delta = Delta::default();
                let mut seen = BTreeSet::new();
                for (n, add) in batch {
                    if !seen.insert(n) { continue; }
                    let has = truth.contains(&n);
                    if add && !has {
                        truth.insert(n);
                        delta.adds.entry(term.clone()).or_default().push(key(n));
                    } else if !add && has {
                        truth.remove(&n);
                        delta.removes.entry(term.clone()).or_default().push(key(n));
                    }
                }
                let mut terms = write(&db, &tree, &t, &delta.adds, true).expect("adds");
                terms.extend(write(&db, &tree, &t, &delta.removes, false).expect("removes"));
                merge(&tree, &terms, &gate).expect("merges");
            }
            let tp = term_prefix(&t, "port", "22");
            let want: Vec<Vec<u8>> = truth.iter().map(|n| key(*n)).collect();
            prop_assert_eq!(all(&tree, &tp, None), want.clone());
            let after = key(cursor);
            let want_after: Vec<Vec<u8>> = want.into_iter().filter(|k| *k > after).collect();
            prop_assert_eq!(all(&tree, &tp, Some(&after)), want_after);
            prop_assert!(run_count(&tree, &tp).expect("runs") < MERGE_AT * 6);
        }
    }

    #[test]
    fn big_runs_span_pieces_and_a_cursor_lands_inside_one() {
        let (_d, db, tree, t) = setup();
        let gate = RwLock::new(());
        let term: Term = ("service".into(), "HTTP".into());
        let mut terms = Vec::new();
        for b in 0..(MERGE_AT as u32 + 1) {
            let keys: Vec<Vec<u8>> = (0..3000).map(|i| key(i * 16 + b)).collect();
            let entries = BTreeMap::from([(term.clone(), keys)]);
            terms = write(&db, &tree, &t, &entries, true).expect("writes");
            merge(&tree, &terms, &gate).expect("merges");
        }
        // Two runs left: one merged (level 1), one new (level 0); values lower-cased.
        assert_eq!(terms, vec![term_prefix(&t, "service", "http")]);
        assert_eq!(run_count(&tree, &terms[0]).expect("runs"), 2);
        let got = all(&tree, &terms[0], Some(&key(20_000)));
        let want: Vec<Vec<u8>> = (0..3000u32)
            .flat_map(|i| (0..=MERGE_AT as u32).map(move |b| i * 16 + b))
            .filter(|n| *n > 20_000)
            .map(key)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(got, want);
        assert!(
            decode_piece(&[1, 9, 0]).is_err(),
            "a piece cut short is corrupt"
        );
    }
}

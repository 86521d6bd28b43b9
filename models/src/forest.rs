//! The flattened forest and its exact evaluator.
//!
//! Every tree is renumbered breadth first so that the two children of a node sit side by
//! side, and a step down a numeric split is one compare and one add: the next node is
//! `first + (y >= threshold)`. Missing values need no test of their own: an ordered
//! compare with NaN is false, so NaN always takes the first slot, and a split whose
//! missing values go right stores its children swapped and compares the negated value
//! against a negated threshold (`x < t` is `-x > -t`, that is `-x >= next_up(-t)`).
//! Leaves have a NaN threshold and point at themselves, so a tree can be walked a fixed
//! number of steps (its depth) without a branch, several trees or rows at once. Leaf
//! values are summed afterwards in tree order, which keeps the f32 sum XGBoost's.

use std::collections::VecDeque;

/// What a node is, for the general walk (forests with categorical splits). The hot
/// numeric path never reads it: leaves there are nodes that point at themselves.
const NUMERIC: u8 = 0;
const LEAF: u8 = 1;
const CATEGORICAL_DEFAULT_LEFT: u8 = 2;
const CATEGORICAL_DEFAULT_RIGHT: u8 = 3;

/// Most features a model may have (XGBoost's own limit is 2^32; a file asking for more
/// than this is refused rather than allowed to allocate names for billions).
pub(crate) const MAX_FEATURE: usize = 1 << 24;

/// Category sets whose largest code is below this are bitsets (at most 256 bytes).
const MAX_BITSET_CODE: usize = 2048;
/// Header flag of a category set stored as sorted codes.
const SORTED_CODES: u32 = 1 << 31;

/// Trees walked side by side when scoring one row.
const LANES: usize = 8;
/// Rows walked side by side through one tree when scoring a batch.
const ROW_LANES: usize = 16;

/// 2^24: category codes at or above it are invalid in XGBoost and go left.
const MAX_CATEGORY: f32 = 16_777_216.0;

#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(16))]
struct Node {
    /// Effective split threshold (see the module docs); NaN on leaves; the bitset offset
    /// (as bits) on categorical splits.
    threshold: f32,
    /// 1.0, or -1.0 where the split compares the negated value (missing goes right).
    sign: f32,
    /// Feature index (0 on leaves).
    feature: u32,
    /// Index of the first child slot (the other is `first + 1`); a leaf's own index.
    first: u32,
}

const LEAF_NODE: Node = Node { threshold: f32::NAN, sign: 1.0, feature: 0, first: 0 };

/// One decision node or leaf as the loader hands it over, in XGBoost's own numbering.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawNode {
    Leaf(f32),
    Numeric { feature: u32, threshold: f32, default_left: bool, left: u32, right: u32 },
    Categorical { feature: u32, categories: Vec<u32>, default_left: bool, left: u32, right: u32 },
}

/// A gradient-boosted forest, flattened for fast and exact scoring.
#[derive(Debug, Clone)]
pub struct Forest {
    nodes: Vec<Node>,
    /// Node kinds, for the general walk.
    kinds: Vec<u8>,
    /// XGBoost's own thresholds, for converters (the hot path reads `nodes`).
    thresholds: Vec<f32>,
    leaf_values: Vec<f32>,
    /// Category bitsets: at each offset, the word count and then the words.
    category_words: Vec<u32>,
    roots: Vec<u32>,
    depths: Vec<u32>,
    groups: Vec<u32>,
    num_groups: usize,
    num_features: usize,
    has_categorical: bool,
}

impl Forest {
    /// Builds the forest from trees in XGBoost numbering (root 0, validated acyclic by the loader).
    pub(crate) fn new(trees: &[(Vec<RawNode>, u32)], num_groups: usize, num_features: usize) -> Forest {
        let mut f = Forest {
            nodes: Vec::new(),
            kinds: Vec::new(),
            thresholds: Vec::new(),
            leaf_values: Vec::new(),
            category_words: Vec::new(),
            roots: Vec::with_capacity(trees.len()),
            depths: Vec::with_capacity(trees.len()),
            groups: Vec::with_capacity(trees.len()),
            num_groups,
            num_features,
            has_categorical: false,
        };
        for (raw, group) in trees {
            f.push_tree(raw, *group);
        }
        f
    }

    fn push_tree(&mut self, raw: &[RawNode], group: u32) {
        let root = self.nodes.len() as u32;
        self.roots.push(root);
        self.groups.push(group);
        // Breadth first: (raw id, flat slot, depth).
        let mut queue = VecDeque::from([(0u32, root, 0u32)]);
        self.alloc(1);
        let mut depth = 0;
        while let Some((id, slot, d)) = queue.pop_front() {
            depth = depth.max(d);
            let node = match &raw[id as usize] {
                RawNode::Leaf(value) => {
                    self.leaf_values[slot as usize] = *value;
                    Node { first: slot, ..LEAF_NODE }
                }
                RawNode::Numeric { feature, threshold, default_left, left, right } => {
                    assert!((*feature as usize) < self.num_features, "feature index checked by the loader");
                    self.thresholds[slot as usize] = *threshold;
                    let (first, second) = if *default_left { (*left, *right) } else { (*right, *left) };
                    let kids = self.children(&mut queue, first, second, d);
                    self.kinds[slot as usize] = NUMERIC;
                    numeric_node(*feature, *threshold, *default_left, kids)
                }
                RawNode::Categorical { feature, categories, default_left, left, right } => {
                    assert!((*feature as usize) < self.num_features, "feature index checked by the loader");
                    let kids = self.children(&mut queue, *left, *right, d);
                    self.has_categorical = true;
                    let offset = self.push_categories(categories);
                    self.kinds[slot as usize] =
                        if *default_left { CATEGORICAL_DEFAULT_LEFT } else { CATEGORICAL_DEFAULT_RIGHT };
                    Node { threshold: f32::from_bits(offset), sign: 1.0, feature: *feature, first: kids }
                }
            };
            self.nodes[slot as usize] = node;
        }
        self.depths.push(depth);
    }

    fn alloc(&mut self, n: usize) -> u32 {
        let at = self.nodes.len() as u32;
        self.nodes.resize(self.nodes.len() + n, LEAF_NODE);
        self.kinds.resize(self.nodes.len(), LEAF);
        self.leaf_values.resize(self.nodes.len(), 0.0);
        self.thresholds.resize(self.nodes.len(), f32::NAN);
        at
    }

    /// Allocates two adjacent slots and queues the raw nodes that go in them.
    fn children(&mut self, queue: &mut VecDeque<(u32, u32, u32)>, first: u32, second: u32, d: u32) -> u32 {
        let at = self.alloc(2);
        queue.push_back((first, at, d + 1));
        queue.push_back((second, at + 1, d + 1));
        at
    }

    /// Stores a category set: a bitset when its largest code is small, otherwise (so that
    /// a hostile file cannot ask for megabytes per node) the sorted codes. The header word
    /// holds the length, with `SORTED_CODES` set for the second form.
    fn push_categories(&mut self, categories: &[u32]) -> u32 {
        let offset = self.category_words.len() as u32;
        let max = categories.iter().copied().max().unwrap_or(0) as usize;
        if max < MAX_BITSET_CODE {
            let words = if categories.is_empty() { 0 } else { max / 32 + 1 };
            self.category_words.push(words as u32);
            let start = self.category_words.len();
            self.category_words.resize(start + words, 0);
            for &c in categories {
                self.category_words[start + c as usize / 32] |= 1 << (c % 32);
            }
        } else {
            let mut sorted = categories.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            self.category_words.push(sorted.len() as u32 | SORTED_CODES);
            self.category_words.extend_from_slice(&sorted);
        }
        offset
    }

    /// Number of trees.
    pub fn num_trees(&self) -> usize {
        self.roots.len()
    }

    /// Number of output groups (classes for multi-class models, otherwise 1).
    pub fn num_groups(&self) -> usize {
        self.num_groups
    }

    /// Number of input features a row must have.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Whether any split is categorical.
    pub fn has_categorical(&self) -> bool {
        self.has_categorical
    }

    /// Feature indices that appear in at least one split, ascending.
    pub fn features_used(&self) -> Vec<usize> {
        let mut used = vec![false; self.num_features];
        for (n, &kind) in self.nodes.iter().zip(&self.kinds) {
            if kind != LEAF {
                used[n.feature as usize] = true;
            }
        }
        (0..self.num_features).filter(|&f| used[f]).collect()
    }

    /// Depth of the deepest tree.
    pub fn max_depth(&self) -> u32 {
        self.depths.iter().copied().max().unwrap_or(0)
    }

    /// Adds every tree's leaf for `row` to `margins[group]`, in tree order.
    ///
    /// `row` holds `num_features` values (NaN is missing); `margins` holds `num_groups`
    /// values, usually the base margins. Allocation-free.
    pub fn accumulate(&self, row: &[f32], margins: &mut [f32]) {
        assert_eq!(row.len(), self.num_features, "row width");
        assert_eq!(margins.len(), self.num_groups, "margin width");
        // A forest without features has only single-leaf trees: zero steps, no row reads.
        if self.has_categorical {
            self.accumulate_with::<true>(row, margins);
        } else {
            self.accumulate_with::<false>(row, margins);
        }
    }

    fn accumulate_with<const CAT: bool>(&self, row: &[f32], margins: &mut [f32]) {
        let n = self.roots.len();
        // One output group: the running sum stays in a register (same additions, same order).
        if self.num_groups == 1 {
            let mut acc = margins[0];
            let mut t = 0;
            while t + LANES <= n {
                for leaf in self.walk_trees::<LANES, CAT>(t, row) {
                    acc += self.leaf_values[leaf as usize];
                }
                t += LANES;
            }
            while t < n {
                let [leaf] = self.walk_trees::<1, CAT>(t, row);
                acc += self.leaf_values[leaf as usize];
                t += 1;
            }
            margins[0] = acc;
            return;
        }
        let mut t = 0;
        while t + LANES <= n {
            for (k, leaf) in self.walk_trees::<LANES, CAT>(t, row).into_iter().enumerate() {
                margins[self.groups[t + k] as usize] += self.leaf_values[leaf as usize];
            }
            t += LANES;
        }
        while t < n {
            let [leaf] = self.walk_trees::<1, CAT>(t, row);
            margins[self.groups[t] as usize] += self.leaf_values[leaf as usize];
            t += 1;
        }
    }

    /// Walks one row through trees `t..t + L` side by side; returns their leaves in order.
    #[inline(always)]
    fn walk_trees<const L: usize, const CAT: bool>(&self, t: usize, row: &[f32]) -> [u32; L] {
        let mut cursor: [u32; L] = std::array::from_fn(|k| self.roots[t + k]);
        let steps = self.depths[t..t + L].iter().copied().max().unwrap_or(0);
        for _ in 0..steps {
            for c in cursor.iter_mut() {
                *c = self.step::<CAT>(*c, row);
            }
        }
        cursor
    }

    /// Adds every tree's leaf to the margins of many rows: `rows` is row-major with
    /// `num_features` values per row, `margins` row-major with `num_groups` per row
    /// (usually prefilled with the base margins). Allocation-free.
    ///
    /// Rows go through in blocks that walk the same tree side by side, so each tree's
    /// nodes are read from L1 once per block; every row still sums its leaves in tree order.
    pub fn accumulate_rows(&self, rows: &[f32], margins: &mut [f32]) {
        let (width, groups) = (self.num_features, self.num_groups);
        let n = margins.len() / groups;
        assert_eq!(margins.len(), n * groups, "margins are not a whole number of rows");
        assert_eq!(rows.len(), n * width, "rows and margins disagree on the row count");
        if self.has_categorical {
            self.accumulate_rows_with::<true>(rows, margins, n);
        } else {
            self.accumulate_rows_with::<false>(rows, margins, n);
        }
    }

    fn accumulate_rows_with<const CAT: bool>(&self, rows: &[f32], margins: &mut [f32], n: usize) {
        let (width, groups) = (self.num_features, self.num_groups);
        let mut block = 0;
        while block + ROW_LANES <= n {
            self.walk_block::<ROW_LANES, CAT>(&rows[block * width..], &mut margins[block * groups..]);
            block += ROW_LANES;
        }
        while block < n {
            self.walk_block::<1, CAT>(&rows[block * width..], &mut margins[block * groups..]);
            block += 1;
        }
    }

    /// Walks `L` rows through every tree, side by side; `L` is a constant so that the
    /// cursors live in registers and the lane loop unrolls.
    #[inline(always)]
    fn walk_block<const L: usize, const CAT: bool>(&self, rows: &[f32], margins: &mut [f32]) {
        let (width, groups) = (self.num_features, self.num_groups);
        let lanes: [&[f32]; L] = std::array::from_fn(|r| &rows[r * width..(r + 1) * width]);
        // One output group: each row's running sum stays in a register.
        let mut acc: [f32; L] = std::array::from_fn(|r| margins[r * groups]);
        for t in 0..self.roots.len() {
            let mut cursor = [self.roots[t]; L];
            for _ in 0..self.depths[t] {
                for r in 0..L {
                    cursor[r] = self.step::<CAT>(cursor[r], lanes[r]);
                }
            }
            if groups == 1 {
                for r in 0..L {
                    acc[r] += self.leaf_values[cursor[r] as usize];
                }
            } else {
                let g = self.groups[t] as usize;
                for r in 0..L {
                    margins[r * groups + g] += self.leaf_values[cursor[r] as usize];
                }
            }
        }
        if groups == 1 {
            margins[..L].copy_from_slice(&acc);
        }
    }

    /// One branch-free step in a forest without categorical splits; leaves stay put.
    #[inline(always)]
    fn step_numeric(&self, at: u32, row: &[f32]) -> u32 {
        debug_assert!(row.len() == self.num_features && (at as usize) < self.nodes.len());
        // SAFETY: `at` is a node index: roots and `first`, `first + 1` are slots allocated
        // by `alloc`, and a leaf's `first` is itself. The feature index was checked against
        // `num_features` in `push_tree` (leaves use 0, and this path needs num_features > 0),
        // and every caller checks `row.len() == num_features`.
        let n = unsafe { self.nodes.get_unchecked(at as usize) };
        let x = unsafe { *row.get_unchecked(n.feature as usize) };
        // Negate x where the split is negated; NaN stays NaN and compares false.
        n.first + (x * n.sign >= n.threshold) as u32
    }

    /// One step in any forest: categorical splits (rare, so the branch predicts well) take
    /// their own rule; numeric splits and leaves the branch-free step.
    #[inline(always)]
    fn step<const CAT: bool>(&self, at: u32, row: &[f32]) -> u32 {
        if !CAT {
            return self.step_numeric(at, row);
        }
        let kind = self.kinds[at as usize];
        if kind < CATEGORICAL_DEFAULT_LEFT {
            return self.step_numeric(at, row);
        }
        let n = self.nodes[at as usize];
        let x = row[n.feature as usize];
        let right =
            if x.is_nan() { kind == CATEGORICAL_DEFAULT_RIGHT } else { self.in_category_set(n.threshold.to_bits(), x) };
        n.first + right as u32
    }

    /// XGBoost's categorical decision: the truncated code goes right iff it is in the
    /// node's set; negative codes and codes of 2^24 and above are invalid and go left.
    fn in_category_set(&self, offset: u32, x: f32) -> bool {
        if !(0.0..MAX_CATEGORY).contains(&x) {
            return false;
        }
        let code = x as u32;
        let header = self.category_words[offset as usize];
        let body = offset as usize + 1;
        if header & SORTED_CODES != 0 {
            let len = (header & !SORTED_CODES) as usize;
            return self.category_words[body..body + len].binary_search(&code).is_ok();
        }
        let word = code as usize / 32;
        word < header as usize && self.category_words[body + word] & (1 << (code % 32)) != 0
    }

    /// The leaves and splits of tree `t`, for converters to other runtimes.
    pub(crate) fn tree_nodes(&self, t: usize) -> TreeView<'_> {
        TreeView { forest: self, root: self.roots[t] }
    }

    /// The output group of tree `t`.
    pub(crate) fn group_of(&self, t: usize) -> u32 {
        self.groups[t]
    }
}

/// A numeric split in the compare-and-add form of the module docs. XGBoost goes left iff
/// `x < t`; with a NaN threshold that is never, and with `t = -inf` never either.
fn numeric_node(feature: u32, t: f32, default_left: bool, first: u32) -> Node {
    if default_left {
        // Slots (left, right): right iff x >= t. A NaN t must send every x right: -inf.
        let threshold = if t.is_nan() { f32::NEG_INFINITY } else { t };
        Node { threshold, sign: 1.0, feature, first }
    } else {
        // Slots (right, left): left iff -x >= next_up(-t). "Never left" is a NaN threshold.
        let threshold = if t.is_nan() || t == f32::NEG_INFINITY { f32::NAN } else { (-t).next_up() };
        Node { threshold, sign: -1.0, feature, first }
    }
}

/// A read-only view of one flattened tree.
pub(crate) struct TreeView<'a> {
    forest: &'a Forest,
    root: u32,
}

/// A node of a [`TreeView`], in flat indices.
pub(crate) enum ViewNode {
    Leaf(f32),
    Numeric { feature: u32, threshold: f32, default_left: bool, left: u32, right: u32 },
    Categorical,
}

impl TreeView<'_> {
    pub fn root(&self) -> u32 {
        self.root
    }

    pub fn node(&self, at: u32) -> ViewNode {
        let f = self.forest;
        let n = f.nodes[at as usize];
        match f.kinds[at as usize] {
            LEAF => ViewNode::Leaf(f.leaf_values[at as usize]),
            NUMERIC => {
                let default_left = n.sign > 0.0;
                let (left, right) = if default_left { (n.first, n.first + 1) } else { (n.first + 1, n.first) };
                ViewNode::Numeric {
                    feature: n.feature,
                    threshold: f.thresholds[at as usize],
                    default_left,
                    left,
                    right,
                }
            }
            _ => ViewNode::Categorical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stump(feature: u32, threshold: f32, default_left: bool, l: f32, r: f32) -> Vec<RawNode> {
        vec![
            RawNode::Numeric { feature, threshold, default_left, left: 1, right: 2 },
            RawNode::Leaf(l),
            RawNode::Leaf(r),
        ]
    }

    fn score(f: &Forest, row: &[f32]) -> f32 {
        let mut m = [0.0f32];
        f.accumulate(row, &mut m);
        m[0]
    }

    #[test]
    fn splits_left_strictly_below_and_missing_by_default() {
        let f = Forest::new(&[(stump(1, 0.5, false, -1.0, 1.0), 0)], 1, 2);
        assert_eq!(score(&f, &[0.0, 0.4999999]), -1.0);
        assert_eq!(score(&f, &[0.0, 0.5]), 1.0);
        assert_eq!(score(&f, &[0.0, f32::NAN]), 1.0);
        let f = Forest::new(&[(stump(1, 0.5, true, -1.0, 1.0), 0)], 1, 2);
        assert_eq!(score(&f, &[0.0, f32::NAN]), -1.0);
        assert_eq!(score(&f, &[0.0, f32::INFINITY]), 1.0);
        assert_eq!(score(&f, &[0.0, f32::NEG_INFINITY]), -1.0);
    }

    #[test]
    fn categorical_codes_truncate_and_invalid_codes_go_left() {
        let tree = vec![
            RawNode::Categorical { feature: 0, categories: vec![1, 40], default_left: false, left: 1, right: 2 },
            RawNode::Leaf(-1.0),
            RawNode::Leaf(1.0),
        ];
        let f = Forest::new(&[(tree.clone(), 0)], 1, 1);
        let mut large = tree;
        large[0] = RawNode::Categorical {
            feature: 0,
            categories: vec![40, 1, 5_000_000],
            default_left: false,
            left: 1,
            right: 2,
        };
        let f_large = Forest::new(&[(large, 0)], 1, 1);
        assert_eq!(f_large.category_words.len(), 4, "large codes are stored sorted, not as a bitset");
        assert_eq!(score(&f_large, &[5_000_000.0]), 1.0);
        assert_eq!(score(&f_large, &[4_999_999.0]), -1.0);
        for (x, want) in [
            (1.0, 1.0),
            (1.9, 1.0),
            (40.0, 1.0),
            (2.0, -1.0),
            (-0.5, -1.0),
            (0.0, -1.0),
            (99.0, -1.0),
            (16_777_216.0, -1.0),
            (f32::NAN, 1.0),
        ] {
            assert_eq!(score(&f, &[x]), want, "x = {x}");
            assert_eq!(score(&f_large, &[x]), want, "x = {x} (sorted codes)");
        }
    }

    #[test]
    fn lopsided_trees_walk_their_full_depth() {
        // A lopsided tree: leaves at depths 1 and 3.
        let tree = vec![
            RawNode::Numeric { feature: 0, threshold: 0.0, default_left: true, left: 1, right: 2 },
            RawNode::Leaf(10.0),
            RawNode::Numeric { feature: 1, threshold: 5.0, default_left: false, left: 3, right: 4 },
            RawNode::Numeric { feature: 0, threshold: 3.0, default_left: true, left: 5, right: 6 },
            RawNode::Leaf(40.0),
            RawNode::Leaf(50.0),
            RawNode::Leaf(60.0),
        ];
        let trees: Vec<_> = (0..11).map(|_| (tree.clone(), 0)).collect();
        let f = Forest::new(&trees, 1, 2);
        assert_eq!(f.max_depth(), 3);
        for row in [[-1.0, 0.0], [1.0, 1.0], [4.0, 1.0], [1.0, 7.0], [f32::NAN, f32::NAN]] {
            let mut want = 0.0f32;
            for _ in 0..f.num_trees() {
                want += reference(&tree, &row);
            }
            assert_eq!(score(&f, &row), want, "row {row:?}");
        }
    }

    /// XGBoost's rule, written the plain way: left iff `x < t`, NaN to the default child.
    fn reference(tree: &[RawNode], row: &[f32]) -> f32 {
        let mut at = 0usize;
        loop {
            at = match &tree[at] {
                RawNode::Leaf(v) => return *v,
                RawNode::Numeric { feature, threshold, default_left, left, right } => {
                    let x = row[*feature as usize];
                    let go_left = if x.is_nan() { *default_left } else { x < *threshold };
                    (if go_left { *left } else { *right }) as usize
                }
                RawNode::Categorical { feature, categories, default_left, left, right } => {
                    let x = row[*feature as usize];
                    let go_left = if x.is_nan() {
                        *default_left
                    } else {
                        !(0.0..MAX_CATEGORY).contains(&x) || !categories.contains(&(x as u32))
                    };
                    (if go_left { *left } else { *right }) as usize
                }
            };
        }
    }

    /// Values that sit on and around the edges a split can have.
    fn edge_value() -> impl Strategy<Value = f32> {
        prop_oneof![
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(0.0f32),
            Just(-0.0f32),
            Just(f32::MAX),
            Just(f32::MIN),
            Just(1.0f32),
            Just(1.0f32.next_up()),
            Just(1.0f32.next_down()),
            Just(-1.0f32),
            (-4.0f32..4.0),
        ]
    }

    /// A random full tree of the given depth over `width` features, in XGBoost numbering.
    fn arb_tree(depth: u32, width: u32) -> impl Strategy<Value = Vec<RawNode>> {
        let inner = (1u32 << depth) - 1;
        let splits = proptest::collection::vec((0..width, edge_value(), any::<bool>(), any::<bool>()), inner as usize);
        let leaves = proptest::collection::vec(-1.0f32..1.0, (inner + 1) as usize);
        (splits, leaves).prop_map(move |(splits, leaves)| {
            let mut nodes = Vec::new();
            for (i, (feature, t, default_left, categorical)) in splits.into_iter().enumerate() {
                let (left, right) = (2 * i as u32 + 1, 2 * i as u32 + 2);
                nodes.push(if categorical {
                    let categories = vec![0, 1, (t.abs() as u32) % 40];
                    RawNode::Categorical { feature, categories, default_left, left, right }
                } else {
                    RawNode::Numeric { feature, threshold: t, default_left, left, right }
                });
            }
            nodes.extend(leaves.into_iter().map(RawNode::Leaf));
            nodes
        })
    }

    proptest! {
        #[test]
        fn the_flat_forest_follows_xgboosts_rule_on_every_edge(
            trees in proptest::collection::vec((1u32..5).prop_flat_map(|d| arb_tree(d, 3)), 1..12),
            rows in proptest::collection::vec(proptest::collection::vec(edge_value(), 3), 1..40),
            numeric_only in any::<bool>(),
        ) {
            let trees: Vec<Vec<RawNode>> = if numeric_only {
                trees.into_iter().map(|t| t.into_iter().map(|n| match n {
                    RawNode::Categorical { feature, default_left, left, right, .. } =>
                        RawNode::Numeric { feature, threshold: 0.5, default_left, left, right },
                    n => n,
                }).collect()).collect()
            } else {
                trees
            };
            let f = Forest::new(&trees.iter().map(|t| (t.clone(), 0)).collect::<Vec<_>>(), 1, 3);
            let mut batch = vec![0.25f32; rows.len()];
            f.accumulate_rows(&rows.concat(), &mut batch);
            for (row, batched) in rows.iter().zip(&batch) {
                let mut want = 0.25f32;
                for t in &trees {
                    want += reference(t, row);
                }
                let mut got = [0.25f32];
                f.accumulate(row, &mut got);
                prop_assert_eq!(got[0].to_bits(), want.to_bits(), "row {:?}", row);
                prop_assert_eq!(batched.to_bits(), want.to_bits(), "batched row {:?}", row);
            }
        }
    }
}

//! The flattened forest and its exact evaluator.
//!
//! Every tree is renumbered breadth first so that the two children of a node sit side by
//! side: the right child is always `left + 1`, and a step down the tree is one compare
//! and one add. Leaves point at themselves and never move, so a tree can be walked a fixed
//! number of steps (its depth) without a branch on "is this a leaf", and several trees can
//! be walked at once for instruction-level parallelism. Leaf values are summed afterwards
//! in tree order, which is what keeps the f32 sum identical to XGBoost's.

/// The right child is taken when the feature is missing.
const DEFAULT_RIGHT: u32 = 1 << 31;
/// The split is categorical: `threshold` holds the offset of its category bitset.
const CATEGORICAL: u32 = 1 << 30;
/// The node is a leaf; its value is in `leaf_values`.
const LEAF: u32 = 1 << 29;
const FEATURE_MASK: u32 = LEAF - 1;

/// Largest feature index a forest may use.
pub(crate) const MAX_FEATURE: usize = FEATURE_MASK as usize;

/// Trees walked side by side in the branch-free kernel.
const LANES: usize = 8;

/// 2^24: category codes at or above it are invalid in XGBoost and go left.
const MAX_CATEGORY: f32 = 16_777_216.0;

#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Node {
    /// Split threshold; NaN on leaves; bitset offset (as bits) on categorical splits.
    threshold: f32,
    /// Feature index and the flags above.
    feature: u32,
    /// Index of the left child (the right one is `left + 1`); a leaf's own index.
    left: u32,
}

/// One decision node or leaf as the loader hands it over, in XGBoost's own numbering.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawNode {
    Leaf(f32),
    Numeric {
        feature: u32,
        threshold: f32,
        default_left: bool,
        left: u32,
        right: u32,
    },
    Categorical {
        feature: u32,
        categories: Vec<u32>,
        default_left: bool,
        left: u32,
        right: u32,
    },
}

/// A gradient-boosted forest, flattened for fast and exact scoring.
#[derive(Debug, Clone)]
pub struct Forest {
    nodes: Vec<Node>,
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
    pub(crate) fn new(
        trees: &[(Vec<RawNode>, u32)],
        num_groups: usize,
        num_features: usize,
    ) -> Forest {
        let mut f = Forest {
            nodes: Vec::new(),
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
        let mut queue = std::collections::VecDeque::from([(0u32, root, 0u32)]);
        self.alloc(1);
        let mut depth = 0;
        while let Some((id, slot, d)) = queue.pop_front() {
            depth = depth.max(d);
            let node = match &raw[id as usize] {
                RawNode::Leaf(value) => {
                    self.leaf_values[slot as usize] = *value;
                    Node {
                        threshold: f32::NAN,
                        feature: LEAF,
                        left: slot,
                    }
                }
                RawNode::Numeric {
                    feature,
                    threshold,
                    default_left,
                    left,
                    right,
                } => {
                    let kids = self.children(&mut queue, *left, *right, d);
                    // XGBoost goes right when `!(x < t)`; with a NaN threshold that is
                    // always, which `x >= -inf` reproduces for every non-missing x.
                    let t = if threshold.is_nan() {
                        f32::NEG_INFINITY
                    } else {
                        *threshold
                    };
                    Node {
                        threshold: t,
                        feature: feature | flag(!default_left, DEFAULT_RIGHT),
                        left: kids,
                    }
                }
                RawNode::Categorical {
                    feature,
                    categories,
                    default_left,
                    left,
                    right,
                } => {
                    let kids = self.children(&mut queue, *left, *right, d);
                    self.has_categorical = true;
                    let offset = self.push_bitset(categories);
                    let bits = f32::from_bits(offset);
                    Node {
                        threshold: bits,
                        feature: feature | CATEGORICAL | flag(!default_left, DEFAULT_RIGHT),
                        left: kids,
                    }
                }
            };
            self.nodes[slot as usize] = node;
        }
        self.depths.push(depth);
    }

    fn alloc(&mut self, n: usize) -> u32 {
        let at = self.nodes.len() as u32;
        self.nodes.resize(
            self.nodes.len() + n,
            Node {
                threshold: f32::NAN,
                feature: LEAF,
                left: 0,
            },
        );
        self.leaf_values.resize(self.nodes.len(), 0.0);
        at
    }

    fn children(
        &mut self,
        queue: &mut std::collections::VecDeque<(u32, u32, u32)>,
        left: u32,
        right: u32,
        d: u32,
    ) -> u32 {
        let at = self.alloc(2);
        queue.push_back((left, at, d + 1));
        queue.push_back((right, at + 1, d + 1));
        at
    }

    fn push_bitset(&mut self, categories: &[u32]) -> u32 {
        let offset = self.category_words.len() as u32;
        let words = categories.iter().max().map_or(0, |&m| m as usize / 32 + 1);
        self.category_words.push(words as u32);
        let start = self.category_words.len();
        self.category_words.resize(start + words, 0);
        for &c in categories {
            self.category_words[start + c as usize / 32] |= 1 << (c % 32);
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
        if self.has_categorical || self.num_features == 0 {
            for t in 0..self.roots.len() {
                let leaf = self.walk(self.roots[t], row);
                margins[self.groups[t] as usize] += self.leaf_values[leaf as usize];
            }
            return;
        }
        let mut t = 0;
        while t < self.roots.len() {
            let lanes = LANES.min(self.roots.len() - t);
            let mut cursor = [0u32; LANES];
            cursor[..lanes].copy_from_slice(&self.roots[t..t + lanes]);
            let steps = self.depths[t..t + lanes].iter().copied().max().unwrap_or(0);
            for _ in 0..steps {
                for c in cursor[..lanes].iter_mut() {
                    *c = self.step_numeric(*c, row);
                }
            }
            for (lane, &leaf) in cursor[..lanes].iter().enumerate() {
                margins[self.groups[t + lane] as usize] += self.leaf_values[leaf as usize];
            }
            t += lanes;
        }
    }

    /// One branch-free step in a forest without categorical splits; leaves stay put.
    #[inline(always)]
    fn step_numeric(&self, at: u32, row: &[f32]) -> u32 {
        let n = self.nodes[at as usize];
        let x = row[(n.feature & FEATURE_MASK) as usize];
        // NaN compares false, so a leaf's NaN threshold never moves it, and a missing
        // value goes right only when its default is right.
        let right = (x >= n.threshold) | (x.is_nan() & (n.feature & DEFAULT_RIGHT != 0));
        n.left + right as u32
    }

    /// Walks one tree with categorical splits; returns the leaf's index.
    fn walk(&self, mut at: u32, row: &[f32]) -> u32 {
        loop {
            let n = self.nodes[at as usize];
            if n.feature & LEAF != 0 {
                return at;
            }
            let x = row[(n.feature & FEATURE_MASK) as usize];
            let right = if x.is_nan() {
                n.feature & DEFAULT_RIGHT != 0
            } else if n.feature & CATEGORICAL != 0 {
                self.in_category_set(n.threshold.to_bits(), x)
            } else {
                x >= n.threshold
            };
            at = n.left + right as u32;
        }
    }

    /// XGBoost's categorical decision: the truncated code goes right iff it is in the
    /// node's set; negative codes and codes of 2^24 and above are invalid and go left.
    fn in_category_set(&self, offset: u32, x: f32) -> bool {
        if !(0.0..MAX_CATEGORY).contains(&x) {
            return false;
        }
        let code = x as u32;
        let words = self.category_words[offset as usize] as usize;
        let word = code as usize / 32;
        word < words && self.category_words[offset as usize + 1 + word] & (1 << (code % 32)) != 0
    }

    /// The leaves and splits of tree `t`, for converters to other runtimes.
    pub(crate) fn tree_nodes(&self, t: usize) -> TreeView<'_> {
        TreeView {
            forest: self,
            root: self.roots[t],
        }
    }

    /// The output group of tree `t`.
    pub(crate) fn group_of(&self, t: usize) -> u32 {
        self.groups[t]
    }
}

fn flag(on: bool, bit: u32) -> u32 {
    if on {
        bit
    } else {
        0
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
    Numeric {
        feature: u32,
        threshold: f32,
        default_left: bool,
        left: u32,
    },
    Categorical,
}

impl TreeView<'_> {
    pub fn root(&self) -> u32 {
        self.root
    }

    pub fn node(&self, at: u32) -> ViewNode {
        let n = self.forest.nodes[at as usize];
        if n.feature & LEAF != 0 {
            ViewNode::Leaf(self.forest.leaf_values[at as usize])
        } else if n.feature & CATEGORICAL != 0 {
            ViewNode::Categorical
        } else {
            ViewNode::Numeric {
                feature: n.feature & FEATURE_MASK,
                threshold: n.threshold,
                default_left: n.feature & DEFAULT_RIGHT == 0,
                left: n.left,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump(feature: u32, threshold: f32, default_left: bool, l: f32, r: f32) -> Vec<RawNode> {
        vec![
            RawNode::Numeric {
                feature,
                threshold,
                default_left,
                left: 1,
                right: 2,
            },
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
            RawNode::Categorical {
                feature: 0,
                categories: vec![1, 40],
                default_left: false,
                left: 1,
                right: 2,
            },
            RawNode::Leaf(-1.0),
            RawNode::Leaf(1.0),
        ];
        let f = Forest::new(&[(tree, 0)], 1, 1);
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
        }
    }

    #[test]
    fn branch_free_and_branching_walks_agree() {
        // A lopsided tree: leaves at depths 1 and 3.
        let tree = vec![
            RawNode::Numeric {
                feature: 0,
                threshold: 0.0,
                default_left: true,
                left: 1,
                right: 2,
            },
            RawNode::Leaf(10.0),
            RawNode::Numeric {
                feature: 1,
                threshold: 5.0,
                default_left: false,
                left: 3,
                right: 4,
            },
            RawNode::Numeric {
                feature: 0,
                threshold: 3.0,
                default_left: true,
                left: 5,
                right: 6,
            },
            RawNode::Leaf(40.0),
            RawNode::Leaf(50.0),
            RawNode::Leaf(60.0),
        ];
        let trees: Vec<_> = (0..11).map(|_| (tree.clone(), 0)).collect();
        let f = Forest::new(&trees, 1, 2);
        assert_eq!(f.max_depth(), 3);
        for row in [
            [-1.0, 0.0],
            [1.0, 1.0],
            [4.0, 1.0],
            [1.0, 7.0],
            [f32::NAN, f32::NAN],
        ] {
            let mut want = 0.0f32;
            for t in 0..f.num_trees() {
                want += f.leaf_values[f.walk(f.roots[t], &row) as usize];
            }
            assert_eq!(score(&f, &row), want, "row {row:?}");
        }
    }
}

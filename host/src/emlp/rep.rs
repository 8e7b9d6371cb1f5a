//! Representations as values: `V`, its dual, direct sums, tensor products (within a group and
//! across groups), `T(p,q)`, powers and scalars. A representation is kept as an expression; its
//! vector layout is the natural one (sums concatenate, products are row-major Kronecker), and
//! [`Rep::terms`] splits it into tensor monomials, each with the positions it occupies, so that
//! bases are solved per distinct monomial and never densified for the whole representation.

use std::fmt;
use std::sync::Arc;

use super::group::Group;
use super::mat::Mat;

/// A representation expression.
#[derive(Clone, Debug)]
pub enum Rep {
    /// The trivial one-dimensional representation V⁰.
    Scalar,
    /// The base representation of a group, or its dual.
    V {
        /// The group.
        group: Arc<Group>,
        /// `true` for V*.
        dual: bool,
    },
    /// Direct sum, in order.
    Sum(Vec<Rep>),
    /// Tensor product, in order (row-major: the last factor varies fastest).
    Prod(Vec<Rep>),
}

/// One tensor factor of a monomial: the base representation of a group, or its dual.
#[derive(Clone, Debug)]
pub struct Factor {
    /// The group.
    pub group: Arc<Group>,
    /// `true` for V*. Always `false` for orthogonal groups (V* ≡ V).
    pub dual: bool,
}

impl Factor {
    fn key(&self) -> (&str, bool) {
        (&self.group.name, self.dual)
    }
}

/// A tensor monomial inside a representation: its factors (sorted canonically: by group, V before
/// V*) and, for each of its entries in row-major order over those factors, the position in the
/// whole representation's vector.
#[derive(Clone, Debug)]
pub struct Term {
    /// Canonically ordered factors.
    pub factors: Vec<Factor>,
    /// Positions in the representation's vector (length = product of factor dimensions).
    pub indices: Vec<usize>,
}

impl Term {
    /// A key identifying the monomial: `group:p:q` per group, joined by `|` (`"1"` for scalars).
    pub fn key(&self) -> String {
        if self.factors.is_empty() {
            return "1".into();
        }
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.factors.len() {
            let g = &self.factors[i].group.name;
            let (mut p, mut q) = (0, 0);
            while i < self.factors.len() && &self.factors[i].group.name == g {
                if self.factors[i].dual {
                    q += 1
                } else {
                    p += 1
                }
                i += 1;
            }
            parts.push(format!("{g}:{p}:{q}"));
        }
        parts.join("|")
    }

    /// The factors grouped by group: `(group, p, q)` in canonical order.
    pub fn monomials(&self) -> Vec<(Arc<Group>, usize, usize)> {
        let mut out: Vec<(Arc<Group>, usize, usize)> = Vec::new();
        for f in &self.factors {
            match out.last_mut() {
                Some((g, p, q)) if g.name == f.group.name => {
                    if f.dual {
                        *q += 1
                    } else {
                        *p += 1
                    }
                }
                _ => out.push((f.group.clone(), usize::from(!f.dual), usize::from(f.dual))),
            }
        }
        out
    }
}

/// The largest representation Keel will lay out (entries of the index map).
pub const MAX_REP_SIZE: usize = 1 << 27;

impl Rep {
    /// V of `group`.
    pub fn v(group: &Arc<Group>) -> Rep {
        Rep::V {
            group: group.clone(),
            dual: false,
        }
    }

    /// `T(p, q) = V^{⊗p} ⊗ V*^{⊗q}` of `group`.
    pub fn t(group: &Arc<Group>, p: usize, q: usize) -> Rep {
        if p + q == 0 {
            return Rep::Scalar;
        }
        let mut f = vec![Rep::v(group); p];
        f.extend(std::iter::repeat_n(
            Rep::V {
                group: group.clone(),
                dual: true,
            },
            q,
        ));
        Rep::Prod(f)
    }

    /// The dual representation.
    pub fn dual(&self) -> Rep {
        match self {
            Rep::Scalar => Rep::Scalar,
            Rep::V { group, dual } => Rep::V {
                group: group.clone(),
                dual: !dual,
            },
            Rep::Sum(r) => Rep::Sum(r.iter().map(Rep::dual).collect()),
            Rep::Prod(r) => Rep::Prod(r.iter().map(Rep::dual).collect()),
        }
    }

    /// The representation of linear maps `self → out` (the reference's `self >> out`):
    /// `out ⊗ self*`, laid out as `W[out, in]` row-major.
    pub fn maps_to(&self, out: &Rep) -> Rep {
        Rep::Prod(vec![out.clone(), self.dual()])
    }

    /// Dimension, saturating at `usize::MAX`.
    pub fn size(&self) -> usize {
        match self {
            Rep::Scalar => 1,
            Rep::V { group, .. } => group.d,
            Rep::Sum(r) => r.iter().fold(0usize, |a, x| a.saturating_add(x.size())),
            Rep::Prod(r) => r.iter().fold(1usize, |a, x| a.saturating_mul(x.size())),
        }
    }

    /// The groups appearing, by name, in first-seen order.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        fn walk(r: &Rep, out: &mut Vec<Arc<Group>>) {
            match r {
                Rep::Scalar => {}
                Rep::V { group, .. } => {
                    if !out.iter().any(|g| g.name == group.name) {
                        out.push(group.clone())
                    }
                }
                Rep::Sum(v) | Rep::Prod(v) => v.iter().for_each(|x| walk(x, out)),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// Split into tensor monomials with canonically ordered factors. Errors if the layout would
    /// exceed [`MAX_REP_SIZE`] entries.
    pub fn terms(&self) -> Result<Vec<Term>, String> {
        let n = self.size();
        if n > MAX_REP_SIZE {
            return Err(format!(
                "representation of size {} (the limit is {MAX_REP_SIZE} entries)",
                if n == usize::MAX {
                    "≥ 2^64".to_string()
                } else {
                    n.to_string()
                },
            ));
        }
        let raw = self.raw_terms();
        Ok(raw.into_iter().map(canonicalize).collect())
    }

    fn raw_terms(&self) -> Vec<Term> {
        match self {
            Rep::Scalar => vec![Term {
                factors: vec![],
                indices: vec![0],
            }],
            Rep::V { group, dual } => vec![Term {
                factors: vec![Factor {
                    group: group.clone(),
                    dual: *dual && !group.orthogonal,
                }],
                indices: (0..group.d).collect(),
            }],
            Rep::Sum(parts) => {
                let mut out = Vec::new();
                let mut offset = 0;
                for p in parts {
                    for mut t in p.raw_terms() {
                        t.indices.iter_mut().for_each(|i| *i += offset);
                        out.push(t);
                    }
                    offset += p.size();
                }
                out
            }
            Rep::Prod(parts) => {
                let mut acc = vec![Term {
                    factors: vec![],
                    indices: vec![0],
                }];
                for p in parts {
                    let sb = p.size();
                    let rhs = p.raw_terms();
                    let mut next = Vec::with_capacity(acc.len() * rhs.len());
                    for a in &acc {
                        for b in &rhs {
                            let mut factors = a.factors.clone();
                            factors.extend(b.factors.iter().cloned());
                            let mut indices = Vec::with_capacity(a.indices.len() * b.indices.len());
                            for &ia in &a.indices {
                                for &ib in &b.indices {
                                    indices.push(ia * sb + ib);
                                }
                            }
                            next.push(Term { factors, indices });
                        }
                    }
                    acc = next;
                }
                acc
            }
        }
    }

    /// `ρ(g)` applied to `x` (one element per group, matched by name), never forming `ρ(g)`.
    /// `elements` holds, per group name, `(g, g^{-T})`.
    pub fn apply(&self, elements: &[(String, Mat, Mat)], x: &[f64]) -> Result<Vec<f64>, String> {
        let terms = self.terms()?;
        let mut y = vec![0.0; x.len()];
        for t in &terms {
            let mats: Vec<&Mat> = t
                .factors
                .iter()
                .map(|f| {
                    let e = elements
                        .iter()
                        .find(|(n, _, _)| n == &f.group.name)
                        .ok_or_else(|| format!("no element given for group {}", f.group.name))?;
                    Ok(if f.dual { &e.2 } else { &e.1 })
                })
                .collect::<Result<_, String>>()?;
            let mut v: Vec<f64> = t.indices.iter().map(|&i| x[i]).collect();
            let dims: Vec<usize> = t.factors.iter().map(|f| f.group.d).collect();
            for (axis, m) in mats.iter().enumerate() {
                v = mode_product(&v, &dims, axis, m);
            }
            for (k, &i) in t.indices.iter().enumerate() {
                y[i] = v[k];
            }
        }
        Ok(y)
    }
}

/// Multiply the tensor `v` (row-major over `dims`) along `axis` by `m` (`dims[axis]` square).
pub fn mode_product(v: &[f64], dims: &[usize], axis: usize, m: &Mat) -> Vec<f64> {
    let d = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    let mut out = vec![0.0; v.len()];
    for o in 0..outer {
        for i in 0..d {
            let dst = &mut out[(o * d + i) * inner..(o * d + i + 1) * inner];
            for k in 0..d {
                let a = m.at(i, k);
                if a == 0.0 {
                    continue;
                }
                let src = &v[(o * d + k) * inner..(o * d + k + 1) * inner];
                for (y, x) in dst.iter_mut().zip(src) {
                    *y += a * x;
                }
            }
        }
    }
    out
}

/// Sort the factors by (group name, dual), permuting the tensor axes and the positions.
fn canonicalize(t: Term) -> Term {
    let k = t.factors.len();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| t.factors[a].key().cmp(&t.factors[b].key()));
    if order.iter().enumerate().all(|(i, &o)| i == o) {
        return t;
    }
    let dims: Vec<usize> = t.factors.iter().map(|f| f.group.d).collect();
    let new_dims: Vec<usize> = order.iter().map(|&o| dims[o]).collect();
    // Strides of the old layout.
    let mut stride = vec![1usize; k];
    for a in (0..k.saturating_sub(1)).rev() {
        stride[a] = stride[a + 1] * dims[a + 1];
    }
    let n = t.indices.len();
    let mut indices = Vec::with_capacity(n);
    let mut idx = vec![0usize; k];
    for _ in 0..n {
        let old: usize = (0..k).map(|a| idx[a] * stride[order[a]]).sum();
        indices.push(t.indices[old]);
        for a in (0..k).rev() {
            idx[a] += 1;
            if idx[a] < new_dims[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    let factors = order.iter().map(|&o| t.factors[o].clone()).collect();
    Term { factors, indices }
}

impl fmt::Display for Rep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rep::Scalar => write!(f, "Scalar"),
            Rep::V { dual: false, .. } => write!(f, "V"),
            Rep::V { dual: true, .. } => write!(f, "V.T"),
            Rep::Sum(r) => {
                write!(f, "(")?;
                for (i, x) in r.iter().enumerate() {
                    if i > 0 {
                        write!(f, "+")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, ")")
            }
            Rep::Prod(r) => {
                write!(f, "(")?;
                for (i, x) in r.iter().enumerate() {
                    if i > 0 {
                        write!(f, "*")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, ")")
            }
        }
    }
}

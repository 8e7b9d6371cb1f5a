//! Matrix groups given by generators of their base representation V (ℝ^d): discrete generators
//! `h_k` and Lie-algebra generators `A_k`, exactly as the reference `emlp` package defines them
//! (`emlp/groups.py`), so that solved bases agree with it.

use std::sync::Arc;

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

use super::mat::Mat;

/// A matrix group acting on ℝ^d.
#[derive(Clone, Debug)]
pub struct Group {
    /// The name in the reference's notation, e.g. `SO(3)`, `O13()`, `SO(3)*S(4)`.
    pub name: String,
    /// Dimension of the base representation.
    pub d: usize,
    /// Discrete generators (d×d).
    pub discrete: Vec<Mat>,
    /// Lie-algebra generators (d×d).
    pub lie: Vec<Mat>,
    /// Per-Lie-generator scale of the sampling noise (the reference's `z_scale`).
    pub z_scale: Option<Vec<f64>>,
    /// Every generator orthogonal (then `V* ≡ V`).
    pub orthogonal: bool,
    /// No Lie generators and every discrete generator a permutation matrix.
    pub permutation: bool,
}

fn unit(d: usize, i: usize, j: usize) -> Mat {
    let mut m = Mat::zeros(d, d);
    *m.at_mut(i, j) = 1.0;
    m
}

impl Group {
    fn new(name: String, d: usize, discrete: Vec<Mat>, lie: Vec<Mat>) -> Group {
        let orthogonal = lie.iter().all(|a| a.add(&a.t()).max_abs() < 1e-9)
            && discrete
                .iter()
                .all(|h| h.t().matmul(h).sub(&Mat::eye(d)).max_abs() < 1e-9);
        let permutation = lie.is_empty() && discrete.iter().all(|h| h.as_permutation().is_some());
        Group {
            name,
            d,
            discrete,
            lie,
            z_scale: None,
            orthogonal,
            permutation,
        }
    }

    /// The trivial group on ℝⁿ (no generators).
    pub fn trivial(n: usize) -> Group {
        Group::new(format!("Trivial({n})"), n, vec![], vec![])
    }

    fn so_lie(n: usize) -> Vec<Mat> {
        let mut lie = Vec::new();
        for i in 0..n {
            for j in 0..i {
                let mut a = unit(n, i, j);
                *a.at_mut(j, i) = -1.0;
                lie.push(a);
            }
        }
        lie
    }

    /// SO(n): generators `E_ij − E_ji`, i > j.
    pub fn so(n: usize) -> Group {
        Group::new(format!("SO({n})"), n, vec![], Group::so_lie(n))
    }

    /// O(n): SO(n) and the reflection `diag(−1, 1, …, 1)`.
    pub fn o(n: usize) -> Group {
        let mut h = Mat::eye(n);
        *h.at_mut(0, 0) = -1.0;
        Group::new(format!("O({n})"), n, vec![h], Group::so_lie(n))
    }

    fn rotation(k: usize) -> Mat {
        let th = 2.0 * std::f64::consts::PI / k as f64;
        Mat::from_rows(&[vec![th.cos(), th.sin()], vec![-th.sin(), th.cos()]])
    }

    /// The cyclic group C_k acting on ℝ² by rotations of 2π/k.
    pub fn c(k: usize) -> Group {
        Group::new(format!("C({k})"), 2, vec![Group::rotation(k)], vec![])
    }

    /// The dihedral group D_k on ℝ²: C_k and the reflection `diag(−1, 1)`.
    pub fn dihedral(k: usize) -> Group {
        let refl = Mat::from_rows(&[vec![-1.0, 0.0], vec![0.0, 1.0]]);
        Group::new(format!("D({k})"), 2, vec![Group::rotation(k), refl], vec![])
    }

    /// The scaling group on ℝⁿ (Lie generator I).
    pub fn scaling(n: usize) -> Group {
        Group::new(format!("Scaling({n})"), n, vec![], vec![Mat::eye(n)])
    }

    fn so13p_lie() -> Vec<Mat> {
        let mut lie = Vec::new();
        for i in 0..3 {
            let mut a = unit(4, 1 + i, 0);
            *a.at_mut(0, 1 + i) = 1.0;
            lie.push(a);
        }
        for r in Group::so_lie(3) {
            lie.push(Mat::from_fn(4, 4, |i, j| {
                if i > 0 && j > 0 {
                    r.at(i - 1, j - 1)
                } else {
                    0.0
                }
            }));
        }
        lie
    }

    fn lorentz(name: &str, discrete: Vec<Mat>) -> Group {
        let mut g = Group::new(name.into(), 4, discrete, Group::so13p_lie());
        g.z_scale = Some(vec![0.3, 0.3, 0.3, 1.0, 1.0, 1.0]);
        g
    }

    /// SO⁺(1,3), the identity component of the Lorentz group: three boosts, then rotations.
    pub fn so13p() -> Group {
        Group::lorentz("SO13p()", vec![])
    }

    /// SO(1,3): SO⁺(1,3) and −I.
    pub fn so13() -> Group {
        Group::lorentz("SO13()", vec![Mat::eye(4).scale(-1.0)])
    }

    /// O(1,3), the full Lorentz group: SO⁺(1,3), −I and time reversal `diag(−1, 1, 1, 1)`.
    pub fn o13() -> Group {
        let mut t = Mat::eye(4);
        *t.at_mut(0, 0) = -1.0;
        Group::lorentz("O13()", vec![Mat::eye(4).scale(-1.0), t])
    }

    /// SO⁺(1,1): the boost `[[0,1],[1,0]]`.
    pub fn so11p() -> Group {
        let a = Mat::from_rows(&[vec![0.0, 1.0], vec![1.0, 0.0]]);
        Group::new("SO11p()".into(), 2, vec![], vec![a])
    }

    /// O(1,1): SO⁺(1,1), −I and `diag(−1, 1)`.
    pub fn o11() -> Group {
        let a = Mat::from_rows(&[vec![0.0, 1.0], vec![1.0, 0.0]]);
        let mut t = Mat::eye(2);
        *t.at_mut(0, 0) = -1.0;
        Group::new("O11()".into(), 2, vec![Mat::eye(2).scale(-1.0), t], vec![a])
    }

    /// The symplectic group Sp(m) on ℝ^{2m}.
    pub fn sp(m: usize) -> Group {
        let d = 2 * m;
        let mut lie = Vec::new();
        for i in 0..m {
            for j in 0..m {
                let mut a = unit(d, i, j);
                *a.at_mut(m + j, m + i) = -1.0;
                lie.push(a);
            }
        }
        for i in 0..m {
            for j in 0..=i {
                let mut a = unit(d, m + i, j);
                *a.at_mut(m + j, i) = 1.0;
                lie.push(a);
                let mut b = unit(d, i, m + j);
                *b.at_mut(j, m + i) = 1.0;
                lie.push(b);
            }
        }
        Group::new(format!("Sp({m})"), d, vec![], lie)
    }

    /// The cyclic group Z_n in its regular representation: one cyclic shift,
    /// `(S x)_i = x_{i−1 mod n}` (the reference's `LazyShift`).
    pub fn z(n: usize) -> Group {
        let perm: Vec<usize> = (0..n).map(|i| (i + n - 1) % n).collect();
        Group::new(format!("Z({n})"), n, vec![Mat::permutation(&perm)], vec![])
    }

    /// The symmetric group S_n in its regular representation: the n−1 transpositions (0 k).
    pub fn s(n: usize) -> Group {
        let gens = (1..n)
            .map(|k| {
                let mut p: Vec<usize> = (0..n).collect();
                p.swap(0, k);
                Mat::permutation(&p)
            })
            .collect();
        Group::new(format!("S({n})"), n, gens, vec![])
    }

    /// SL(n): `E_ij` (i ≠ j) and `E_ll − E_{n−1,n−1}` (l < n−1).
    pub fn sl(n: usize) -> Group {
        let mut lie = Vec::new();
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    lie.push(unit(n, i, j));
                }
            }
        }
        for l in 0..n.saturating_sub(1) {
            let mut a = unit(n, l, l);
            *a.at_mut(n - 1, n - 1) = -1.0;
            lie.push(a);
        }
        Group::new(format!("SL({n})"), n, vec![], lie)
    }

    /// GL(n): every `E_ij`.
    pub fn gl(n: usize) -> Group {
        let mut lie = Vec::new();
        for i in 0..n {
            for j in 0..n {
                lie.push(unit(n, i, j));
            }
        }
        Group::new(format!("GL({n})"), n, vec![], lie)
    }

    /// The rotation group of the cube acting on its 6 faces.
    pub fn cube() -> Group {
        let gens = [[4, 1, 0, 3, 5, 2], [3, 0, 2, 5, 4, 1]]
            .iter()
            .map(|p| Mat::permutation(p))
            .collect();
        Group::new("Cube()".into(), 6, gens, vec![])
    }

    /// The Rubik's cube group on 48 facets **as the reference builds it** (faces U,F,R,B,L,D;
    /// six quarter turns; the F, R, B, L, D turns conjugate U by whole-cube face moves that do
    /// not turn the stickers within a face — see [`Group::rubiks_cube_geometric`]).
    pub fn rubiks_cube() -> Group {
        let gens = rubiks::reference_generators()
            .iter()
            .map(|p| Mat::permutation(p))
            .collect();
        Group::new("RubiksCube()".into(), 48, gens, vec![])
    }

    /// The Rubik's cube group on 48 facets built geometrically: each quarter turn rotates the
    /// facets of one layer about the face's axis in 3-D, so every cubie's stickers move together.
    pub fn rubiks_cube_geometric() -> Group {
        let gens = rubiks::geometric_generators()
            .iter()
            .map(|p| Mat::permutation(p))
            .collect();
        Group::new("RubiksCubeGeometric()".into(), 48, gens, vec![])
    }

    /// `G` acting on the first `g.d` coordinates of ℝ^d (the reference's `Embed`).
    pub fn embed(g: &Group, d: usize, name: String) -> Group {
        let place = |m: &Mat, fill: f64| {
            Mat::from_fn(d, d, |i, j| {
                if i < g.d && j < g.d {
                    m.at(i, j)
                } else if i == j {
                    fill
                } else {
                    0.0
                }
            })
        };
        let discrete = g.discrete.iter().map(|h| place(h, 1.0)).collect();
        let lie = g.lie.iter().map(|a| place(a, 0.0)).collect();
        Group::new(name, d, discrete, lie)
    }

    /// The direct product G1 × G2 acting on V1 ⊗ V2: `A1 ⊗ I`, `I ⊗ A2`, `h1 ⊗ I`, `I ⊗ h2`.
    pub fn product(g1: &Group, g2: &Group) -> Group {
        let (i1, i2) = (Mat::eye(g1.d), Mat::eye(g2.d));
        let lie = g1
            .lie
            .iter()
            .map(|a| a.kron(&i2))
            .chain(g2.lie.iter().map(|a| i1.kron(a)))
            .collect();
        let discrete = g1
            .discrete
            .iter()
            .map(|h| h.kron(&i2))
            .chain(g2.discrete.iter().map(|h| i1.kron(h)))
            .collect();
        Group::new(
            format!("{}*{}", g1.name, g2.name),
            g1.d * g2.d,
            discrete,
            lie,
        )
    }

    /// Wrap in an `Arc` (representations share their group).
    pub fn shared(self) -> Arc<Group> {
        Arc::new(self)
    }

    /// A random element as the reference samples them: `expm(Σ zᵢAᵢ)` with `z ~ N(0,1)` (times
    /// `z_scale`), then three rounds, in random order, of every discrete generator raised to a
    /// power uniform in {−5, …, 4}.
    pub fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> Mat {
        let mut a = Mat::zeros(self.d, self.d);
        for (i, gen) in self.lie.iter().enumerate() {
            let s = self.z_scale.as_ref().map_or(1.0, |z| z[i]);
            a = a.add(&gen.scale(standard_normal::<f64, _>(rng) * s));
        }
        let mut g = if self.lie.is_empty() {
            Mat::eye(self.d)
        } else {
            a.expm()
        };
        let m = self.discrete.len();
        for _ in 0..3 {
            let order = crate::data::permutation(m, rng);
            for &i in &order {
                let k = ((uniform::<f64, _>(rng) * 10.0).floor() as i64).clamp(0, 9) - 5;
                // Generators are invertible (checked when a rep is built); fall back to I.
                let hk = self.discrete[i].pow(k).unwrap_or_else(|| Mat::eye(self.d));
                g = g.matmul(&hk);
            }
        }
        g
    }
}

/// The Rubik's cube facet permutations. Facets are numbered face by face (U, F, R, B, L, D), 8
/// per face, row-major over the 3×3 face without its centre; faces are laid out as the net
///     B
///   L U R
///     F
///     D
mod rubiks {
    /// Insert the centres: 6 rows of 9 (index 4 is the centre, value `usize::MAX`).
    fn pad(p: &[usize]) -> [[usize; 9]; 6] {
        let mut out = [[usize::MAX; 9]; 6];
        for f in 0..6 {
            for k in 0..8 {
                out[f][if k < 4 { k } else { k + 1 }] = p[f * 8 + k];
            }
        }
        out
    }

    fn unpad(p: &[[usize; 9]; 6]) -> Vec<usize> {
        p.iter()
            .flat_map(|row| row[..4].iter().chain(&row[5..]).copied())
            .collect()
    }

    /// Move whole rows: `rows[cycle[i]] ← old rows[cycle[i−1]]` over the columns `cols`.
    fn cycle_rows(p: &mut [[usize; 9]; 6], cycle: &[usize], cols: std::ops::Range<usize>) {
        let old = *p;
        let n = cycle.len();
        for i in 0..n {
            let (dst, src) = (cycle[i], cycle[(i + n - 1) % n]);
            p[dst][cols.clone()].copy_from_slice(&old[src][cols.clone()]);
        }
    }

    fn compose(a: &[usize], b: &[usize]) -> Vec<usize> {
        // (a ∘ b)[i] = a[b[i]], as numpy's a[b].
        b.iter().map(|&i| a[i]).collect()
    }

    fn inverse(a: &[usize]) -> Vec<usize> {
        let mut inv = vec![0; a.len()];
        for (i, &x) in a.iter().enumerate() {
            inv[x] = i;
        }
        inv
    }

    pub(super) fn reference_generators() -> Vec<Vec<usize>> {
        let id: Vec<usize> = (0..48).collect();
        let mut p = pad(&id);
        // Quarter turn of U: rotate its 3×3 grid counter-clockwise (numpy rot90 k=1:
        // out[i][j] = in[j][2−i]), and cycle the top rows of F, R, B, L.
        let old = p[0];
        for i in 0..3 {
            for j in 0..3 {
                p[0][i * 3 + j] = old[j * 3 + (2 - i)];
            }
        }
        cycle_rows(&mut p, &[1, 2, 3, 4], 0..3);
        let u = unpad(&p);
        let mut rf = pad(&id);
        cycle_rows(&mut rf, &[0, 2, 5, 4], 0..9);
        let rot_front = unpad(&rf);
        let rot_back = inverse(&rot_front);
        let mut rl = pad(&id);
        cycle_rows(&mut rl, &[0, 1, 5, 3], 0..9);
        let rot_left = unpad(&rl);
        let rot_right = inverse(&rot_left);
        let conj = |outer: &[usize], inner: &[usize]| compose(outer, &compose(&u, inner));
        let f = conj(&rot_right, &rot_left);
        let r = conj(&rot_back, &rot_front);
        let b = conj(&rot_left, &rot_right);
        let l = conj(&rot_front, &rot_back);
        let d = compose(
            &rot_right,
            &conj(&rot_right, &compose(&rot_left, &rot_left)),
        );
        vec![u, f, r, b, l, d]
    }

    /// Sticker positions in 3-D: the cube is [−1.5, 1.5]³ with cubie centres at −1, 0, 1; a
    /// facet sits at its cubie centre plus half the face normal. Faces and their in-face axes
    /// follow the net above (U: +z, F: −y, R: +x, B: +y, L: −x, D: −z).
    fn facets() -> Vec<[i32; 3]> {
        // (normal, row axis, column axis) in doubled coordinates; rows run top→bottom of the net.
        let faces: [([i32; 3], [i32; 3], [i32; 3]); 6] = [
            ([0, 0, 1], [0, -1, 0], [1, 0, 0]), // U: rows go towards F (−y), columns towards R
            ([0, -1, 0], [0, 0, -1], [1, 0, 0]), // F: rows go down, columns towards R
            ([1, 0, 0], [0, 0, -1], [0, 1, 0]), // R: rows go down, columns towards B
            ([0, 1, 0], [0, 0, -1], [-1, 0, 0]), // B
            ([-1, 0, 0], [0, 0, -1], [0, -1, 0]), // L
            ([0, 0, -1], [0, -1, 0], [1, 0, 0]), // D
        ];
        let mut out = Vec::with_capacity(48);
        for (n, r, c) in faces {
            for i in 0..3i32 {
                for j in 0..3i32 {
                    if i == 1 && j == 1 {
                        continue;
                    }
                    let (a, b) = (i - 1, j - 1);
                    out.push([
                        2 * (a * r[0] + b * c[0]) + 3 * n[0],
                        2 * (a * r[1] + b * c[1]) + 3 * n[1],
                        2 * (a * r[2] + b * c[2]) + 3 * n[2],
                    ]);
                }
            }
        }
        out
    }

    /// Rotate by a quarter turn about `axis` (0, 1, 2) the facets with `x[axis]·sign > 0`.
    fn turn(pos: &[[i32; 3]], axis: usize, sign: i32) -> Vec<usize> {
        let (a, b) = ((axis + 1) % 3, (axis + 2) % 3);
        let moved: Vec<[i32; 3]> = pos
            .iter()
            .map(|x| {
                if x[axis] * sign > 0 {
                    let mut y = *x;
                    // 90° about the outward normal (clockwise seen from outside).
                    y[a] = sign * x[b];
                    y[b] = -sign * x[a];
                    y
                } else {
                    *x
                }
            })
            .collect();
        // perm[i] = index of the facet whose new position is pos[i]: (P x)_i = x_{perm[i]}.
        pos.iter()
            .map(|target| {
                moved
                    .iter()
                    .position(|m| m == target)
                    .expect("a quarter turn permutes facets")
            })
            .collect()
    }

    pub(super) fn geometric_generators() -> Vec<Vec<usize>> {
        let pos = facets();
        // U, F, R, B, L, D: the layer beyond ±1 along the face normal.
        [(2, 1), (1, -1), (0, 1), (1, 1), (0, -1), (2, -1)]
            .iter()
            .map(|&(axis, sign)| turn(&pos, axis, sign))
            .collect()
    }
}

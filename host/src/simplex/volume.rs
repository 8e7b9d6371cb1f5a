//! The squared volume of a simplex from its vertices: the Cayley–Menger determinant, as the
//! reference computes it (g-benton/loss-surface-simplexes `simplex/simplex_helpers.py`,
//! `complex_volume`), in `f64`; and its gradient with respect to one vertex through the equal
//! Gram form `V² = det(EᵀE)/((n−1)!)²` (E: the edges from vertex 0), which the engine's tape
//! lacks a determinant for.

/// Determinant of the row-major `n × n` matrix `a` by LU with partial pivoting (0 for an
/// exactly singular matrix).
pub fn det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut d = 1.0;
    for k in 0..n {
        let p = (k..n)
            .max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))
            .unwrap_or(k);
        if a[p * n + k] == 0.0 {
            return 0.0;
        }
        if p != k {
            for c in 0..n {
                a.swap(k * n + c, p * n + c);
            }
            d = -d;
        }
        let piv = a[k * n + k];
        d *= piv;
        for i in k + 1..n {
            let f = a[i * n + k] / piv;
            if f != 0.0 {
                for c in k..n {
                    a[i * n + c] -= f * a[k * n + c];
                }
            }
        }
    }
    d
}

fn factorial(k: usize) -> f64 {
    (1..=k).map(|i| i as f64).product()
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The squared `(n−1)`-dimensional volume of the simplex of `vertices` (each a flat parameter
/// vector of one length) by the Cayley–Menger determinant: `M_ij = ‖w_i − w_j‖²` (i, j < n),
/// a border of ones, `M_nn = 0`, `V² = |det M| / ((n−1)!² · 2^{n−1})`. One vertex: 1 (as the
/// reference's formula gives); an empty list: 0.
pub fn cayley_menger(vertices: &[&[f64]]) -> f64 {
    let n = vertices.len();
    if n == 0 {
        return 0.0;
    }
    let m = n + 1;
    let mut a = vec![0.0; m * m];
    for i in 0..n {
        for j in i + 1..n {
            let d = sq_dist(vertices[i], vertices[j]);
            a[i * m + j] = d;
            a[j * m + i] = d;
        }
        a[i * m + n] = 1.0;
        a[n * m + i] = 1.0;
    }
    let f = factorial(n - 1);
    det(a, m).abs() / (f * f * 2f64.powi(n as i32 - 1))
}

/// The Gram matrix `G = EᵀE` of the edges `e_j = w_j − w_0` (j = 1 … n−1), row-major.
fn gram(vertices: &[&[f64]]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let w0 = vertices[0];
    let edges: Vec<Vec<f64>> = vertices[1..]
        .iter()
        .map(|w| w.iter().zip(w0).map(|(a, b)| a - b).collect())
        .collect();
    let k = edges.len();
    let mut g = vec![0.0; k * k];
    for i in 0..k {
        for j in i..k {
            let d: f64 = edges[i].iter().zip(&edges[j]).map(|(a, b)| a * b).sum();
            g[i * k + j] = d;
            g[j * k + i] = d;
        }
    }
    (edges, g)
}

/// `V² = det(EᵀE)/((n−1)!)²`, the Gram form of [`cayley_menger`] (equal in exact arithmetic).
pub fn gram_volume(vertices: &[&[f64]]) -> f64 {
    let n = vertices.len();
    if n <= 1 {
        return if n == 1 { 1.0 } else { 0.0 };
    }
    let (_, g) = gram(vertices);
    let f = factorial(n - 1);
    det(g, n - 1) / (f * f)
}

/// The gradient of `V²` with respect to vertex `t`: with `d det G / dE = 2 E adj(G)`,
/// `∂V²/∂e_j = 2 Σ_l e_l adj(G)_lj / ((n−1)!)²`, `∂V²/∂w_t = ∂V²/∂e_t` for `t ≥ 1` and
/// `−Σ_j ∂V²/∂e_j` for `t = 0`. The adjugate (by cofactors) keeps it defined for degenerate
/// simplexes. One vertex: zeros.
///
/// # Panics
/// If `t` is not a vertex index.
pub fn volume_gradient(vertices: &[&[f64]], t: usize) -> Vec<f64> {
    let n = vertices.len();
    assert!(t < n, "vertex {t} of {n}");
    let p = vertices[0].len();
    if n == 1 {
        return vec![0.0; p];
    }
    let (edges, g) = gram(vertices);
    let k = n - 1;
    // adj(G)_lj = (−1)^{l+j} det(G without row j and column l); G is symmetric, so is adj(G).
    let mut adj = vec![0.0; k * k];
    for l in 0..k {
        for j in 0..k {
            adj[l * k + j] = if k == 1 {
                1.0
            } else {
                let minor: Vec<f64> = (0..k)
                    .filter(|&r| r != j)
                    .flat_map(|r| (0..k).filter(|&c| c != l).map(move |c| (r, c)))
                    .map(|(r, c)| g[r * k + c])
                    .collect();
                let s = if (l + j) % 2 == 0 { 1.0 } else { -1.0 };
                s * det(minor, k - 1)
            };
        }
    }
    let f = factorial(k);
    let scale = 2.0 / (f * f);
    let column = |j: usize| -> Vec<f64> {
        let mut out = vec![0.0; p];
        for (l, e) in edges.iter().enumerate() {
            let c = adj[l * k + j] * scale;
            if c != 0.0 {
                for (o, x) in out.iter_mut().zip(e) {
                    *o += c * x;
                }
            }
        }
        out
    };
    if t >= 1 {
        column(t - 1)
    } else {
        let mut out = vec![0.0; p];
        for j in 0..k {
            for (o, x) in out.iter_mut().zip(column(j)) {
                *o -= x;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_right_triangle_has_squared_area_a_quarter() {
        let v: [&[f64]; 3] = [&[0.0, 0.0], &[1.0, 0.0], &[0.0, 1.0]];
        assert!((cayley_menger(&v) - 0.25).abs() < 1e-15);
        assert!((gram_volume(&v) - 0.25).abs() < 1e-15);
    }

    #[test]
    fn gradient_matches_central_differences() {
        let a = [0.3, -1.2, 0.7, 2.0];
        let b = [1.1, 0.4, -0.5, 0.9];
        let c = [-0.6, 0.8, 1.5, -1.0];
        for t in 0..3 {
            let g = volume_gradient(&[&a, &b, &c], t);
            for i in 0..4 {
                let h = 1e-6;
                let mut vs = [a.to_vec(), b.to_vec(), c.to_vec()];
                vs[t][i] += h;
                let up = cayley_menger(&[&vs[0], &vs[1], &vs[2]]);
                vs[t][i] -= 2.0 * h;
                let dn = cayley_menger(&[&vs[0], &vs[1], &vs[2]]);
                let fd = (up - dn) / (2.0 * h);
                assert!(
                    (fd - g[i]).abs() < 1e-7 * (1.0 + fd.abs()),
                    "{t} {i}: {fd} vs {}",
                    g[i]
                );
            }
        }
    }
}

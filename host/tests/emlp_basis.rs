//! Equivariant bases: dimensions against the reference's documented values, equivariance of
//! every basis element under sampled group elements for every group, the parser's errors, the
//! disk cache, and `keel emlp basis` end to end.

use std::sync::Arc;

use keel::emlp::{parse_group, parse_rep, Group, Mat, Rep, Solver};
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

fn solver() -> Solver {
    Solver::new(None)
}

fn maps(group: &str, rep_in: &str, rep_out: &str) -> (Arc<Group>, Rep) {
    let g = parse_group(group).unwrap_or_else(|e| panic!("{}", e.render(group)));
    let ri = parse_rep(rep_in, Some(&g)).unwrap_or_else(|e| panic!("{}", e.render(rep_in)));
    let ro = parse_rep(rep_out, Some(&g)).unwrap_or_else(|e| panic!("{}", e.render(rep_out)));
    (g, ri.maps_to(&ro))
}

/// Basis dimensions from the `emlp` docs (`docs/notebooks/`) and an independent numpy SVD of the
/// same constraints.
#[test]
fn dimensions_match_the_reference_table() {
    let cases: &[(&str, &str, &str, usize)] = &[
        ("SO(3)", "V", "V", 1),
        ("SO(3)", "V**2", "V", 1),
        ("O(3)", "V**2", "V", 0),
        ("SO(3)", "V**3", "V**2", 6),
        ("O(3)", "V**3", "V**2", 0),
        ("O(3)", "5*Scalar+5*V", "V**2", 5),
        ("SO(3)", "5*Scalar+5*V", "V**2", 10),
        ("O(5)", "2*V", "Scalar", 0),
        ("O(5)", "V**2", "Scalar", 1),
        ("SO13p()", "V**4", "Scalar", 4),
        ("SO13()", "V**4", "Scalar", 4),
        ("O13()", "V**4", "Scalar", 3),
        ("Lorentz()", "V**2", "Scalar", 1),
        ("Sp(2)", "V**2", "Scalar", 1),
        ("S(4)", "V**2", "V**2", 15),
        ("S(6)", "V**2", "V**2", 15),
        ("S(6)", "V+V**2", "V", 7),
        ("S(5)", "T(5)", "Scalar", 52),
        ("Z(6)", "V", "V", 6),
        ("Z(5)", "V", "Scalar", 1),
        ("C(4)", "V", "V", 2),
        ("D(4)", "V", "V", 1),
        ("D(6)", "V**2", "Scalar", 1),
        ("Cube()", "V", "V", 3),
        ("RubiksCube()", "V", "V", 6),
        ("RubiksCube()", "V", "Scalar", 2),
        ("SO(2)", "V**4", "Scalar", 6),
        ("SO(4)", "V**4", "Scalar", 4),
        ("O2eR3()", "4*V", "Scalar", 4),
        ("SO(4)", "3*V+V**2", "(V.T+Scalar) >> (Scalar+V**2+V)", 27),
    ];
    let s = solver();
    for &(g, i, o, want) in cases {
        let (_, rep) = maps(g, i, o);
        assert_eq!(s.dim(&rep).unwrap(), want, "{g}: {i} → {o}");
    }
}

/// SO(n) invariants of T(k) (make_tables in the reference repository).
#[test]
fn so_n_tensor_invariants_match_the_reference_table() {
    let table: &[(usize, &[usize])] = &[
        (2, &[1, 0, 2, 0, 6, 0, 20]),
        (3, &[1, 0, 1, 1, 3, 6, 15]),
        (4, &[1, 0, 1, 0, 4, 0]),
        (5, &[1, 0, 1, 0, 3, 1]),
    ];
    let s = solver();
    for &(n, dims) in table {
        let g = Group::so(n).shared();
        for (k, &want) in dims.iter().enumerate() {
            assert_eq!(s.dim(&Rep::t(&g, k, 0)).unwrap(), want, "SO({n}) T({k})");
        }
    }
}

fn elements(groups: &[Arc<Group>], rng: &mut Xoshiro256PlusPlus) -> Vec<(String, Mat, Mat)> {
    groups
        .iter()
        .map(|g| {
            let x = g.sample(rng);
            let inv_t = x.inverse().expect("group elements are invertible").t();
            (g.name.clone(), x, inv_t)
        })
        .collect()
}

/// Every generator as a group element (`h_k`, `expm(A_k)`), the other groups at the identity.
fn generator_elements(groups: &[Arc<Group>]) -> Vec<Vec<(String, Mat, Mat)>> {
    let ident = |g: &Group| (g.name.clone(), Mat::eye(g.d), Mat::eye(g.d));
    let mut out = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let gens = g
            .discrete
            .iter()
            .cloned()
            .chain(g.lie.iter().map(Mat::expm));
        for x in gens {
            let inv_t = x.inverse().expect("generators are invertible").t();
            let mut els: Vec<_> = groups.iter().map(|h| ident(h)).collect();
            els[i] = (g.name.clone(), x, inv_t);
            out.push(els);
        }
    }
    out
}

/// Relative equivariance error of random basis combinations under sampled group elements and
/// under every generator (the reference's criterion), and a check that the test can fail: unless
/// everything is invariant, some element moves a generic vector.
fn check_equivariance(rep: &Rep, s: &Solver, seed: u64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let basis = s.basis(rep).unwrap();
    let groups = rep.groups();
    let n = rep.size();
    let mut all: Vec<Vec<(String, Mat, Mat)>> =
        (0..3).map(|_| elements(&groups, &mut rng)).collect();
    all.extend(generator_elements(&groups));
    let raw: Vec<f64> = (0..n)
        .map(|_| standard_normal::<f64, _>(&mut rng))
        .collect();
    let w = basis.project(&raw);
    let mut moved = 0.0f64;
    for els in &all {
        let gw = rep.apply(els, &w).unwrap();
        let scale =
            w.iter().map(|x| x.abs()).sum::<f64>() + gw.iter().map(|x| x.abs()).sum::<f64>();
        let err = w.iter().zip(&gw).map(|(a, b)| (a - b).abs()).sum::<f64>();
        assert!(
            err <= 1e-7 * scale.max(1e-300),
            "{rep}: relative equivariance error {}",
            err / scale
        );
        let graw = rep.apply(els, &raw).unwrap();
        moved = moved.max(
            raw.iter()
                .zip(&graw)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>(),
        );
    }
    if basis.dim() < n {
        assert!(
            moved > 1e-6,
            "{rep}: no element moves a generic vector; the check is vacuous"
        );
    }
}

#[test]
fn every_group_gives_equivariant_bases() {
    let groups = [
        "Trivial(3)",
        "SO(2)",
        "SO(3)",
        "O(3)",
        "SO(4)",
        "O(4)",
        "C(3)",
        "C(8)",
        "D(2)",
        "D(6)",
        "Scaling(3)",
        "SO13p()",
        "SO13()",
        "O13()",
        "Lorentz()",
        "SO11p()",
        "O11()",
        "Sp(1)",
        "Sp(2)",
        "Z(4)",
        "S(4)",
        "SL(2)",
        "SL(3)",
        "GL(2)",
        "GL(3)",
        "Cube()",
        "RubiksCube()",
        "RubiksCubeGeometric()",
        "SO2eR3()",
        "O2eR3()",
        "DkeR3(6)",
        "SO(3)*S(3)",
        "O(2)*C(4)",
    ];
    let s = solver();
    for (i, g) in groups.iter().enumerate() {
        let big = g.contains("Rubiks") || g.contains('*') || *g == "Cube()";
        let reps: &[(&str, &str)] = if big {
            &[("V", "V"), ("V", "Scalar")]
        } else {
            &[
                ("V", "V"),
                ("V**2", "V"),
                ("V.T*V", "Scalar"),
                ("Scalar+V+V**2", "V+V.T"),
                ("T(1,1)", "T(1,1)"),
            ]
        };
        for (j, &(ri, ro)) in reps.iter().enumerate() {
            let (_, rep) = maps(g, ri, ro);
            check_equivariance(&rep, &s, (i * 10 + j) as u64);
        }
    }
}

#[test]
fn mixed_group_representations_use_kronecker_bases() {
    let s = solver();
    let ri = parse_rep("V(SO(3))*V(S(4))", None).unwrap();
    let rep = ri.maps_to(&ri);
    // SO(3): V→V has 1 map, S(4): V→V has 2: the product has 2.
    assert_eq!(s.dim(&rep).unwrap(), 2);
    check_equivariance(&rep, &s, 7);
    let rep2 = parse_rep("V(SO(3))*V(S(4))+V(SO(3))", None)
        .unwrap()
        .maps_to(&parse_rep("V(SO(3))", None).unwrap());
    // SO(3): V⊗V* has 1 invariant and S(4): V* has 1 (the sum): 1·1, plus V(SO(3)) → V(SO(3)).
    assert_eq!(s.dim(&rep2).unwrap(), 2);
    check_equivariance(&rep2, &s, 8);
}

#[test]
fn duals_matter_only_for_non_orthogonal_groups() {
    let s = solver();
    for (g, same) in [
        ("SO(3)", true),
        ("GL(3)", false),
        ("Scaling(2)", false),
        ("O(1)", true),
    ] {
        let (_, a) = maps(g, "V", "V.T");
        let (_, b) = maps(g, "V", "V");
        let (da, db) = (s.dim(&a).unwrap(), s.dim(&b).unwrap());
        assert_eq!(da == db, same, "{g}: V→V* has {da} maps, V→V {db}");
    }
    // GL(n): the only invariant of V* ⊗ V is the trace pairing.
    let (_, rep) = maps("GL(3)", "V.T*V", "Scalar");
    assert_eq!(s.dim(&rep).unwrap(), 1);
}

/// The reference's RubiksCube quarter turns are conjugates of U by whole-cube moves that do not
/// rotate the stickers within a face, so they do not move cubies rigidly; the geometric group does.
#[test]
fn rubiks_cube_reference_turns_break_cubies_geometric_ones_do_not() {
    // Group facets into cubies by sticker adjacency: two facets belong to one cubie when the
    // geometric group's stabiliser structure says so — here, directly, by which facets every
    // geometric turn keeps together.
    let geo = Group::rubiks_cube_geometric();
    let reference = Group::rubiks_cube();
    let perms = |g: &Group| {
        g.discrete
            .iter()
            .map(|h| h.as_permutation().unwrap())
            .collect::<Vec<_>>()
    };
    let (gp, rp) = (perms(&geo), perms(&reference));
    // Corner-sticker triples and edge pairs under the geometric model: facets that are always
    // moved to a common destination cubie. Build the partition from the geometric generators.
    let cubie_of = cubies(&gp);
    let broken = |ps: &[Vec<usize>]| -> usize {
        let mut n = 0;
        for p in ps {
            // Facet i moves to position j where p[j] = i.
            let mut dest = vec![0; 48];
            for (j, &i) in p.iter().enumerate() {
                dest[i] = j;
            }
            let mut seen = std::collections::HashMap::new();
            for i in 0..48 {
                let c = cubie_of[i];
                let d = cubie_of[dest[i]];
                if let Some(&prev) = seen.get(&c) {
                    if prev != d {
                        n += 1;
                    }
                } else {
                    seen.insert(c, d);
                }
            }
        }
        n
    };
    assert_eq!(broken(&gp), 0, "geometric turns keep every cubie together");
    assert!(
        broken(&rp) > 0,
        "the reference's turns split some cubie's stickers"
    );
    let s = solver();
    let g1 = geo.shared();
    let g2 = reference.shared();
    assert_eq!(s.dim(&Rep::v(&g1).maps_to(&Rep::v(&g1))).unwrap(), 9);
    assert_eq!(s.dim(&Rep::v(&g2).maps_to(&Rep::v(&g2))).unwrap(), 6);
}

/// Cubies of the geometric model, from the facets' 3-D positions: facets of one cubie are those
/// whose positions differ only by the sticker offset. Recomputed here from the permutations:
/// the finest partition preserved (as blocks) by every generator.
fn cubies(perms: &[Vec<usize>]) -> Vec<usize> {
    // Facet pairs in one cubie: a corner/edge cubie's stickers share the set of turns that move
    // them (each sticker of a cubie is moved by exactly the turns of the faces the cubie touches).
    let moved_by = |i: usize| -> Vec<bool> { perms.iter().map(|p| p[i] != i).collect() };
    let mut keys: Vec<Vec<bool>> = Vec::new();
    (0..48)
        .map(|i| {
            let k = moved_by(i);
            match keys.iter().position(|x| *x == k) {
                Some(p) => p,
                None => {
                    keys.push(k);
                    keys.len() - 1
                }
            }
        })
        .collect()
}

#[test]
fn parser_errors_point_at_the_character() {
    let g = parse_group("SO(3)").unwrap();
    for (input, pos, needle) in [
        ("V**", 3, "unexpected end"),
        ("2*V+", 4, "unexpected end"),
        ("V.X", 2, "expected 'T'"),
        ("T(1,1", 5, "expected ')'"),
        ("V + W", 4, "unknown name 'W'"),
        ("V $ V", 2, "unexpected character"),
        ("V**V", 1, "cannot raise"),
    ] {
        let e = parse_rep(input, Some(&g)).unwrap_err();
        assert_eq!(e.pos, pos, "{input}: {}", e.render(input));
        assert!(e.msg.contains(needle), "{input}: {}", e.msg);
    }
    assert!(parse_rep("V", None)
        .unwrap_err()
        .msg
        .contains("needs a group"));
    assert!(parse_group("SU(3)").unwrap_err().msg.contains("complex"));
    assert!(parse_group("SO(0)").unwrap_err().msg.contains("at least 1"));
    assert!(parse_group("Foo(3)")
        .unwrap_err()
        .msg
        .contains("unknown name"));
    let e = parse_group("SO(3)*").unwrap_err();
    assert_eq!(
        e.render("SO(3)*"),
        "unexpected end of input at character 7: SO(3)*⟨here⟩"
    );
}

#[test]
fn a_representation_too_large_is_refused_before_allocating() {
    let g = parse_group("SO(3)").unwrap();
    let rep = parse_rep("V**40", Some(&g)).unwrap();
    let e = solver().basis(&rep).unwrap_err().to_string();
    assert!(e.contains("too large"), "{e}");
    // 3^12 = 531,441 entries: past the iterative solver's limit.
    let rep = parse_rep("T(12)", Some(&g)).unwrap();
    let e = solver().basis(&rep).unwrap_err().to_string();
    assert!(e.contains("T(12,0)") && e.contains("131072"), "{e}");
}

#[test]
fn the_disk_cache_round_trips_and_ignores_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_, rep) = maps("SO(3)", "V**2", "V**2");
    let first = Solver::new(Some(dir.path().into()))
        .basis(&rep)
        .unwrap()
        .dense()
        .unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    let second = Solver::new(Some(dir.path().into()))
        .basis(&rep)
        .unwrap()
        .dense()
        .unwrap();
    assert_eq!(first, second);
    for f in &files {
        std::fs::write(f, b"KEELQv1\0garbage").unwrap();
    }
    let third = Solver::new(Some(dir.path().into()))
        .basis(&rep)
        .unwrap()
        .dense()
        .unwrap();
    assert_eq!(first, third);
}

/// `Q Qᵀ` of orthonormal columns.
fn projector(q: &Mat) -> Vec<f64> {
    let n = q.rows;
    let mut p = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            p[i * n + j] = (0..q.cols).map(|c| q.at(i, c) * q.at(j, c)).sum();
        }
    }
    p
}

#[test]
fn the_iterative_solver_finds_the_dense_solvers_null_space() {
    use keel::emlp::solve::{solve_monomial, solve_monomial_iterative};
    // Compact and non-compact Lie groups, groups with discrete generators only (dense path
    // would use orbits for S(n); the constraints are solved here as for any group), mixed
    // tensor types and an empty null space.
    for (group, p, q) in [
        ("SO(3)", 4, 0),
        ("O(3)", 3, 0),
        ("SO(5)", 4, 0),
        ("O13()", 2, 2),
        ("SO13p()", 3, 0),
        ("Sp(2)", 4, 0),
        ("S(4)", 3, 0),
        ("D(6)", 2, 1),
        ("SO(3)", 1, 0),
    ] {
        let g = parse_group(group).unwrap();
        let dense = solve_monomial(&g, p, q).unwrap();
        let it = solve_monomial_iterative(&g, p, q).unwrap();
        assert_eq!(it.cols, dense.cols, "{group} T({p},{q}): dimension");
        let (a, b) = (projector(&it), projector(&dense));
        let err = a
            .iter()
            .zip(&b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(err < 1e-8, "{group} T({p},{q}): projectors differ by {err}");
    }
}

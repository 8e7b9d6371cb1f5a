//! Equivariant MLPs for arbitrary matrix groups (Finzi, Welling & Wilson, *A Practical Method for
//! Constructing Equivariant Multilayer Perceptrons for Arbitrary Matrix Groups*, ICML 2021).
//!
//! - [`group`]: groups as discrete and Lie-algebra generators of their base representation, with
//!   the reference `emlp` package's generator sets;
//! - [`rep`]: representations as values (V, V*, ⊕, ⊗, `T(p,q)`), laid out lazily as monomials;
//! - [`parse`]: the reference's own notation (`SO(3)`, `2*V+V**2`, `V(SO(3))*V(S(4))`);
//! - [`solve`]: equivariant bases (null spaces of the constraints), cached per monomial;
//! - [`model`]: EMLP layers and networks on the engine;
//! - [`spring`]: the double spring pendulum of the paper's dynamics experiments;
//! - [`dynamics`]: Hamiltonian and ODE EMLPs (and MLPs) learning it.

pub mod data;
pub mod dynamics;
pub mod group;
pub mod mat;
pub mod model;
pub mod parse;
pub mod rep;
pub mod solve;
pub mod spring;
pub mod train;

pub use group::Group;
pub use mat::Mat;
pub use parse::{parse_group, parse_rep, ParseError};
pub use rep::Rep;
pub use solve::{Basis, Solver};

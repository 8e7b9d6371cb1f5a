//! Learning constrained dynamics (Finzi, Wang & Wilson, *Simplifying Hamiltonian and Lagrangian
//! Neural Networks via Explicit Constraints*, NeurIPS 2020): the data pipeline of the reference
//! (this module so far); models, training and evaluation build on it.

pub mod angles;
pub mod coords;
pub mod data;
pub mod export;
pub mod model;
pub mod train;
pub mod truth;

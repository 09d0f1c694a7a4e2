//! The CTI manager simulator behind `ctigw-sim`: a small telephone system
//! ([`switch`]) and the node side of the CTI link ([`node`]), both sans
//! I/O and deterministic, so tests can assert exact sequences.

pub mod node;
pub mod switch;

#[cfg(test)]
mod tests;

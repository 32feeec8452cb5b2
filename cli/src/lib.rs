//! The `firebreak` command as a library, so the integration tests reuse its sandbox, its
//! template reader and its engine.

pub mod demo;
pub mod engine;
pub mod incidents;
pub mod pattern;
pub mod sandbox;
pub mod seed;
pub mod simulate;
pub mod template;

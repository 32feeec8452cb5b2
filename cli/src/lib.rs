//! The `firebreak` command as a library, so the integration tests reuse its sandbox.

pub mod sandbox;

//! Nothing here: this package only holds the cross-stage integration tests beside it.

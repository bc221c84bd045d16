//! The timeline a journey records (`e2e/tests/journey.sh`) and draws. The
//! scenarios themselves are in `tests/`; what they share with the
//! benchmarks is in `millpond-testkit`.

pub mod timeline;

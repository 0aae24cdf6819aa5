//! Benchmark helpers shared by the criterion benches and load generators.

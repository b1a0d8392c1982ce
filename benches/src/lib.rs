//! Criterion benchmarks of pvd's codecs, XDR and translation.

//! eBPF programs and wire types.

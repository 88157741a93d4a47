//! Detection: baseline, channels L1..L5 and categories, policy. No I/O, no kernel.

//! Sensor: load/attach, feature probing, ring-buffer decode, tracked set.

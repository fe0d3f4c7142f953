//! Configuration: raw files, checked plans and sweep axes.

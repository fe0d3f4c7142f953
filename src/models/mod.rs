//! Physics models. Each owns its parameters, state layout, CPU reference right-hand side, observables and WGSL kernels.

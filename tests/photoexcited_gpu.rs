//! GPU kernel `shaders/photoexcited/collision.wgsl` against its CPU twin, through a minimal
//! stand-alone wgpu harness (one dispatch of `rhs`, bindings as in
//! `shaders/shared/rhs_bindings.wgsl`). Runs on any Vulkan adapter, lavapipe included, in
//! f32 and (where the adapter has SHADER_F64) f64.
//!
//! Skipped only by the explicit switch `NEQKIN_SKIP_GPU_TESTS=1`; without an adapter the
//! test fails rather than passing with nothing run.

use neqkin::engine::model::BatchProblem;
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams, KERNEL_SOURCE};
use serde_json::json;
use wgpu::util::DeviceExt;

fn preprocess(real: &str) -> String {
    let bindings =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/shared/rhs_bindings.wgsl")).unwrap();
    format!("alias Real = {real};\n{}", KERNEL_SOURCE.replace("//! import shared/rhs_bindings", &bindings))
}

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    f64: bool,
    name: String,
}

fn gpu() -> Gpu {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::all();
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .expect("no GPU adapter (set NEQKIN_SKIP_GPU_TESTS=1 to skip explicitly)");
    let f64 = adapter.features().contains(wgpu::Features::SHADER_F64);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("photoexcited test"),
        required_features: if f64 { wgpu::Features::SHADER_F64 } else { wgpu::Features::empty() },
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    Gpu { device, queue, f64, name: adapter.get_info().name }
}

/// One dispatch of the kernel; returns dy as f64.
fn run(g: &Gpu, real: &str, b: &PhotoexcitedBatch, t: &[f64], y: &[f64]) -> Vec<f64> {
    let l = b.layout();
    let enc = |v: &[f64]| -> Vec<u8> {
        if real == "f64" {
            bytemuck::cast_slice(v).to_vec()
        } else {
            let w: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            bytemuck::cast_slice(&w).to_vec()
        }
    };
    let d = &g.device;
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("photoexcited/collision"),
        source: wgpu::ShaderSource::Wgsl(preprocess(real).into()),
    });
    let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("rhs"),
        layout: None,
        module: &module,
        entry_point: Some("rhs"),
        compilation_options: Default::default(),
        cache: None,
    });
    let dims: [u32; 8] = [
        l.batch as u32,
        l.state_len as u32,
        l.params_len as u32,
        l.table_len as u32,
        l.table_stride as u32,
        l.scratch_len as u32,
        0,
        0,
    ];
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let mk = |label: &str, bytes: &[u8], usage| {
        d.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: bytes, usage })
    };
    let dims_buf = mk("dims", bytemuck::cast_slice(&dims), wgpu::BufferUsages::UNIFORM);
    let params = mk("params", &enc(b.params()), storage);
    let tables = mk("tables", &enc(b.tables()), storage);
    let scalars = mk("scalars", &enc(t), storage);
    let yb = mk("y", &enc(y), storage);
    let dy = mk("dy", &enc(&vec![0.0; y.len()]), storage);
    let scratch = mk("scratch", &enc(&vec![0.0; l.batch * l.scratch_len]), storage);
    let size = (y.len() * if real == "f64" { 8 } else { 4 }) as u64;
    let readback = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let layout = pipeline.get_bind_group_layout(0);
    let entries: Vec<wgpu::BindGroupEntry> = [&dims_buf, &params, &tables, &scalars, &yb, &dy, &scratch]
        .iter()
        .enumerate()
        .map(|(i, buf)| wgpu::BindGroupEntry { binding: i as u32, resource: buf.as_entire_binding() })
        .collect();
    let bind =
        d.create_bind_group(&wgpu::BindGroupDescriptor { label: Some("rhs"), layout: &layout, entries: &entries });
    let mut encoder = d.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(l.batch as u32, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&dy, 0, &readback, 0, size);
    g.queue.submit([encoder.finish()]);
    readback.slice(..).map_async(wgpu::MapMode::Read, |r| r.unwrap());
    d.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let view = readback.slice(..).get_mapped_range().unwrap();
    if real == "f64" {
        bytemuck::cast_slice::<u8, f64>(&view).to_vec()
    } else {
        bytemuck::cast_slice::<u8, f32>(&view).iter().map(|&x| x as f64).collect()
    }
}

fn batch(points: &[serde_json::Value]) -> PhotoexcitedBatch {
    let p: Vec<PhotoexcitedParams> = points.iter().map(|v| PhotoexcitedParams::from_json(v).unwrap()).collect();
    PhotoexcitedBatch::new(&p).unwrap()
}

#[test]
fn kernel_matches_cpu_twin() {
    if std::env::var("NEQKIN_SKIP_GPU_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("GPU test skipped by NEQKIN_SKIP_GPU_TESTS=1");
        return;
    }
    let g = gpu();
    // N = 300 > WG exercises the grid-strided loops; members differ in every per-member
    // parameter; the second batch has per-member tables (table_stride = table_len).
    let shared = batch(&[
        json!({"grid_points": 300, "phonon_frequency": 0.3711, "zeta_initial": 3.0, "pump_strength": 5.0, "phonon_lifetime": 4.0}),
        json!({"grid_points": 300, "phonon_frequency": 0.52, "zeta": 20.0, "inelastic_rate": 0.1, "electric_field": 0.05, "temperature": 0.02}),
        json!({"grid_points": 300, "phonon_frequency": 0.36, "phonon_width": 0.01, "zeta": 5.0, "self_consistent_field": true}),
    ]);
    let separate = batch(&[
        json!({"grid_points": 300, "dos": "one_dimensional", "transport": "impurity", "phonon_frequency": 0.25, "zeta": 20.0, "inelastic_rate": 0.05}),
        json!({"grid_points": 300, "phonon_frequency": 0.45, "zeta": 2.0, "filling": 0.3, "self_consistent_field": true, "inelastic_rate": 0.02}),
    ]);
    assert_eq!(shared.layout().table_stride, 0);
    assert_eq!(separate.layout().table_stride, separate.layout().table_len);
    let reals: &[&str] = if g.f64 { &["f32", "f64"] } else { &["f32"] };
    eprintln!("adapter: {} (SHADER_F64: {})", g.name, g.f64);
    for b in [&shared, &separate] {
        let l = b.layout();
        // A non-equilibrium state: initial f with a deterministic wiggle, E*² > 0.
        let mut y = b.initial_state();
        for m in 0..l.batch {
            let s = &mut y[m * l.state_len..(m + 1) * l.state_len];
            let n = l.state_len - 3;
            for (i, f) in s[..n].iter_mut().enumerate() {
                *f = (*f + 0.2 * (0.37 * i as f64).sin()).clamp(0.01, 0.99);
            }
            s[n + 2] = 0.01;
        }
        let t: Vec<f64> = (0..l.batch).map(|m| 0.5 + m as f64).collect();
        let mut cpu = vec![0.0; y.len()];
        for (m, &tm) in t.iter().enumerate() {
            let mut scratch = vec![0.0; l.scratch_len];
            let r = m * l.state_len..(m + 1) * l.state_len;
            b.rhs_member(m, b.member_params(m), b.member_tables(m), tm, &y[r.clone()], &mut cpu[r], &mut scratch);
        }
        for real in reals {
            let gpu = run(&g, real, b, &t, &y);
            for m in 0..l.batch {
                let r = m * l.state_len..(m + 1) * l.state_len;
                let scale = cpu[r.clone()].iter().fold(0.0f64, |a, x| a.max(x.abs()));
                let err = cpu[r.clone()].iter().zip(&gpu[r]).fold(0.0f64, |a, (c, g)| a.max((c - g).abs()));
                let tol = if *real == "f64" { 1e-12 } else { 2e-4 };
                eprintln!(
                    "{real} member {m}: max |dy| = {scale:.3e}, max |gpu - cpu| / max |dy| = {:.2e}",
                    err / scale
                );
                assert!(err <= tol * scale, "{real} member {m}: {err:e} vs scale {scale:e}");
            }
        }
    }
}

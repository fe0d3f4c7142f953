//! Every shader under `shaders/` is preprocessed for f32 and f64 and validated with naga,
//! so a broken kernel fails `cargo test` on any machine, with or without a GPU. Also
//! checks that the embedded shader table matches the files on disk and that every Rust
//! uniform block has the size naga reflects for its WGSL twin.

use std::path::{Path, PathBuf};

use neqkin::engine::backend::Precision;
use neqkin::engine::gpu::preprocess::{preprocess, SHADERS};
use neqkin::engine::gpu::uniforms::LAYOUTS;

const PRECISIONS: [Precision; 2] = [Precision::F32, Precision::F64];

fn shaders_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders")
}

/// Every `.wgsl` file under `dir`, recursively, as paths relative to `shaders/`.
fn wgsl_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            wgsl_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            let rel = path.strip_prefix(shaders_dir()).expect("under shaders/");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn capabilities(precision: Precision) -> naga::valid::Capabilities {
    match precision {
        Precision::F32 => naga::valid::Capabilities::empty(),
        Precision::F64 => naga::valid::Capabilities::FLOAT64,
    }
}

/// Parses and validates preprocessed source, panicking with naga's report.
fn validate(name: &str, source: &str, precision: Precision) -> naga::Module {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name} ({precision}) does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(precision))
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} ({precision}) is invalid:\n{}", e.emit_to_string(source)));
    module
}

#[test]
fn every_shader_validates_in_f32_and_f64() {
    let mut files = Vec::new();
    wgsl_files(&shaders_dir(), &mut files);
    files.sort();
    let mut validated = 0;
    for file in &files {
        if file.starts_with("shared/") {
            continue; // include-only
        }
        let text = std::fs::read_to_string(shaders_dir().join(file)).expect("readable shader");
        for precision in PRECISIONS {
            let source = preprocess(file, &text, precision).unwrap_or_else(|e| panic!("{file}: {e}"));
            let module = validate(file, &source, precision);
            if module.entry_points.is_empty() {
                continue;
            }
            validated += 1;
        }
        println!("validated {file} (f32, f64)");
    }
    assert!(validated >= 4, "expected at least ops.wgsl and copy.wgsl in both precisions, validated {validated}");
}

#[test]
fn embedded_table_matches_files_on_disk() {
    // The engine embeds only its own kernels and the shared include files; models embed
    // their kernels themselves and hand them over as `KernelSource` (the engine knows no
    // model). Model shaders are validated from disk by the test above.
    let mut files = Vec::new();
    wgsl_files(&shaders_dir(), &mut files);
    files.retain(|f| f.starts_with("engine/") || f.starts_with("shared/"));
    for file in &files {
        let embedded = SHADERS.iter().find(|(p, _)| p == file).map(|(_, s)| *s);
        let disk = std::fs::read_to_string(shaders_dir().join(file)).expect("readable shader");
        assert_eq!(embedded, Some(disk.as_str()), "shaders/{file} is missing from preprocess::SHADERS or differs");
    }
    assert_eq!(files.len(), SHADERS.len(), "SHADERS lists files that are not on disk");
}

#[test]
fn uniform_blocks_match_wgsl_sizes() {
    for &(file, name, rust_size) in LAYOUTS {
        let text = SHADERS.iter().find(|(p, _)| *p == file).map(|(_, s)| *s).expect("embedded shader");
        for precision in PRECISIONS {
            let source = preprocess(file, text, precision).expect("preprocess");
            let module = naga::front::wgsl::parse_str(&source).expect("parses");
            let (_, ty) = module
                .types
                .iter()
                .find(|(_, t)| t.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("struct {name} not found in {file}"));
            let wgsl_size = ty.inner.size(module.to_ctx()) as usize;
            assert_eq!(wgsl_size, rust_size, "{name}: WGSL {wgsl_size} bytes ({precision}) vs Rust {rust_size} bytes");
        }
    }
}

/// Every model kernel that carries `//! layout: splittable` validates with the split entry
/// points appended (`rhs_split`, `rhs_finish`: src/engine/gpu/layout.rs) at 3 workgroups per
/// member and 16 threads, so a model that declares the capability without `rhs_cells` and
/// `rhs_totals` of the right shape fails here, on any machine.
#[test]
fn splittable_kernels_validate_with_the_split_entry_points() {
    use neqkin::engine::gpu::layout::{splittable, SPLIT_RHS_ENTRIES};
    use neqkin::engine::gpu::preprocess::{with_member_layout, with_workgroups_per_member};
    let mut files = Vec::new();
    wgsl_files(&shaders_dir(), &mut files);
    files.sort();
    let mut split = vec![];
    for file in files.iter().filter(|f| !f.starts_with("shared/") && !f.starts_with("engine/")) {
        let text = std::fs::read_to_string(shaders_dir().join(file)).expect("readable shader");
        if !splittable(&text) {
            continue;
        }
        for precision in PRECISIONS {
            let source = preprocess(file, &format!("{text}{SPLIT_RHS_ENTRIES}"), precision).expect("preprocess");
            let source = with_member_layout(file, &source, 16, 1).expect("WG line");
            let source = with_workgroups_per_member(file, &source, 3).expect("WPM line");
            let module = validate(file, &source, precision);
            for entry in ["rhs_split", "rhs_finish"] {
                assert!(module.entry_points.iter().any(|e| e.name == entry), "{file}: no {entry}");
            }
        }
        split.push(file.clone());
    }
    assert_eq!(split, ["photoexcited/collision.wgsl", "relaxation/rhs.wgsl"], "the splittable kernels");
}

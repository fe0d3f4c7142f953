//! The library's error type. Every user-facing failure names the field or the point it
//! concerns; `anyhow` is used only in `main`.
use thiserror::Error;

/// Result alias used across the library.
pub type Result<T, E = NeqkinError> = std::result::Result<T, E>;

/// Errors reported by neqkin.
#[derive(Debug, Error)]
pub enum NeqkinError {
    /// A configuration value is missing, malformed or out of its physical range.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidParameter {
        /// Dotted path of the offending field, e.g. `model.temperature`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration file could not be parsed.
    #[error("cannot parse config {path}: {reason}")]
    ConfigParse {
        /// File that failed.
        path: String,
        /// Parser message (it names the key or line).
        reason: String,
    },
    /// No GPU adapter was found although the GPU backend was requested.
    #[error("no GPU adapter found (try --backend cpu): {0}")]
    NoAdapter(String),
    /// The GPU rejected a shader, a pipeline or a buffer.
    #[error("GPU error in {context}: {message}")]
    Gpu {
        /// What was being done.
        context: String,
        /// The driver's or wgpu's message.
        message: String,
    },
    /// An integrator gave up on a member.
    #[error("step size too small at t = {t:.6e} (h = {h:.3e})")]
    StepSizeTooSmall {
        /// Time reached.
        t: f64,
        /// Last attempted step.
        h: f64,
    },
    /// Input/output failure with the path involved.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or folder.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Unknown model name in a config.
    #[error("unknown model `{0}` (known: {1})")]
    UnknownModel(String, String),
    /// A model or backend panicked while running a batch (caught by the scheduler).
    #[error("batch panicked: {0}")]
    Panic(String),
    /// The run would not fit its limits (memory per batch, points, output size); the
    /// message carries the estimate and the option that raises the cap.
    #[error("run refused before it started: {0}")]
    TooLarge(String),
    /// A broken invariant inside neqkin (a bug, not a bad input), e.g. one model's parsed
    /// parameters handed to another.
    #[error("internal error (a bug in neqkin): {0}")]
    Internal(String),
    /// An output folder cannot be used as asked (not empty, written by another config,
    /// shards that do not belong together, damaged files).
    #[error("output folder {path}: {reason}")]
    Output {
        /// Folder or file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl NeqkinError {
    /// Shorthand for [`NeqkinError::InvalidParameter`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        NeqkinError::InvalidParameter { field: field.into(), reason: reason.into() }
    }
    /// Shorthand for [`NeqkinError::Output`].
    pub fn output(path: impl AsRef<std::path::Path>, reason: impl Into<String>) -> Self {
        NeqkinError::Output { path: path.as_ref().display().to_string(), reason: reason.into() }
    }
    /// True for errors in the user's input (config, parameters, model name): the CLI
    /// exits with its usage code for these.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            NeqkinError::InvalidParameter { .. }
                | NeqkinError::ConfigParse { .. }
                | NeqkinError::UnknownModel(..)
                | NeqkinError::TooLarge(..)
        )
    }
    /// Shorthand for [`NeqkinError::Io`].
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        NeqkinError::Io { path: path.as_ref().display().to_string(), source }
    }
}

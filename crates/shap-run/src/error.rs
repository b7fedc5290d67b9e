//! The one error type of the run crate: what a run refuses, in words, and the libraries'
//! errors with what was being done when they happened.

use std::fmt::Display;

/// What went wrong in a run. Every variant keeps its cause ([`std::error::Error::source`]),
/// so a front end can print the whole chain (`anyhow`'s `{:#}`) or match on the kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request the run refuses before (or instead of) doing the work: the message says why
    /// and what to do.
    #[error("{0}")]
    Refused(String),
    /// Reading or writing a file failed.
    #[error("{what}")]
    File {
        /// What was being done, naming the file.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A library failed; `context` says what the run was doing.
    #[error("{context}")]
    Context {
        /// What the run was doing.
        context: String,
        /// The failure.
        #[source]
        source: Box<Error>,
    },
    /// From the explainers, the maskers' trees, or the memory plan.
    #[error(transparent)]
    Explain(Box<shap_explain::ExplainError>),
    /// From a model call.
    #[error(transparent)]
    ModelCall(Box<shap_explain::ModelError>),
    /// From an ONNX engine.
    #[error(transparent)]
    Onnx(Box<shap_onnx::OnnxError>),
    /// From the tutorial CNN.
    #[error(transparent)]
    Model(Box<shap_model::Error>),
    /// From the dataset or an image file.
    #[error(transparent)]
    Data(Box<shap_data::DataError>),
    /// From the output and array files.
    #[error(transparent)]
    Io(Box<shap_io::IoError>),
    /// An array's header in an explanation file.
    #[error(transparent)]
    Npy(Box<shap_io::npy::HeaderError>),
    /// From a masker.
    #[error(transparent)]
    Mask(Box<shap_mask::MaskError>),
    /// From Candle, building the tutorial CNN from an ONNX graph's weights.
    #[error(transparent)]
    Candle(Box<candle_core::Error>),
    /// The thread pool could not be started.
    #[error("cannot start {count} threads")]
    Threads {
        /// The threads asked for.
        count: usize,
        /// rayon's error.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// A journal manifest could not be encoded or decoded.
    #[error(transparent)]
    Json(Box<serde_json::Error>),
}

impl Error {
    /// The failure under any [`Error::Context`]: what actually went wrong.
    pub fn root(&self) -> &Error {
        match self {
            Self::Context { source, .. } => source.root(),
            other => other,
        }
    }
}

/// `From` for a library's error, boxed so that a run's `Result` stays small.
macro_rules! boxed_from {
    ($variant:ident, $ty:ty) => {
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Self::$variant(Box::new(e))
            }
        }
    };
}
boxed_from!(Explain, shap_explain::ExplainError);
boxed_from!(ModelCall, shap_explain::ModelError);
boxed_from!(Onnx, shap_onnx::OnnxError);
boxed_from!(Model, shap_model::Error);
boxed_from!(Data, shap_data::DataError);
boxed_from!(Io, shap_io::IoError);
boxed_from!(Npy, shap_io::npy::HeaderError);
boxed_from!(Mask, shap_mask::MaskError);
boxed_from!(Candle, candle_core::Error);
boxed_from!(Json, serde_json::Error);

/// The run crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `refuse!("...")`: return [`Error::Refused`] with a formatted message.
macro_rules! refuse {
    ($($t:tt)*) => {
        return Err($crate::Error::Refused(format!($($t)*)))
    };
}
pub(crate) use refuse;

/// Context for a failure, as `anyhow::Context` gives it, keeping the failure as the source.
pub trait Context<T> {
    /// Say what was being done when it failed.
    fn context(self, context: impl Display) -> Result<T>;
    /// [`Context::context`] with the words made only on failure.
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.to_string(),
            source: Box::new(e.into()),
        })
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context().to_string(),
            source: Box::new(e.into()),
        })
    }
}

/// A system error on a file, with what was being done.
pub(crate) trait FileContext<T> {
    /// Say what was being done, naming the file.
    fn file_context<C: Display>(self, what: impl FnOnce() -> C) -> Result<T>;
}

impl<T> FileContext<T> for std::io::Result<T> {
    fn file_context<C: Display>(self, what: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|source| Error::File {
            what: what().to_string(),
            source,
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T> {
        self.ok_or_else(|| Error::Refused(context.to_string()))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| Error::Refused(context().to_string()))
    }
}

/// An error and its causes on one line, `outer: inner: innermost`, as `anyhow` prints `{:#}`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

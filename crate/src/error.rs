//! The core's one error type. `User`: input the user can fix (config values, a checkpoint's state
//! or tensors, data or pattern shapes and values). `Internal`: a broken invariant, i.e. a bug in
//! the program calling the core (e.g. a gradient of the wrong length from a pool of workers).
//! The wasm layer throws them as JavaScript `Error`s named "UserError" / "InternalError".

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreError {
    User(String),
    Internal(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn user(message: impl Into<String>) -> CoreError {
        CoreError::User(message.into())
    }

    pub fn internal(message: impl Into<String>) -> CoreError {
        CoreError::Internal(message.into())
    }

    /// The one-line message, without a class prefix.
    pub fn message(&self) -> &str {
        match self {
            CoreError::User(message) | CoreError::Internal(message) => message,
        }
    }

    pub fn is_user(&self) -> bool {
        matches!(self, CoreError::User(_))
    }

    /// The JavaScript `Error.name` the wasm layer gives it.
    pub fn js_name(&self) -> &'static str {
        match self {
            CoreError::User(_) => "UserError",
            CoreError::Internal(_) => "InternalError",
        }
    }

    /// The same error with `context: ` before its message (same class).
    pub fn context(self, context: &str) -> CoreError {
        match self {
            CoreError::User(message) => CoreError::User(format!("{context}: {message}")),
            CoreError::Internal(message) => CoreError::Internal(format!("{context}: {message}")),
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CoreError {}

/// A user error from a JSON document built from the user's input (config, checkpoint state):
/// serde's message (it names the field) without its " at line L column C" suffix, a position in
/// JSON the program generated, not in the user's file.
pub fn json_error(what: &str, error: &serde_json::Error) -> CoreError {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    CoreError::User(format!("{what}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_bare_message_and_the_class_names_the_js_error() {
        let user = CoreError::user("length must be in 1..=4096, got 0");
        assert_eq!(user.to_string(), "length must be in 1..=4096, got 0");
        assert_eq!((user.js_name(), user.is_user()), ("UserError", true));
        let internal = CoreError::internal("expected a gradient of 3 values, got 2");
        assert_eq!(internal.to_string(), "expected a gradient of 3 values, got 2");
        assert_eq!((internal.js_name(), internal.is_user()), ("InternalError", false));
        assert_eq!(internal.context("optimiser step"), CoreError::internal("optimiser step: expected a gradient of 3 values, got 2"));
    }

    #[test]
    fn json_errors_name_the_field_on_one_line() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Two {
            a: u32,
            b: u32,
        }
        let error = serde_json::from_str::<Two>(r#"{"a": 1}"#).unwrap_err();
        assert_eq!(json_error("invalid training config", &error), CoreError::user("invalid training config: missing field `b`"));
        let error = serde_json::from_str::<Two>("{\"a\": 1,\n \"b\": -1}").unwrap_err();
        let message = json_error("state", &error).to_string();
        assert!(message.starts_with("state: invalid value: integer `-1`") && !message.contains(" at line "), "{message}");
    }
}

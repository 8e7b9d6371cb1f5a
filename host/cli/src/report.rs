//! The one place a command's `--json` report leaves the command: printed on stdout as one line,
//! or, while [`capture`] runs a command on this thread (the Python package calls the commands in
//! process), kept and handed back as a value.

use std::cell::RefCell;

use keel::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;

thread_local! {
    /// The reports of the command running under [`capture`] on this thread, if one is.
    static CAPTURED: RefCell<Option<Vec<Value>>> = const { RefCell::new(None) };
}

/// Prints `report` as one line of JSON on stdout (fields in the order the type declares them),
/// or keeps it when a capture is active on this thread.
///
/// # Errors
/// `Error::InvalidInput` naming `--json` if the report cannot be serialised (a map with
/// non-string keys; no report of Keel's has one).
pub fn json<T: Serialize + ?Sized>(report: &T) -> Result<()> {
    let unserialisable = |e: serde_json::Error| Error::invalid("--json", "", e.to_string());
    let kept = CAPTURED.with(|c| -> Result<bool> {
        match c.borrow_mut().as_mut() {
            Some(reports) => {
                reports.push(serde_json::to_value(report).map_err(unserialisable)?);
                Ok(true)
            }
            None => Ok(false),
        }
    })?;
    if !kept {
        println!("{}", serde_json::to_string(report).map_err(unserialisable)?);
    }
    Ok(())
}

/// Runs `f` with the reports [`json`] is given on this thread kept instead of printed, and
/// returns `f`'s result with them: `Null` when none was given, the report when one was, and an
/// array of them when several were.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Value) {
    /// Ends the capture even if `f` unwinds, so a later command on this thread prints again.
    struct Reset(Option<Vec<Value>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            CAPTURED.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let previous = CAPTURED.with(|c| c.borrow_mut().replace(Vec::new()));
    let reset = Reset(previous);
    let result = f();
    let mut reports = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    drop(reset);
    let value = match reports.len() {
        0 => Value::Null,
        1 => reports.pop().unwrap_or(Value::Null),
        _ => Value::Array(reports),
    };
    (result, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_keeps_the_reports_and_ends_with_its_closure() {
        let (r, v) = capture(|| {
            json(&serde_json::json!({"a": 1})).unwrap();
            7
        });
        assert_eq!(r, 7);
        assert_eq!(v, serde_json::json!({"a": 1}));
        let ((), v) = capture(|| {
            json(&[1, 2]).unwrap();
            json(&"x").unwrap();
        });
        assert_eq!(v, serde_json::json!([[1, 2], "x"]));
        let ((), v) = capture(|| {});
        assert_eq!(v, Value::Null);
        assert!(CAPTURED.with(|c| c.borrow().is_none()));
        let unwound = std::panic::catch_unwind(|| capture(|| panic!("inside")));
        assert!(unwound.is_err());
        assert!(CAPTURED.with(|c| c.borrow().is_none()));
    }
}

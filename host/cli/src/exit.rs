//! How a command ends: its exit status, and its error as one line naming the flag or file
//! that caused it.

use keel::error::Error;

/// A command that did not succeed: its exit status (1 a run that failed on valid input or a check
/// that did not pass, 2 bad input) and its error line, without the `error: ` the command prints
/// before it (empty when the command already said why: a check that did not pass in its report,
/// a command given without its subcommand in the help it printed on stderr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliFailure {
    /// 1 or 2.
    pub exit_code: u8,
    /// One line naming the flag or file that caused the failure.
    pub message: String,
}

impl std::fmt::Display for CliFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.is_empty() {
            write!(f, "the check did not pass (exit status {})", self.exit_code)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for CliFailure {}

/// A command's result as its exit status and error line (`args`: the command line, to name the
/// flag that named a file): `Ok(true)` succeeds; `Ok(false)`, a check that did not pass, is 1;
/// an error is 2 if the input was bad, else 1.
pub fn outcome(result: Result<bool, Error>, args: &[String]) -> Result<(), CliFailure> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(CliFailure {
            exit_code: 1,
            message: String::new(),
        }),
        Err(e) => Err(CliFailure {
            exit_code: if e.is_input_error() { 2 } else { 1 },
            message: one_line(&message(&e, args)),
        }),
    }
}

/// `e` with any of the library's `settings` named `flag` (where a command's flag has another
/// name than the setting it sets).
pub fn renamed(e: Error, settings: &[&str], flag: &str) -> Error {
    match e {
        Error::InvalidInput {
            setting: s,
            value,
            reason,
        } if settings.contains(&s.as_str()) => Error::InvalidInput {
            setting: flag.to_string(),
            value,
            reason,
        },
        e => e,
    }
}

/// The flag that sets a library setting: `weight_decay` → `--weight-decay`; `steps/batch` →
/// `--steps/--batch`. A name that already is a flag, or is not a setting's name, stays.
pub fn flag(setting: &str) -> String {
    setting
        .split('/')
        .map(|s| {
            if s.starts_with("--") || !is_setting_name(s) {
                s.to_string()
            } else {
                format!("--{}", s.replace('_', "-"))
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_setting_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `text` with every setting written in backticks (`` `lr` ``) turned into its flag.
fn flags_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        let name = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..open]);
        if is_setting_name(name) {
            out.push_str(&flag(name));
        } else {
            out.push_str(&rest[open..open + len + 2]);
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The flag behind an engine argument, where one command-line flag sets it.
fn engine_flag(name: &str) -> &str {
    match name {
        "learning rate" => "--lr",
        "layer widths" => "--hidden",
        "maximum gradient norm" => "--clip",
        "weight decay" => "--weight-decay",
        "momentum" => "--momentum",
        "activation" => "--activation",
        other => other,
    }
}

/// An error as the command line `args` says it: settings named by their flags.
fn message(e: &Error, args: &[String]) -> String {
    match e {
        Error::InvalidInput {
            setting,
            value,
            reason,
        } => format!(
            "invalid value '{value}' for {}: {}",
            flag(setting),
            flags_in(reason)
        ),
        Error::Failed { what, hint } => match hint {
            Some(h) => format!("{what}; {}", flags_in(h)),
            None => what.clone(),
        },
        Error::Engine(e) if e.is_device_error() => format!("--device: {e}"),
        Error::Engine(keel_engine::Error::InvalidArgument {
            name,
            value,
            reason,
        }) => format!(
            "invalid value '{value}' for {}: {reason}",
            engine_flag(name)
        ),
        Error::Malformed { path, reason } => {
            format!(
                "{}{}: {}",
                file_flag(args, path),
                path.display(),
                flags_in(reason)
            )
        }
        Error::Io { path, source } => {
            format!("{}{}: {source}", file_flag(args, path), path.display())
        }
        Error::Write { path, source } => {
            format!(
                "writing {}{}: {source}",
                file_flag(args, path),
                path.display()
            )
        }
        e => e.to_string(),
    }
}

/// `"--flag "` for the flag of this command line that named `path` (`--data x.csv`,
/// `--data=x.csv`, or one entry of a comma-separated list), or nothing when no flag did (a
/// positional argument, or a file the command found by itself).
fn file_flag(args: &[String], path: &std::path::Path) -> String {
    flag_naming(args, path)
        .map(|f| format!("{f} "))
        .unwrap_or_default()
}

fn flag_naming(args: &[String], path: &std::path::Path) -> Option<String> {
    let named = |value: &str| value.split(',').any(|v| std::path::Path::new(v) == path);
    for (i, arg) in args.iter().enumerate() {
        if let Some((flag, value)) = arg.split_once('=') {
            if flag.starts_with("--") && named(value) {
                return Some(flag.to_string());
            }
        } else if i > 0 && named(arg) && args[i - 1].starts_with("--") {
            return Some(args[i - 1].clone());
        }
    }
    None
}

/// `text` on one line: line breaks become `; `, and runs of blanks one space.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_file_error_names_the_flag_that_named_the_file() {
        let args: Vec<String> = [
            "keel",
            "bayes",
            "compare",
            "--samples",
            "a.st,b.st",
            "--data=d.csv",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = std::path::Path::new;
        assert_eq!(flag_naming(&args, p("b.st")).as_deref(), Some("--samples"));
        assert_eq!(flag_naming(&args, p("d.csv")).as_deref(), Some("--data"));
        assert_eq!(flag_naming(&args, p("other.csv")), None);
        let positional: Vec<String> = ["keel", "firmware", "check", "fw.log"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(flag_naming(&positional, p("fw.log")), None);
    }

    use super::*;

    #[test]
    fn settings_become_flags() {
        assert_eq!(flag("weight_decay"), "--weight-decay");
        assert_eq!(flag("steps/batch/init"), "--steps/--batch/--init");
        assert_eq!(flag("--device"), "--device");
        assert_eq!(flag("training"), "--training");
        assert_eq!(flag("model file"), "model file");
        assert_eq!(
            flags_in("use a larger `dt` with `keel.config` and `n_test`"),
            "use a larger --dt with `keel.config` and --n-test"
        );
        let e = Error::failed("training diverged in epoch 3", "lower `lr` (0.1)");
        assert_eq!(
            message(&e, &[]),
            "training diverged in epoch 3; lower --lr (0.1)"
        );
        assert_eq!(one_line("a\n  b\n\nc"), "a; b; c");
    }
}

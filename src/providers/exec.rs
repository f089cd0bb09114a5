//! `Exec`: a command for portals that need custom logic. It runs with the
//! collection's timeout (killed past it), gets the account in the
//! environment (`SSP_IDENTIFIER`, `SSP_PASSWORD`: never on its command
//! line, where `ps` would show it) and prints the balance on stdout.
//! Exit status 0 and a number (comma decimals accepted): the balance;
//! another exit status: `cannot_proceed`; no number: `parsing_error`.

use std::process::Stdio;

use tokio::io::AsyncReadExt as _;

use super::{fail, parse_amount, Code, Collect, Provider, Session};

/// Longest stdout read: a number needs a few bytes.
const MAX_OUTPUT: u64 = 64 * 1024;

/// `Exec`.
#[derive(Debug)]
pub struct Exec;

impl Provider for Exec {
    fn name(&self) -> &'static str {
        "Exec"
    }

    fn default_base(&self) -> &'static str {
        ""
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let (program, args) = s
                .command
                .split_first()
                .ok_or_else(|| fail(Code::CannotProceed, "no command"))?;
            let mut child = tokio::process::Command::new(program)
                .args(args)
                .env("SSP_IDENTIFIER", &s.identifier)
                .env("SSP_PASSWORD", s.password.expose())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| fail(Code::ConnectionError, format!("cannot run {program}: {e}")))?;
            let mut out = Vec::new();
            let stdout = child.stdout.take().expect("piped");
            let run = async {
                stdout.take(MAX_OUTPUT).read_to_end(&mut out).await?;
                child.wait().await
            };
            let status = match tokio::time::timeout(s.timeout, run).await {
                Ok(Ok(st)) => st,
                Ok(Err(e)) => {
                    return Err(fail(Code::ConnectionError, format!("{program}: {e}")));
                }
                Err(_) => {
                    return Err(fail(
                        Code::NoAnswer,
                        format!("{program} did not finish within the timeout"),
                    ));
                }
            };
            if !status.success() {
                return Err(fail(
                    Code::CannotProceed,
                    format!("{program} exited with {status}"),
                ));
            }
            let text = String::from_utf8_lossy(&out);
            parse_amount(text.trim()).ok_or_else(|| {
                fail(
                    Code::ParsingError,
                    format!("{program} printed no number on stdout"),
                )
            })
        })
    }
}

//! `Exec`: a command for portals that need custom logic. It runs with the
//! collection's timeout (killed past it), gets the account in the
//! environment (`SSP_IDENTIFIER`, `SSP_PASSWORD`: never on its command
//! line, where `ps` would show it) and prints the balance on stdout.
//! Exit status 0 and a number (comma decimals accepted): the balance; or
//! exposition text whose unlabelled sample named like the balance family
//! (`ssp_balance 12.5`) is the balance, its other series exported with the
//! identifier's. Another exit status: `cannot_proceed`; no balance or
//! invalid text: `parsing_error`.

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
            if let Some(v) = parse_amount(text.trim()) {
                return Ok(v);
            }
            let (balance, extra) = split_exposition(&text, &s.metric_name)
                .map_err(|m| fail(Code::ParsingError, format!("{program}: {m}")))?;
            if !extra.trim().is_empty() {
                *s.extra.lock().unwrap_or_else(|e| e.into_inner()) = Some(extra);
            }
            Ok(balance)
        })
    }
}

/// Splits a command's exposition text into the balance (the unlabelled
/// sample `metric`) and the other families, which must be valid text.
pub fn split_exposition(text: &str, metric: &str) -> Result<(f64, String), String> {
    let mut balance = None;
    let mut rest = String::new();
    let help = format!("# HELP {metric} ");
    let typ = format!("# TYPE {metric} ");
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix(metric).and_then(|r| r.strip_prefix(' ')) {
            balance =
                Some(parse_amount(v).ok_or_else(|| format!("{metric} {v:?} is not a number"))?);
        } else if !t.starts_with(&help) && !t.starts_with(&typ) {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    let balance = balance.ok_or_else(|| {
        format!("printed neither a number nor an exposition with a `{metric}` sample")
    })?;
    crate::exposition::parse(&rest, &crate::exposition::ParseLimits::default())
        .map_err(|e| format!("invalid exposition text: {e}"))?;
    Ok((balance, rest))
}

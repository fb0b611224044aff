//! `shoal result JOB_ID`: a job's result from any node of the mesh (see
//! [`crate::result_lookup`]), with an exit code per answer (README).

use super::rows::short_id;
use super::{EXIT_USAGE, ResultArgs, client};
use crate::api::results::ResultAnswer;
use crate::client::ClientError;
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes of `shoal result` beyond 0 (done), 1 (failed) and 2 (usage).
pub const EXIT_UNKNOWN: u8 = 3;
pub const EXIT_EXPIRED: u8 = 4;
pub const EXIT_RUNNING: u8 = 5;

/// How often `--wait` asks again.
const WAIT_POLL: Duration = Duration::from_millis(500);

pub(super) async fn result(args: ResultArgs) -> anyhow::Result<ExitCode> {
    let client = client(&args.query)?;
    let id = match super::why::resolve(&client, &args.job).await? {
        Ok(id) => id,
        Err(message) if args.job.len() < 64 && !message.contains("not a job id") => {
            eprintln!(
                "error: {message}; give the whole id (64 hex digits, as `shoal submit` printed it) to look it up on the mesh"
            );
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let deadline = tokio::time::Instant::now() + args.timeout;
    let answer = loop {
        let answer = match client.lookup(&id).await {
            Ok(a) => a,
            Err(ClientError::Rejected(message)) => {
                eprintln!("error: {message}");
                return Ok(ExitCode::from(EXIT_USAGE));
            }
            Err(e) => return Err(e.into()),
        };
        let pending = matches!(answer.status.as_str(), "running" | "queued" | "unknown");
        if !(args.wait && pending) {
            break answer;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "error: job {} has no result after {}",
                short_id(&id),
                humantime::format_duration(args.timeout)
            );
            break answer;
        }
        tokio::time::sleep(WAIT_POLL).await;
    };
    report(&answer, &args)
}

/// Prints an answer and picks the exit code.
fn report(answer: &ResultAnswer, args: &ResultArgs) -> anyhow::Result<ExitCode> {
    let job = short_id(&answer.job);
    let output = match answer.status.as_str() {
        "done" => {
            use base64::Engine as _;
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(answer.output_b64.as_deref().unwrap_or_default())
                    .map_err(|e| anyhow::anyhow!("the node sent a malformed output: {e}"))?,
            )
        }
        _ => None,
    };
    if let (Some(bytes), Some(path)) = (&output, &args.output) {
        std::fs::write(path, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write the output to {}: {e}", path.display()))?;
    }
    if args.query.json {
        let mut out = serde_json::to_value(answer)?;
        if output.is_some() {
            out.as_object_mut().expect("an object").remove("output_b64");
        }
        match &output {
            Some(bytes) if args.output.is_none() => {
                println!("{}", super::submit::json_with_result(out, bytes));
            }
            _ => println!("{out}"),
        }
    }
    let code = match answer.status.as_str() {
        "done" => {
            if !args.query.json && args.output.is_none() {
                use std::io::Write as _;
                let bytes = output.unwrap_or_default();
                std::io::stdout().write_all(&super::submit::printed_output(&bytes))?;
            }
            0
        }
        "failed" => {
            say(
                args,
                format!(
                    "job {job} failed: {}",
                    answer.error.as_deref().unwrap_or("")
                ),
            );
            1
        }
        "expired" => {
            say(
                args,
                format!(
                    "job {job} finished, but its result expired: the nodes that kept it dropped it (past --result-retention or --result-budget); submit it again"
                ),
            );
            EXIT_EXPIRED
        }
        "running" => {
            say(
                args,
                format!(
                    "job {job} is still running: {}/{} tasks done, coordinated by {}; `shoal result --wait {}` waits for it",
                    answer.done.unwrap_or(0),
                    answer.total.unwrap_or(0),
                    answer.coordinator.as_deref().unwrap_or("?"),
                    answer.job
                ),
            );
            EXIT_RUNNING
        }
        "queued" => {
            say(
                args,
                format!(
                    "job {job} waits for room on this node (queued); `shoal result --wait` waits for it"
                ),
            );
            EXIT_RUNNING
        }
        "unreachable" => {
            say(
                args,
                format!(
                    "job {job} finished, but none of the nodes that keep its result ({}) could serve it: {}",
                    answer.holders.join(", "),
                    answer.error.as_deref().unwrap_or("")
                ),
            );
            1
        }
        _ => {
            say(
                args,
                format!(
                    "job {job} is unknown: no node of the mesh that answered runs it or keeps its result (check the id; a result kept only by nodes that are down cannot be found)"
                ),
            );
            EXIT_UNKNOWN
        }
    };
    Ok(ExitCode::from(code))
}

/// A message for the user (on stderr; with --json the JSON says it all).
fn say(args: &ResultArgs, message: String) {
    if !args.query.json {
        eprintln!("{message}");
    }
}

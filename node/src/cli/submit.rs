//! `shoal submit`: builds the request, sends it to the local node (or a temporary one that
//! joins the mesh), shows progress, and prints the result.

use super::progress;
use super::rows::short_id;
use super::{EXIT_USAGE, SubmitArgs, client};
use crate::api::jobs::Progress;
use crate::client::{Client, ClientError, Finished, Update};
use crate::job_request::{JobRequest, UsageError};
use crate::launch::{self, NodeOptions};
use std::process::ExitCode;
use std::time::Duration;

/// Builds the request from the command line, or says what is wrong with it.
fn parse_request(args: &SubmitArgs) -> Result<JobRequest, UsageError> {
    let mut request = parse_job(args)?
        .with_trust(args.replicas, args.verify_fraction)?
        .with_sched(args.priority, &args.needs)?
        .with_copies(copies(args))?;
    crate::input::walk::Excludes::new(&args.exclude)
        .map_err(|e| UsageError::Exclude(e.to_string()))?;
    request.exclude = args.exclude.clone();
    request.no_reuse = args.no_reuse;
    request.detach = args.detach;
    Ok(request)
}

/// The copies asked for: `--copies`, else 2 for a detached job and 1 otherwise.
fn copies(args: &SubmitArgs) -> u8 {
    args.copies.unwrap_or(if args.detach { 2 } else { 1 })
}

/// How long a `--join` peer listens for the mesh's nodes before it decides that the mesh is
/// too small for `--copies`.
const JOIN_VIEW_WAIT: Duration = Duration::from_secs(3);

/// Why `copies` copies cannot be had on the mesh `client`'s node sees (at most one per node,
/// this node included; strangers do not count), if they cannot.
async fn too_few_for_copies(client: &Client, copies: u8) -> anyhow::Result<Option<String>> {
    if copies <= 1 {
        return Ok(None);
    }
    let mesh = client.node_count().await?;
    Ok((usize::from(copies) > mesh).then(|| {
        format!(
            "--copies {copies} needs at least {copies} nodes in the mesh; this node sees {mesh} (itself included)"
        )
    }))
}

fn parse_job(args: &SubmitArgs) -> Result<JobRequest, UsageError> {
    let positional: Vec<String> = args.job.iter().chain(&args.args).cloned().collect();
    if let Some(module) = &args.wasm.wasm {
        let range = args.wasm.range.as_ref().map(|r| (r[0], r[1]));
        return JobRequest::wasm(
            module,
            &positional,
            range,
            args.wasm.limits(),
            args.fanin,
            args.chunk_size,
            args.tasks,
        );
    }
    let Some((job, rest)) = positional.split_first() else {
        return Err(UsageError::NoJob);
    };
    JobRequest::parse(job, rest, args.fanin, args.chunk_size, args.tasks)
}

pub(super) async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let request = match parse_request(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    if args.detach {
        return detach(&args, request).await;
    }
    // With --join, an ephemeral peer lives for the duration of this command.
    let mut ephemeral = None;
    let client = if args.join {
        let dir = tempfile::tempdir()?;
        let node = launch::launch(NodeOptions {
            listen: Vec::new(),
            bootstrap: args.net.bootstrap.clone(),
            mdns: !args.net.no_mdns,
            mesh_key: args.net.mesh_key()?,
            ..NodeOptions::loopback(dir.path().to_path_buf(), 0)
        })
        .await?;
        let client = node.client().expect("a node started with an API");
        wait_for_capacity(
            &client,
            args.timeout.min(Duration::from_secs(30)),
            args.query.json,
        )
        .await?;
        // The new peer hears the mesh's adverts over its first moments: a mesh too small for
        // the copies is only refused once it had a moment to hear them all.
        let copies = copies(&args);
        let deadline = tokio::time::Instant::now() + JOIN_VIEW_WAIT;
        while too_few_for_copies(&client, copies).await?.is_some()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(short) = too_few_for_copies(&client, copies).await? {
            eprintln!("error: {short}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        ephemeral = Some((node, dir));
        client
    } else {
        let client = client(&args.query)?;
        if let Some(short) = too_few_for_copies(&client, copies(&args)).await? {
            eprintln!("error: {short}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        client
    };
    let accepted = std::sync::Mutex::new(None);
    let outcome = tokio::time::timeout(
        args.timeout,
        run_submit(&client, request, args.query.json, &accepted),
    )
    .await;
    // Suspects by peer id too, as `shoal peers` names them (while the node is still up).
    let outcome = match outcome {
        Ok(Ok(mut done)) if !done.job.suspects.is_empty() => {
            if let Ok(peers) = client.peers().await {
                for s in &mut done.job.suspects {
                    s.peer_id = peers
                        .iter()
                        .find(|p| p.node_id == s.node_id)
                        .map(|p| p.peer_id.clone());
                }
            }
            Ok(Ok(done))
        }
        other => other,
    };
    let timed_out = match &outcome {
        Err(_) => Some(
            timeout_message(
                &client,
                accepted.lock().ok().and_then(|a| a.clone()),
                args.timeout,
            )
            .await,
        ),
        Ok(_) => None,
    };
    if let Some((node, _dir)) = ephemeral {
        node.handle.shutdown().await;
    }
    match outcome {
        Err(_) => {
            eprintln!("{}", timed_out.unwrap_or_default());
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(ClientError::Rejected(e))) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_USAGE))
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
        Ok(Ok(done)) => {
            print_result(&done, args.query.json, args.output.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `shoal submit --detach`: submits, waits until every piece of the input is held by
/// `--copies` live peers, prints the job's id and exits 0 (the job runs on without this node).
async fn detach(args: &SubmitArgs, request: JobRequest) -> anyhow::Result<ExitCode> {
    let client = client(&args.query)?;
    let copies = copies(args);
    if let Some(short) = too_few_for_copies(&client, copies).await? {
        eprintln!("error: {short}");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let accepted = match client.start(request).await {
        Ok(a) => a,
        Err(ClientError::Rejected(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Err(e) => return Err(e.into()),
    };
    let id = accepted.job.clone();
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        // A job that ended already (a small one) is held where it ended: nothing to wait for.
        let held = match client.job(&id).await {
            Ok(detail) if detail.job.status.starts_with("failed") => {
                eprintln!("error: job {} {}", short_id(&id), detail.job.status);
                return Ok(ExitCode::FAILURE);
            }
            Ok(detail) => {
                detail.job.copies_held >= u32::from(copies) || detail.job.status == "complete"
            }
            Err(ClientError::Rejected(_)) => true,
            Err(e) => return Err(e.into()),
        };
        if held {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "error: the input of job {} is not held by {copies} peers after {}; it still runs from this node (see `shoal why {}`)",
                short_id(&id),
                humantime::format_duration(args.timeout),
                short_id(&id)
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if args.query.json {
        let out = serde_json::json!({
            "job": id,
            "tasks": accepted.tasks,
            "copies": copies,
            "detached": true,
            "skipped": accepted.skipped,
        });
        println!("{out}");
    } else {
        println!("{id}");
        eprintln!(
            "job {}: its input is held by {copies} peers; `shoal result {id}` on any node gives its result",
            short_id(&id)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until some peer offers slots, so that a --join submission has somewhere to run.
async fn wait_for_capacity(client: &Client, limit: Duration, quiet: bool) -> anyhow::Result<()> {
    if !quiet {
        eprintln!("joining the mesh...");
    }
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let peers = client.peers().await?;
        if peers.iter().any(|p| !p.is_self && p.slots_total > 0) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "found no peer with free slots within {}; check that nodes run on this LAN, or pass --bootstrap <multiaddr>",
                humantime::format_duration(limit)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a submission that timed out says: why the job is not done, as its node sees it.
pub(super) async fn timeout_message(
    client: &Client,
    job: Option<String>,
    timeout: Duration,
) -> String {
    let after = humantime::format_duration(timeout);
    let Some(job) = job else {
        return format!("error: no result after {after}; the job was not accepted yet");
    };
    let why = match client.job(&job).await {
        Ok(detail) if !detail.why.is_empty() => detail.why.join("; "),
        Ok(_) => "it is still running".to_string(),
        Err(e) => format!("its state could not be read: {e}"),
    };
    format!(
        "error: job {} has no result after {after}: {why} (it may still finish: see `shoal jobs`)",
        short_id(&job)
    )
}

pub(super) async fn run_submit(
    client: &Client,
    request: JobRequest,
    json: bool,
    accepted: &std::sync::Mutex<Option<String>>,
) -> Result<Finished, ClientError> {
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} tasks  {msg}")
                .expect("valid template"),
        );
        bar
    };
    let started = std::time::Instant::now();
    let result = client
        .submit(request, |update| match update {
            Update::Accepted(a) => {
                if let Ok(mut slot) = accepted.lock() {
                    *slot = Some(a.job.clone());
                }
                let accepted = a;
                if !json {
                    bar.println(format!(
                        "job {}: {}",
                        short_id(&accepted.job),
                        client.dashboard_url(Some(&accepted.job))
                    ));
                }
            }
            Update::Progress(Progress {
                job,
                peers,
                waiting_for_capacity,
            }) => {
                bar.set_length(u64::from(job.total));
                bar.set_position(u64::from(job.done));
                bar.set_message(progress::message(
                    job,
                    *peers,
                    *waiting_for_capacity,
                    started.elapsed(),
                ));
            }
        })
        .await;
    bar.finish_and_clear();
    result
}

fn print_result(
    done: &Finished,
    json: bool,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if let Some(path) = output {
        std::fs::write(path, &done.output)
            .map_err(|e| anyhow::anyhow!("cannot write the output to {}: {e}", path.display()))?;
    }
    if json {
        println!("{}", submit_json(done, output.is_none()));
        return Ok(());
    }
    if output.is_none() {
        use std::io::Write as _;
        std::io::stdout().write_all(&printed(done))?;
    }
    eprintln!(
        "job {}: {} tasks ({} map, tree depth {}) on {} workers in {} ms",
        short_id(&done.job.id),
        done.job.total,
        done.job.maps,
        done.job.depth,
        done.job.workers,
        done.elapsed_ms
    );
    Ok(())
}

/// What `shoal submit --json` prints for a finished job; the output embedded as `result`
/// when `with_result` (JSON as JSON, anything else as base64, and says so).
pub(super) fn submit_json(done: &Finished, with_result: bool) -> String {
    let fields = serde_json::json!({
        "job": done.job.id,
        "tasks": done.job.total,
        "peers": done.job.workers,
        "spread": done.job.spread,
        "elapsed_ms": done.elapsed_ms,
        "skipped": done.skipped,
        "replicas": done.job.replicas,
        "suspects": done.job.suspects,
        "reused": done.job.reused,
        "bytes_moved": done.job.bytes_moved,
        "at_data": done.job.at_data,
        "alone": done.job.alone,
    });
    if with_result {
        json_with_result(fields, &done.output)
    } else {
        fields.to_string()
    }
}

/// The JSON object `fields` with the job's output as its `result` member: spliced in as it is
/// when it is JSON, checked without being built (a word count's object has a member per
/// distinct word, and building it into a value took a fifth of a big job's time in `--json`);
/// anything else in base64, with `"result_encoding": "base64"`.
pub(super) fn json_with_result(mut fields: serde_json::Value, output: &[u8]) -> String {
    let raw = output.trim_ascii();
    if serde_json::from_slice::<serde::de::IgnoredAny>(raw).is_ok() {
        // Valid JSON is valid UTF-8.
        return with_json_member(&fields, "result", &String::from_utf8_lossy(raw));
    }
    use base64::Engine as _;
    fields["result"] = base64::engine::general_purpose::STANDARD
        .encode(output)
        .into();
    fields["result_encoding"] = "base64".into();
    fields.to_string()
}

/// The JSON object `fields` with one more member, `name`, whose value is the JSON text `json`
/// (valid JSON, checked by the caller or written by this crate), spliced in as it is.
pub(super) fn with_json_member(fields: &serde_json::Value, name: &str, json: &str) -> String {
    let text = fields.to_string();
    // A JSON object's text ends with its closing brace.
    let open = text
        .strip_suffix('}')
        .expect("the fields are a JSON object");
    let comma = if open.ends_with('{') { "" } else { "," };
    format!("{open}{comma}{}:{json}}}", serde_json::Value::from(name))
}

/// The output as `shoal submit` prints it: a bare JSON string (sumsq's decimal) without
/// quotes, other JSON as it is, each with a final newline; anything else byte for byte.
pub(super) fn printed(done: &Finished) -> Vec<u8> {
    printed_output(&done.output)
}

/// [`printed`] for output bytes. Only a JSON string is parsed into a value: other output is
/// checked to be JSON without being built (a word count's object has a member per distinct
/// word, and building it took most of the time `submit` spent printing a big job's output).
pub(super) fn printed_output(output: &[u8]) -> Vec<u8> {
    if output.trim_ascii_start().first() == Some(&b'"')
        && let Ok(s) = serde_json::from_slice::<String>(output)
    {
        return format!("{s}\n").into_bytes();
    }
    let mut out = output.to_vec();
    if serde_json::from_slice::<serde::de::IgnoredAny>(output).is_ok() {
        // Valid JSON is valid UTF-8: printed as it is.
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{json_with_result, parse_request, printed_output};
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// The request `shoal submit ARGS...` would send.
    fn request(args: &[&str]) -> crate::job_request::JobRequest {
        let cli = Cli::try_parse_from([&["shoal", "submit"], args].concat()).expect("valid args");
        let Command::Submit(submit) = cli.command else {
            panic!("not a submit");
        };
        parse_request(&submit).expect("a valid request")
    }

    #[test]
    fn a_detached_submission_does_not_count_its_own_copy_and_a_waiting_one_does() {
        let keep = request(&["--detach", "pi", "1000"]).keep();
        assert!(keep.detached);
        assert_eq!(keep.copies, 2, "--detach keeps two copies by default");
        let keep = request(&["--copies", "2", "pi", "1000"]).keep();
        assert!(!keep.detached);
        assert_eq!(keep.copies, 2);
        assert_eq!(request(&["pi", "1000"]).keep().copies, 1);
    }

    #[test]
    fn a_json_string_loses_its_quotes_other_json_gains_a_newline_and_the_rest_is_left_alone() {
        assert_eq!(printed_output(b"\"12345\""), b"12345\n");
        assert_eq!(printed_output(b" \"a\\nb\""), b"a\nb\n");
        assert_eq!(printed_output(br#"{"a":1,"b":2}"#), b"{\"a\":1,\"b\":2}\n");
        assert_eq!(printed_output(b"[1,2]"), b"[1,2]\n");
        assert_eq!(printed_output(b"\"unterminated"), b"\"unterminated");
        assert_eq!(printed_output(b"{\"a\":1} trailing"), b"{\"a\":1} trailing");
        assert_eq!(printed_output(&[0xff, 0x00, 0x41]), [0xff, 0x00, 0x41]);
    }

    #[test]
    fn a_json_output_is_spliced_in_as_it_is_and_anything_else_goes_in_base64() {
        let fields = serde_json::json!({ "job": "j", "tasks": 3 });
        let words = br#"{"a":1,"b":2}"#;
        let text = json_with_result(fields.clone(), &[words.as_slice(), b"\n"].concat());
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["result"], serde_json::json!({ "a": 1, "b": 2 }));
        assert_eq!(
            (v["job"].as_str(), v["tasks"].as_u64()),
            (Some("j"), Some(3))
        );
        assert!(v.get("result_encoding").is_none());
        let empty = json_with_result(serde_json::json!({}), b"7");
        assert_eq!(empty, r#"{"result":7}"#);
        let binary = json_with_result(fields, &[0xff, b'{', 0]);
        let v: serde_json::Value = serde_json::from_str(&binary).expect("valid JSON");
        assert_eq!(v["result_encoding"], "base64");
        assert_eq!(v["result"], "/3sA");
    }
}

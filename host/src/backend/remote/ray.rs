//! The Ray Jobs REST API, as far as wmp uses it: submitting the job that
//! runs a node agent, its status, stopping it, and the cluster's nodes.
//!
//! A small blocking client of the HTTP API that the dashboard of a Ray head
//! serves (`ray start --head` with `ray[default]`; `--dashboard-port`, 8265
//! by default). The shapes are Ray 2.60's (`ray/dashboard/modules/job/`:
//! `common.py`, `job_head.py`, `sdk.py`; `ray/util/state/common.py`):
//!
//! - `POST /api/jobs/` `{"entrypoint", "entrypoint_resources"}` answers
//!   `{"job_id", "submission_id"}` (the two are the same; `job_id` is the
//!   deprecated name).
//! - `GET /api/jobs/{id}` answers the job's details, of which wmp reads
//!   `status`, `driver_exit_code`, `message` and `driver_node_id`.
//! - `POST /api/jobs/{id}/stop` answers `{"stopped": bool}` (false for a job
//!   that had already ended); `GET /api/jobs/{id}/logs` answers `{"logs"}`.
//! - The nodes come from Ray's state API, `GET /api/v0/nodes`, and not from
//!   the dashboard's `/nodes?view=summary`: the latter camel-cases every key
//!   it serves, resource names included (`node_b` comes back as `nodeB`).
//!
//! An error is plain text (a Python traceback when Ray failed inside), except
//! from the state API, which answers JSON with a `msg`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A connection may take this long to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The answer to a request may take this long to start: longer than the 10 s
/// that Ray's dashboard itself waits for its head's job agent on a submit or
/// stop, so that its own answer ("No available agent ...") arrives first.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// And its body this long to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (a job's logs come whole).
const BODY_LIMIT: u64 = 64 << 20;

/// A blocking client of the Ray Jobs REST API of one cluster.
pub(crate) struct RayJobs {
    /// The dashboard's URL, without a trailing `/`.
    base: String,
    agent: ureq::Agent,
}

/// Why a call to the Ray dashboard failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RayError {
    /// No HTTP answer: nothing listens there, or the connection failed or
    /// timed out.
    #[error("cannot reach the Ray dashboard ({method} {url}): {reason}")]
    Unreachable {
        method: &'static str,
        url: String,
        reason: String,
    },
    /// The dashboard answered with an error status.
    #[error("the Ray dashboard answered {method} {url} with HTTP {status}: {message}")]
    Http {
        method: &'static str,
        url: String,
        status: u16,
        /// The gist of the answer's body.
        message: String,
    },
    /// The dashboard answered, but not with what this client expects of it.
    #[error("the Ray dashboard's answer to {method} {url} is not {expected}: {reason}")]
    BadResponse {
        method: &'static str,
        url: String,
        expected: &'static str,
        reason: String,
    },
}

/// The status of a Ray job (Ray's `JobStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum JobStatus {
    /// Submitted, and waiting for its entrypoint to start (for instance for
    /// the resources it asked for).
    Pending,
    /// Its entrypoint runs.
    Running,
    /// Stopped by a stop request.
    Stopped,
    /// Its entrypoint exited 0.
    Succeeded,
    /// Its entrypoint exited non-zero, or could not start.
    Failed,
}

impl JobStatus {
    /// Whether the job has ended (stopped, succeeded or failed) and will not
    /// change again.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Stopped | JobStatus::Succeeded | JobStatus::Failed
        )
    }
}

/// What Ray tells of a job.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct JobInfo {
    /// Where the job is.
    pub(crate) status: JobStatus,
    /// The entrypoint's exit code once it has exited by itself; `None` before
    /// that, and for a stopped job (Ray sends SIGTERM, then SIGKILL after 3 s,
    /// and reports no code).
    pub(crate) driver_exit_code: Option<i32>,
    /// Ray's words on the status (for a failure, with the log's last lines).
    pub(crate) message: Option<String>,
    /// The hex id of the node that runs (or ran) the entrypoint, once placed.
    pub(crate) driver_node_id: Option<String>,
}

/// An alive node of the cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct RayNode {
    /// Its hex id, as in [`JobInfo::driver_node_id`].
    pub(crate) node_id: String,
    /// The address its raylet was started with (`--node-ip-address`).
    #[serde(rename = "node_ip")]
    pub(crate) ip: String,
    /// Whether it is the head node.
    #[serde(rename = "is_head_node")]
    pub(crate) is_head: bool,
    /// Its total resources, by Ray's names (`CPU`, `memory`, custom ones
    /// such as `node_b`, `node:<ip>`).
    #[serde(rename = "resources_total")]
    pub(crate) resources: BTreeMap<String, f64>,
}

impl RayJobs {
    /// A client of the dashboard at `dashboard_url` (such as
    /// `http://127.0.0.1:8265`); connects on the first call.
    pub(crate) fn new(dashboard_url: &str) -> RayJobs {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(ANSWER_TIMEOUT))
            .timeout_recv_body(Some(BODY_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        RayJobs {
            base: dashboard_url.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// Submits a job that runs `entrypoint` (a shell command) on a node that
    /// has `entrypoint_resources` free; returns its submission id.
    pub(crate) fn submit(
        &self,
        entrypoint: &str,
        entrypoint_resources: &BTreeMap<String, f64>,
    ) -> Result<String, RayError> {
        #[derive(Deserialize)]
        struct Submitted {
            submission_id: String,
        }
        let request = serde_json::json!({
            "entrypoint": entrypoint,
            "entrypoint_resources": entrypoint_resources,
        });
        let url = self.url("/api/jobs/");
        let sent = self.agent.post(&url).send_json(&request);
        let submitted: Submitted = answer(
            "POST",
            url,
            sent,
            r#"a submitted job (JSON with a "submission_id")"#,
        )?;
        Ok(submitted.submission_id)
    }

    /// The status of the job with submission id `id`.
    pub(crate) fn status(&self, id: &str) -> Result<JobInfo, RayError> {
        let url = self.url(&format!("/api/jobs/{id}"));
        let sent = self.agent.get(&url).call();
        answer(
            "GET",
            url,
            sent,
            r#"a job's details (JSON with a "status" of PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED)"#,
        )
    }

    /// Asks Ray to stop the job `id`; false if it had already ended. The job
    /// reaches [`JobStatus::Stopped`] a little later.
    pub(crate) fn stop(&self, id: &str) -> Result<bool, RayError> {
        #[derive(Deserialize)]
        struct Stop {
            stopped: bool,
        }
        let url = self.url(&format!("/api/jobs/{id}/stop"));
        let sent = self.agent.post(&url).send_empty();
        let stop: Stop = answer(
            "POST",
            url,
            sent,
            r#"a stop's outcome (JSON {"stopped": bool})"#,
        )?;
        Ok(stop.stopped)
    }

    /// All that the job `id` has written to its stdout and stderr so far,
    /// after the lines Ray writes there itself.
    pub(crate) fn logs(&self, id: &str) -> Result<String, RayError> {
        #[derive(Deserialize)]
        struct Logs {
            logs: String,
        }
        let url = self.url(&format!("/api/jobs/{id}/logs"));
        let sent = self.agent.get(&url).call();
        let logs: Logs = answer("GET", url, sent, r#"a job's logs (JSON {"logs": string})"#)?;
        Ok(logs.logs)
    }

    /// The alive nodes of the cluster.
    pub(crate) fn alive_nodes(&self) -> Result<Vec<RayNode>, RayError> {
        // {"result": true, "msg": "", "data": {"result": {"total": 2, ...,
        // "result": [node, ...]}}}, filtered by Ray; 10000 is the most it
        // lists.
        #[derive(Deserialize)]
        struct Reply {
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            result: List,
        }
        #[derive(Deserialize)]
        struct List {
            result: Vec<RayNode>,
        }
        let url = self.url(
            "/api/v0/nodes?limit=10000&filter_keys=state&filter_predicates=%3D&filter_values=ALIVE",
        );
        let sent = self.agent.get(&url).call();
        let reply: Reply = answer(
            "GET",
            url,
            sent,
            r#"a list of nodes (JSON {"data": {"result": {"result": [{"node_id", "node_ip", "is_head_node", "resources_total", ...}]}}})"#,
        )?;
        Ok(reply.data.result.result)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Reads the answer to `method url` as a `T` (JSON), or says why not.
fn answer<T: DeserializeOwned>(
    method: &'static str,
    url: String,
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    expected: &'static str,
) -> Result<T, RayError> {
    let unreachable = |url: &str, reason: String| RayError::Unreachable {
        method,
        url: url.to_owned(),
        reason,
    };
    let mut response = sent.map_err(|e| unreachable(&url, e.to_string()))?;
    let status = response.status();
    tracing::debug!(method, url, status = status.as_u16(), "ray dashboard");
    let body = response
        .body_mut()
        .with_config()
        .limit(BODY_LIMIT)
        .read_to_string()
        .map_err(|e| unreachable(&url, format!("reading its answer: {e}")))?;
    if !status.is_success() {
        return Err(RayError::Http {
            method,
            url,
            status: status.as_u16(),
            message: gist(&body),
        });
    }
    serde_json::from_str(&body).map_err(|e| RayError::BadResponse {
        method,
        url,
        expected,
        reason: format!("{e}, in {:?}", cut(&body, 200)),
    })
}

/// What an error answer says, in a line: the `msg` of a JSON answer, the last
/// exception of a Python traceback (`ValueError: Job with submission_id ...
/// already exists ...`), or else the text itself.
fn gist(body: &str) -> String {
    if let Ok(serde_json::Value::Object(reply)) = serde_json::from_str(body)
        && let Some(serde_json::Value::String(msg)) = reply.get("msg")
        && !msg.is_empty()
    {
        return msg.clone();
    }
    // `ValueError: ...`, `aiohttp.client_exceptions.InvalidUrlClientError: ...`
    let is_exception = |line: &&str| {
        line.split_once(':').is_some_and(|(name, _)| {
            !name.is_empty()
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
    };
    let last_exception = body
        .contains("Traceback (most recent call last):")
        .then(|| body.lines().rev().find(is_exception))
        .flatten();
    let text = match last_exception {
        Some(line) => line.trim().to_owned(),
        None => body.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    if text.is_empty() {
        "(no message)".to_owned()
    } else {
        cut(&text, 1000)
    }
}

/// `text` cut to at most `max` characters, with `…` where it was cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The dashboard of the cluster that scripts/ray-cluster.sh started, or
    /// `None` (and a line saying the test is skipped).
    fn dashboard() -> Option<RayJobs> {
        match std::env::var("WMP_RAY_DASHBOARD") {
            Ok(url) if !url.is_empty() => Some(RayJobs::new(&url)),
            _ => {
                println!(
                    "skipped: WMP_RAY_DASHBOARD is not set (run under scripts/ray-cluster.sh)"
                );
                None
            }
        }
    }

    /// Polls the job `id` until `done` holds of it (60 s at most).
    fn poll(jobs: &RayJobs, id: &str, done: impl Fn(&JobInfo) -> bool) -> JobInfo {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info = jobs.status(id).unwrap();
            if done(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still {info:?} after 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn node_b(jobs: &RayJobs) -> RayNode {
        let nodes = jobs.alive_nodes().unwrap();
        nodes
            .into_iter()
            .find(|n| n.resources.contains_key("node_b"))
            .expect("a node with the resource node_b")
    }

    #[test]
    fn alive_nodes_are_the_head_and_node_b() {
        let Some(jobs) = dashboard() else { return };
        let nodes = jobs.alive_nodes().unwrap();
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        let heads: Vec<_> = nodes.iter().filter(|n| n.is_head).collect();
        assert_eq!(heads.len(), 1, "{nodes:?}");
        let b = node_b(&jobs);
        assert!(!b.is_head, "{b:?}");
        assert_eq!(b.resources.get("node_b"), Some(&1.0), "{b:?}");
        assert_eq!(b.resources.get("CPU"), Some(&1.0), "{b:?}");
        assert_ne!(heads[0].node_id, b.node_id);
        for node in &nodes {
            assert_eq!(node.ip, "127.0.0.1", "{node:?}");
            assert_eq!(node.node_id.len(), 56, "a hex id of 28 bytes: {node:?}");
        }
    }

    #[test]
    fn a_job_pinned_to_node_b_fails_with_its_exit_code() {
        let Some(jobs) = dashboard() else { return };
        let b = node_b(&jobs);
        let resources = BTreeMap::from([("node_b".to_owned(), 1.0)]);
        let id = jobs.submit(r#"sh -c "exit 3""#, &resources).unwrap();
        let info = poll(&jobs, &id, |info| info.status.is_terminal());
        assert_eq!(info.status, JobStatus::Failed, "{info:?}");
        assert_eq!(info.driver_exit_code, Some(3), "{info:?}");
        assert_eq!(
            info.driver_node_id.as_deref(),
            Some(b.node_id.as_str()),
            "{info:?}"
        );
        assert!(
            info.message
                .as_deref()
                .unwrap_or("")
                .contains("exit code 3"),
            "{info:?}"
        );
        // Ray's own line in the log, served by node b's agent.
        let logs = jobs.logs(&id).unwrap();
        assert!(
            logs.contains(&format!("Running entrypoint for job {id}")),
            "{logs:?}"
        );
    }

    #[test]
    fn a_stopped_job_is_stopped_and_has_no_exit_code() {
        let Some(jobs) = dashboard() else { return };
        let id = jobs.submit("sleep 60", &BTreeMap::new()).unwrap();
        let running = poll(&jobs, &id, |info| info.status != JobStatus::Pending);
        assert_eq!(running.status, JobStatus::Running, "{running:?}");
        assert!(jobs.stop(&id).unwrap());
        let info = poll(&jobs, &id, |info| info.status.is_terminal());
        assert_eq!(info.status, JobStatus::Stopped, "{info:?}");
        // Ray reports no code for what it killed: wmp tells -15/-9 itself.
        assert_eq!(info.driver_exit_code, None, "{info:?}");
        // A second stop is harmless (Ray may still answer true while the
        // job's supervisor winds down, so only that it is no error).
        jobs.stop(&id).unwrap();
    }

    #[test]
    fn an_unknown_job_is_an_http_error_that_says_so() {
        let Some(jobs) = dashboard() else { return };
        let err = jobs.status("raysubmit_wmpNoSuchJob").unwrap_err();
        match &err {
            RayError::Http {
                status: 404,
                message,
                ..
            } => {
                assert_eq!(message, "Job raysubmit_wmpNoSuchJob does not exist")
            }
            other => panic!("not a 404: {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("GET http://") && text.contains("/api/jobs/raysubmit_wmpNoSuchJob"),
            "{text}"
        );
        for err in [
            jobs.stop("raysubmit_wmpNoSuchJob").unwrap_err(),
            jobs.logs("raysubmit_wmpNoSuchJob").unwrap_err(),
        ] {
            assert!(matches!(err, RayError::Http { status: 404, .. }), "{err:?}");
        }
    }

    #[test]
    fn an_unreachable_dashboard_says_where() {
        let jobs = RayJobs::new("http://127.0.0.1:9/");
        let err = jobs.alive_nodes().unwrap_err();
        assert!(matches!(err, RayError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "cannot reach the Ray dashboard (GET http://127.0.0.1:9/api/v0/nodes?"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_gist_of_an_error_is_one_line() {
        // Ray's answer to a duplicate submission id (a traceback that quotes
        // another), cut short.
        let traceback = "Traceback (most recent call last):\n  \
            File \"job_head.py\", line 419, in submit_job\n    resp = await f()\n\
            RuntimeError: Request failed with status code 400: Traceback (most recent call last):\n  \
            File \"job_manager.py\", line 553, in submit_job\n    raise ValueError(\n\
            ValueError: Job with submission_id x already exists. Please use a different submission_id.\n\
            .\n";
        assert_eq!(
            gist(traceback),
            "ValueError: Job with submission_id x already exists. Please use a different submission_id."
        );
        assert_eq!(
            gist(r#"{"result": false, "msg": "Given limit 20000 exceeds", "data": {}}"#),
            "Given limit 20000 exceeds"
        );
        assert_eq!(
            gist("500 Internal Server Error\n\nServer got itself in trouble"),
            "500 Internal Server Error Server got itself in trouble"
        );
        assert_eq!(
            gist(
                "Traceback (most recent call last):\n  File \"yarl/_parse.py\"\n\
                aiohttp.client_exceptions.InvalidUrlClientError: http://127.0.0.1:-1/api\n"
            ),
            "aiohttp.client_exceptions.InvalidUrlClientError: http://127.0.0.1:-1/api"
        );
        assert_eq!(gist(" \n"), "(no message)");
        assert_eq!(cut("abcdef", 3), "abc…");
    }
}

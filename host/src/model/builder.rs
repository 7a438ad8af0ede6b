//! What a process is launched with: what it runs (a
//! [`Runnable`](crate::model::launch::Runnable)), its [`Capabilities`] (argv,
//! environment, preopened directories, stdio), the [`Target`] it runs
//! instead of `main`, and the [`ProcessBuilder`] that makes a process
//! object from them.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use wmp_core::{AuthKey, ProcessError};

use crate::ipc::inherit::Inheritance;
use crate::base::limits::Limits;
use crate::model::launch::{ProcessHost, Runnable};
use crate::model::process::Process;
use crate::model::registry::Node;
use crate::base::stdio::{Stdin, Stdio};

/// A host directory made visible to the guest (`--dir HOST[::GUEST]`).
/// The guest cannot reach outside it, by `..` or by symlinks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

impl Preopen {
    /// The same directory, but the guest can only read it.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

impl FromStr for Preopen {
    type Err = String;

    /// Parses `wasmtime run`'s spelling: `HOST` (seen as the same path in
    /// the guest) or `HOST::GUEST`; read-write. (See [`Preopen::read_only`].)
    fn from_str(spec: &str) -> Result<Self, String> {
        let (host, guest) = match spec.split_once("::") {
            Some((host, guest)) => (host, guest),
            None => (spec, spec),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!("invalid directory {spec:?}: expected HOST or HOST::GUEST"));
        }
        Ok(Preopen { host: host.into(), guest: guest.to_owned(), read_only: false })
    }
}

/// The rights and surroundings a process runs with. A guest's children
/// inherit their parent's capabilities.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) dirs: Vec<Preopen>,
    pub(crate) stdin: Stdin,
    pub(crate) network: bool,
    pub(crate) cluster: bool,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
}

impl Capabilities {
    pub fn new() -> Self {
        Self::default()
    }

    /// The guest's argv, program name first.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn preopen(mut self, dir: Preopen) -> Self {
        self.dirs.push(dir);
        self
    }

    /// Where the process's stdin comes from: empty by default (as for
    /// CPython's children), the host's own ([`Stdin::Inherit`], what
    /// `wmp run` gives its main process), or a pipe the host writes
    /// ([`Stdin::pipe`]). A guest's children read an empty stdin.
    pub fn stdin(mut self, stdin: Stdin) -> Self {
        self.stdin = stdin;
        self
    }

    /// Grant network access (TCP, UDP, name lookup) as the host has it.
    /// Without it, TCP, UDP and name lookup are all refused.
    pub fn network(mut self, granted: bool) -> Self {
        self.network = granted;
        self
    }

    /// Let the process (and its children) place children on the
    /// runtime's cluster ([`Placement`]); without it a guest's placed
    /// child is refused at start.
    pub fn cluster(mut self, granted: bool) -> Self {
        self.cluster = granted;
        self
    }

    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.stdout = stdio;
        self
    }

    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.stderr = stdio;
        self
    }

    /// What a child started by a guest gets: the same environment, dirs
    /// and output streams, argv of just the program name, no stdin.
    pub(crate) fn for_child(&self) -> Capabilities {
        Capabilities {
            args: self.args.iter().take(1).cloned().collect(),
            stdin: Stdin::Null,
            ..self.clone()
        }
    }
}

/// The named target a wmp-guest child runs instead of `main`, with its
/// argument bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub args: Vec<u8>,
}

/// Where a process runs. Local unless asked: placing a process on a
/// cluster is always explicit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// In this runtime, on this machine.
    #[default]
    Local,
    /// On a node of the runtime's cluster (see `RuntimeBuilder::cluster`,
    /// feature `cluster`): one that has the custom resource `resource`
    /// (Ray's `--resources`), or any node if None.
    Cluster { resource: Option<String> },
}

impl Placement {
    /// On a cluster node that has the custom resource `resource`.
    pub fn node_with(resource: impl Into<String>) -> Placement {
        Placement::Cluster { resource: Some(resource.into()) }
    }
}

/// Everything needed to launch a process object once it is started.
#[derive(Clone)]
pub(crate) struct LaunchSpec {
    pub(crate) program: Arc<dyn Runnable>,
    pub(crate) caps: Capabilities,
    pub(crate) target: Option<Target>,
    /// Limits asked for this process, on top of those it inherits.
    pub(crate) limits: Limits,
    /// Why this spec can never start (a guest asked for a program the host
    /// has not shared); reported by `start()`, as CPython reports a child's
    /// arguments that cannot be pickled.
    pub(crate) refusal: Option<ProcessError>,
    /// Connection ends and queues passed to the child before start.
    pub(crate) inherited: Inheritance,
    pub(crate) placement: Placement,
}

impl LaunchSpec {
    pub(crate) fn new(program: Arc<dyn Runnable>, caps: Capabilities, target: Option<Target>) -> Self {
        LaunchSpec {
            program,
            caps,
            target,
            limits: Limits::default(),
            refusal: None,
            inherited: Inheritance::default(),
            placement: Placement::Local,
        }
    }

    /// Bytes of the arguments it holds until it starts (the target's, and
    /// the argv of a `main`).
    pub(crate) fn argument_bytes(&self) -> usize {
        let target = self.target.as_ref().map_or(0, |t| t.name.len() + t.args.len());
        target + self.caps.args.iter().map(String::len).sum::<usize>()
    }

    /// Whether the spec can start: the program is allowed and knows the
    /// target.
    pub(crate) fn check(&self) -> Result<(), ProcessError> {
        if let Some(refusal) = &self.refusal {
            return Err(refusal.clone());
        }
        self.program.check_target(self.target.as_ref())
    }
}

/// Builds a process object (the analog of `multiprocessing.Process(...)`).
/// Nothing runs until [`Process::start`].
pub struct ProcessBuilder {
    pub(crate) host: Arc<dyn ProcessHost>,
    pub(crate) creator: Arc<Node>,
    pub(crate) spec: LaunchSpec,
    pub(crate) name: Option<String>,
    pub(crate) daemon: Option<bool>,
    pub(crate) authkey: Option<AuthKey>,
}

impl ProcessBuilder {
    pub(crate) fn new(host: Arc<dyn ProcessHost>, creator: Arc<Node>, program: Arc<dyn Runnable>) -> Self {
        let caps = Capabilities::new().args([program.name()]);
        Self {
            host,
            creator,
            spec: LaunchSpec::new(program, caps, None),
            name: None,
            daemon: None,
            authkey: None,
        }
    }

    /// Replaces the capabilities (argv, env, dirs, stdio).
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.spec.caps = caps;
        self
    }

    /// Run the named target of a wmp-guest program instead of its `main`
    /// (a native program linked with `wmp-guest` has targets too).
    pub fn target(mut self, name: impl Into<String>, args: impl Into<Vec<u8>>) -> Self {
        self.spec.target = Some(Target { name: name.into(), args: args.into() });
        self
    }

    /// The process name; empty keeps the default (`Process-N`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Daemon flag; by default a process inherits its creator's.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = Some(daemon);
        self
    }

    /// Limits for this process, on top of those it inherits from its
    /// creator (it can only be narrowed).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.spec.limits = limits;
        self
    }

    /// Where it runs (by default here, [`Placement::Local`]); a placement
    /// the runtime cannot honour is refused by `start()`.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.spec.placement = placement;
        self
    }

    /// Authkey; by default a process inherits its creator's.
    pub fn authkey(mut self, key: AuthKey) -> Self {
        self.authkey = Some(key);
        self
    }

    /// Creates the process object; like CPython, this takes the next number
    /// of the creator's child counter.
    pub fn build(self) -> Process {
        let charge = crate::base::ledger::Charge::none(); // the embedding host is not charged
        Process::construct(self.host, self.creator, self.spec, self.name, self.daemon, self.authkey, charge)
    }
}

//! A PostgreSQL server for the workspace's tests, so that a plain
//! `cargo test --workspace` passes on a machine where nothing is running.
//!
//! [`server`] is the server every PostgreSQL test uses: the one at
//! `ATMOSTONCE_POSTGRES_URL` when that is set (as `./scripts/test-all.sh`
//! and `.ci/run` set it), else a throwaway cluster started once per test
//! binary: `initdb` into a temporary directory, `pg_ctl start` on a free
//! loopback port, trusting local connections, `fsync` on (the store
//! refuses a server without it). The cluster is stopped and its directory
//! removed when the test binary exits, however it exits (a pass, a failed
//! test, a panic, a kill): a watchdog process holds the read end of a pipe
//! whose write end only this process has, and cleans up once it reads the
//! end of the pipe, which the kernel closes with the process.
//!
//! As `scripts/throwaway-postgres.sh` does, it installs PostgreSQL with
//! apt-get when run as root without it, and as root runs the server as the
//! `postgres` user (created if missing): PostgreSQL refuses to run as root.
//!
//! A cluster this crate starts serves TLS (`ssl = on`) with a server
//! certificate for `localhost` and `127.0.0.1` signed by a self-signed
//! root made for it ([`tls`]); plain connections are still accepted.
//! [`tls_server`] is always such a cluster, whatever `ATMOSTONCE_POSTGRES_URL`
//! says, so that the TLS tests run everywhere.

pub mod tls;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;

/// The variable naming a server that is already running.
pub const URL_VARIABLE: &str = "ATMOSTONCE_POSTGRES_URL";
/// The variable naming the directory of a cluster started by
/// `scripts/throwaway-postgres.sh` (its data is in `data/` below it).
pub const DIR_VARIABLE: &str = "THROWAWAY_POSTGRES_DIR";
/// The variable naming the directory of that cluster's `pg_ctl`.
pub const BIN_VARIABLE: &str = "THROWAWAY_POSTGRES_BIN";

/// Ports tried before giving up: a free port found by binding port 0 can be
/// taken by someone else before the server binds it, which a retry on
/// another port gets past.
const MAX_START_ATTEMPTS: usize = 5;

/// Seconds `pg_ctl start` waits for the server to accept connections (a
/// loaded machine's first start can take a while).
const START_TIMEOUT_SECS: u32 = 120;

/// Who runs the server when this process is root.
const SERVER_USER: &str = "postgres";

/// The role the tests connect as (the cluster's superuser).
const ROLE: &str = "atmostonce";

/// A PostgreSQL server for the tests.
#[derive(Debug)]
pub struct Server {
    url: String,
    data_dir: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
    certificates: Option<tls::Certificates>,
    /// The write end of the watchdog's pipe: it is closed (and the cluster
    /// stopped) when the process exits. `None` for a server this crate did
    /// not start.
    _watchdog: Option<ChildStdin>,
}

impl Server {
    /// The URL to connect with.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster's data directory, when known: with it, a test can crash
    /// and restart the server (`pg_ctl stop -m immediate`, `pg_ctl start`),
    /// which comes back on the same port.
    #[must_use]
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// The directory of the cluster's `pg_ctl`, when known.
    #[must_use]
    pub fn bin_dir(&self) -> Option<&Path> {
        self.bin_dir.as_deref()
    }

    /// The root certificate (PEM) that signed the server's certificate,
    /// for a cluster this crate started (`None` for a given server).
    #[must_use]
    pub fn root_cert(&self) -> Option<&Path> {
        self.certificates
            .as_ref()
            .map(|certificates| certificates.root.as_path())
    }

    /// A root certificate (PEM) that signed nothing this server has, for
    /// tests that must see the server's certificate refused.
    #[must_use]
    pub fn unrelated_root_cert(&self) -> Option<&Path> {
        self.certificates
            .as_ref()
            .map(|certificates| certificates.unrelated_root.as_path())
    }

    /// The server `URL_VARIABLE` names, with the cluster directories the
    /// throwaway script exported beside it, if any.
    fn given(url: String) -> Server {
        Server {
            url,
            data_dir: std::env::var_os(DIR_VARIABLE).map(|dir| PathBuf::from(dir).join("data")),
            bin_dir: std::env::var_os(BIN_VARIABLE).map(PathBuf::from),
            certificates: None,
            _watchdog: None,
        }
    }
}

/// The tests' server: `ATMOSTONCE_POSTGRES_URL`'s, or a throwaway cluster
/// started on the first call of this process and stopped when it exits.
/// The error says what could not be done (PostgreSQL missing and not root,
/// `initdb` or `pg_ctl` failing, with their output).
pub fn server() -> Result<&'static Server, String> {
    static GIVEN: OnceLock<Server> = OnceLock::new();
    match std::env::var(URL_VARIABLE) {
        Ok(url) => Ok(GIVEN.get_or_init(|| Server::given(url))),
        Err(_) => tls_server(),
    }
}

/// A throwaway cluster serving TLS ([`Server::root_cert`] is `Some`),
/// started on the first call of this process (or of [`server`], which
/// shares it when `ATMOSTONCE_POSTGRES_URL` is unset) and stopped when it
/// exits.
pub fn tls_server() -> Result<&'static Server, String> {
    static STARTED: OnceLock<Result<Server, String>> = OnceLock::new();
    STARTED
        .get_or_init(start_cluster)
        .as_ref()
        .map_err(Clone::clone)
}

fn start_cluster() -> Result<Server, String> {
    let bin = match postgres_bin() {
        Some(bin) => bin,
        None => install_postgres()?,
    };
    let owner = Owner::of_this_process()?;
    let dir = tempfile::Builder::new()
        .prefix("atmostonce-testpg-")
        .tempdir()
        .map_err(|error| format!("cannot create the cluster's temporary directory: {error}"))?
        .keep();
    // From here on the watchdog removes the directory when this process
    // exits, or as soon as this function fails (the pipe's write end is
    // dropped with the error).
    let watchdog = spawn_watchdog(&dir, &bin, &owner)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|error| format!("cannot open {} to the server: {error}", dir.display()))?;
    if let Owner::SwitchTo(user) = &owner {
        run(Command::new("chown").arg(format!("{user}:")).arg(&dir))?;
    }
    let data = dir.join("data");
    run(owner
        .command(&bin.join("initdb"))
        .arg(format!("--pgdata={}", data.display()))
        .arg(format!("--username={ROLE}"))
        .args(["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]))?;
    let certificates = tls::write(&dir, &data)?;
    if let Owner::SwitchTo(user) = &owner {
        run(Command::new("chown")
            .arg(format!("{user}:"))
            .arg(data.join("server.crt"))
            .arg(data.join("server.key")))?;
    }
    append_to(&data.join("postgresql.conf"), "ssl = on\n")?;
    let port = start_on_a_free_port(&owner, &bin, &dir)?;
    Ok(Server {
        url: format!("postgres://{ROLE}@127.0.0.1:{port}/postgres"),
        data_dir: Some(data),
        bin_dir: Some(bin),
        certificates: Some(certificates),
        _watchdog: Some(watchdog),
    })
}

/// Starts the cluster in `dir`, trying another free port when the one it
/// drew was taken; returns the port it listens on.
fn start_on_a_free_port(owner: &Owner, bin: &Path, dir: &Path) -> Result<u16, String> {
    let data = dir.join("data");
    let log = dir.join("server.log");
    let mut failures = String::new();
    for _ in 0..MAX_START_ATTEMPTS {
        let port = free_port()?;
        // In the configuration file, not on pg_ctl's command line, so that
        // a plain `pg_ctl start` after a crash comes back on the same port.
        // A later line wins, so a retry just appends its own port.
        let settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             max_connections = 300\n",
            dir.display()
        );
        append_to(&data.join("postgresql.conf"), &settings)?;
        let started = owner
            .command(&bin.join("pg_ctl"))
            .arg(format!("--pgdata={}", data.display()))
            .arg(format!("--log={}", log.display()))
            .arg("--wait")
            .arg(format!("--timeout={START_TIMEOUT_SECS}"))
            .arg("start")
            .output();
        match started {
            Ok(output) if output.status.success() => return Ok(port),
            Ok(_) | Err(_) => {
                let server_log = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = writeln!(failures, "port {port}: {}", server_log.trim());
            }
        }
    }
    Err(format!(
        "the throwaway PostgreSQL cluster in {} did not start on any of {MAX_START_ATTEMPTS} \
         ports:\n{failures}",
        dir.display()
    ))
}

fn append_to(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("cannot find a free loopback port: {error}"))
}

/// The watchdog: a shell that waits for the end of its standard input (the
/// exit of this process, which alone holds the write end), then stops the
/// cluster in `dir` and removes the directory. It ignores the terminal's
/// signals and has its own process group, so that a Ctrl-C that kills the
/// tests leaves it to clean up after them.
fn spawn_watchdog(dir: &Path, bin: &Path, owner: &Owner) -> Result<ChildStdin, String> {
    const SCRIPT: &str = r#"
trap '' INT TERM HUP
cat >/dev/null
if [ -f "$1/data/postmaster.pid" ]; then
    if [ -n "$3" ]; then
        runuser -u "$3" -- "$2/pg_ctl" --pgdata="$1/data" --mode=immediate --wait stop
    else
        "$2/pg_ctl" --pgdata="$1/data" --mode=immediate --wait stop
    fi
fi
rm -rf "$1"
"#;
    let user = match owner {
        Owner::SwitchTo(user) => user.as_str(),
        Owner::Myself => "",
    };
    let mut child = Command::new("sh")
        .args(["-c", SCRIPT, "testpg-watchdog"])
        .arg(dir)
        .arg(bin)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|error| format!("cannot start the cluster's watchdog (sh): {error}"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| "the watchdog was started without a pipe".to_owned())
}

/// Who runs `initdb`, `pg_ctl` and the server.
enum Owner {
    /// This process (not root).
    Myself,
    /// This process is root: the server runs as this user.
    SwitchTo(String),
}

impl Owner {
    fn of_this_process() -> Result<Owner, String> {
        if !is_root()? {
            return Ok(Owner::Myself);
        }
        let exists = Command::new("id")
            .arg(SERVER_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !exists {
            run(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ]))?;
        }
        Ok(Owner::SwitchTo(SERVER_USER.to_owned()))
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            Owner::Myself => Command::new(program),
            Owner::SwitchTo(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
        }
    }
}

fn is_root() -> Result<bool, String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|metadata| metadata.uid() == 0)
        .map_err(|error| format!("cannot tell who this process is: {error}"))
}

/// The newest `/usr/lib/postgresql/*/bin` (Debian's layout), else the
/// directory of a `pg_ctl` on `PATH`.
fn postgres_bin() -> Option<PathBuf> {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file())
}

/// Installs Debian's PostgreSQL (root only) and returns its `bin`.
fn install_postgres() -> Result<PathBuf, String> {
    if !is_root()? {
        return Err(format!(
            "PostgreSQL is not installed and this process is not root, so it cannot install \
             it: install it (apt-get install postgresql), or set {URL_VARIABLE} to a running \
             server"
        ));
    }
    eprintln!("testpg: PostgreSQL is not installed: installing it with apt-get");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "postgresql"]))?;
    postgres_bin().ok_or_else(|| "apt-get installed no PostgreSQL server (no pg_ctl)".to_owned())
}

/// Runs `command`, failing with its output when it fails.
fn run(command: &mut Command) -> Result<Output, String> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {shown}: {error}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

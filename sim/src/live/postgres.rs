//! Live mode's PostgreSQL faults: closing the run's connections
//! (`pg_terminate_backend`) and crashing the server (`pg_ctl stop -m
//! immediate`, then `pg_ctl start`), plus the run's table.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_postgres::NoTls;

/// How live mode reaches and controls the server.
#[derive(Debug, Clone)]
pub(crate) struct PgControl {
    /// The URL the run's store connects with (naming the run in
    /// `application_name`).
    pub(crate) url: String,
    /// The `application_name` of the run's connections: only those are
    /// terminated, never other clients of the server.
    pub(crate) application: String,
    /// The cluster's data directory (store crashes need it).
    pub(crate) data: Option<PathBuf>,
    /// Where `pg_ctl` is (`None`: on `PATH`).
    pub(crate) bin: Option<PathBuf>,
}

impl PgControl {
    /// `url` with this run's `application_name`.
    pub(crate) fn new(url: &str, data: Option<PathBuf>, bin: Option<PathBuf>) -> PgControl {
        let application = format!("atmostonce-live-{}", std::process::id());
        let separator = if url.contains('?') { '&' } else { '?' };
        PgControl {
            url: format!("{url}{separator}application_name={application}"),
            application,
            data,
            bin,
        }
    }

    async fn admin(&self) -> Result<tokio_postgres::Client, String> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|error| format!("cannot connect to PostgreSQL: {error}"))?;
        tokio::spawn(async move {
            // The connection ends with the client; its error is the call's.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Terminates every backend serving this run's store; returns how many.
    pub(crate) async fn terminate(&self) -> Result<u64, String> {
        let client = self.admin().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&self.application],
            )
            .await
            .map_err(|error| format!("pg_terminate_backend failed: {error}"))?;
        let count: i64 = row
            .try_get(0)
            .map_err(|error| format!("pg_terminate_backend answered oddly: {error}"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Drops `table` (the run's, once it passed).
    pub(crate) async fn drop_table(&self, table: &str) -> Result<(), String> {
        let client = self.admin().await?;
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
            .await
            .map_err(|error| format!("cannot drop table {table}: {error}"))
    }

    fn data(&self) -> Result<&Path, String> {
        self.data.as_deref().ok_or_else(|| {
            "store-crash on postgres needs the cluster's data directory: --pg-data DIR (or \
             THROWAWAY_POSTGRES_DIR from scripts/throwaway-postgres.sh)"
                .to_owned()
        })
    }

    /// `pg_ctl ARGS` on the data directory, as the directory's owner when
    /// this process is root (PostgreSQL refuses to run as root).
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data()?;
        let pg_ctl = self
            .bin
            .as_ref()
            .map_or_else(|| PathBuf::from("pg_ctl"), |bin| bin.join("pg_ctl"));
        let owner = owner_to_switch_to(data)?;
        let mut command = match &owner {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&pg_ctl);
                command
            }
            None => Command::new(&pg_ctl),
        };
        command.arg("--pgdata").arg(data).args(args);
        let output = command
            .output()
            .map_err(|error| format!("cannot run {}: {error}", pg_ctl.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// The crash: `pg_ctl stop -m immediate` (no shutdown checkpoint; the
    /// next start runs crash recovery).
    pub(crate) fn crash(&self) -> Result<(), String> {
        self.pg_ctl(&["--mode=immediate", "--wait", "stop"])
    }

    /// Starts the server again, waiting until it accepts connections.
    pub(crate) fn start(&self) -> Result<(), String> {
        let data = self.data()?;
        let log = data.join("live-restarts.log");
        let log = log.to_string_lossy();
        self.pg_ctl(&["--log", &log, "--wait", "--timeout=120", "start"])
    }

    /// Checks that the server can be crashed and restarted by this run
    /// before the run relies on it.
    pub(crate) fn check_control(&self) -> Result<(), String> {
        let data = self.data()?;
        if !data.join("PG_VERSION").is_file() {
            return Err(format!(
                "{} is not a PostgreSQL data directory (no PG_VERSION)",
                data.display()
            ));
        }
        self.pg_ctl(&["status"])
    }
}

/// The user to run `pg_ctl` as: the data directory's owner, when this
/// process is root and the owner is not.
fn owner_to_switch_to(data: &Path) -> Result<Option<String>, String> {
    let me = std::fs::metadata("/proc/self")
        .map_err(|error| format!("cannot tell who this process is: {error}"))?
        .uid();
    let owner = std::fs::metadata(data)
        .map_err(|error| format!("cannot read {}: {error}", data.display()))?
        .uid();
    if me != 0 || owner == 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|error| format!("cannot read /etc/passwd: {error}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?;
            (uid.parse::<u32>().ok()? == owner).then(|| name.to_owned())
        })
        .map(Some)
        .ok_or_else(|| format!("no user with uid {owner} owns {}", data.display()))
}

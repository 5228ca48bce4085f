//! The throwaway cluster is gone once the test binary that started it has
//! exited, whether it returned or panicked.
//!
//! Its own `main`: it runs this same binary as a child (`TESTPG_CHILD` says
//! how it ends) with `ATMOSTONCE_POSTGRES_URL` unset, so that the child
//! starts a cluster, checks it accepts connections, prints where it is and
//! ends; then the parent checks the directory was removed and the port
//! closed.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_VARIABLE: &str = "TESTPG_CHILD";

/// How long the watchdog may take to stop the server and remove its
/// directory after the child exited (a liveness bound, not a speed claim).
const CLEANUP_BOUND: Duration = Duration::from_secs(60);

fn main() {
    match std::env::var(CHILD_VARIABLE).as_deref() {
        Ok(ending) => child(ending),
        Err(_) => {
            for ending in ["return", "panic"] {
                a_cluster_is_removed_after_its_process_ends(ending);
                println!("test a_cluster_is_removed_after_a_{ending} ... ok");
            }
            println!("\ntest result: ok. 2 passed; 0 failed");
        }
    }
}

fn child(ending: &str) {
    let server = testpg::server().unwrap_or_else(|error| panic!("no server: {error}"));
    let data = server.data_dir().expect("a started cluster knows its data");
    let address = server
        .url()
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the URL names host:port");
    TcpStream::connect(address).unwrap_or_else(|error| panic!("{address} refused: {error}"));
    let mut stdout = std::io::stdout();
    writeln!(stdout, "dir {}", data.parent().unwrap().display()).unwrap();
    writeln!(stdout, "address {address}").unwrap();
    stdout.flush().unwrap();
    if ending == "panic" {
        panic!("the child panics while its cluster runs, as a failing test would");
    }
}

fn a_cluster_is_removed_after_its_process_ends(ending: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_VARIABLE, ending)
        .env_remove(testpg::URL_VARIABLE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.success(),
        ending == "return",
        "the child ({ending}) exited {}:\n{stdout}{stderr}",
        output.status
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("the child printed no {name}:\n{stdout}{stderr}"))
            .to_owned()
    };
    let dir = PathBuf::from(field("dir"));
    let address = field("address");
    let started = Instant::now();
    while dir.exists() || TcpStream::connect(&address).is_ok() {
        assert!(
            started.elapsed() < CLEANUP_BOUND,
            "{CLEANUP_BOUND:?} after the child ({ending}) exited, its cluster is still there: \
             directory {} exists: {}, {address} accepts connections: {}",
            dir.display(),
            dir.exists(),
            TcpStream::connect(&address).is_ok()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

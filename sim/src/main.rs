//! Deterministic simulation of the atmostonce engine (work in progress).

fn main() {
    eprintln!("atmostonce-sim: not built yet");
    std::process::exit(2);
}

//! Stateright model of the atmostonce protocol (work in progress).

fn main() {
    eprintln!("atmostonce-model: not built yet");
    std::process::exit(2);
}

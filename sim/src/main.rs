//! The simulator's command line. See `cargo sim -- --help`.

#[cfg(madsim)]
mod app;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match atmostonce_sim::cli::parse(&args) {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("atmostonce-sim: {error}");
            std::process::exit(2);
        }
    };
    if cli.mode == atmostonce_sim::cli::Mode::Help {
        println!("{}", atmostonce_sim::cli::help());
        #[cfg(not(madsim))]
        println!("\n{}", atmostonce_sim::cli::ordinary_build_notice());
        return;
    }
    #[cfg(madsim)]
    std::process::exit(app::run(&cli));
    #[cfg(not(madsim))]
    {
        eprintln!("{}", atmostonce_sim::cli::ordinary_build_notice());
        std::process::exit(2);
    }
}

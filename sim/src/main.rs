#[cfg(madsim)]
fn main() {
    use atmostonce_sim::config::FaultSpec;
    use atmostonce_sim::outcome::{ConfigSource, RunOptions};
    let args: Vec<String> = std::env::args().collect();
    let faults = FaultSpec::parse(args.get(2).map(String::as_str).unwrap_or("swarm")).unwrap();
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let source = ConfigSource::standard(faults);
    let summary = atmostonce_sim::runner::run_seeds(0..n, 2, &source, RunOptions::default(), false, |r| match r {
        Ok(run) if !run.verdict.passed() => { println!("seed {} {:?} {} key {:?} faults {}", run.seed, run.verdict.invariants(), run.verdict.violations[0].message, run.verdict.violations[0].key, run.config.faults);
  if std::env::var("V").is_ok() { let h = run.history.as_ref().unwrap(); let k = run.verdict.violations[0].key.unwrap();
    for op in h.ops_of(k) { println!("  {:>10} {:>10?} {:?} {} {:?} w={:?} st={} d={}", op.call_us, op.ret_us, op.process, op.name(), op.result, op.write, op.stale_read, op.dirty_read); }
    for e in &h.events { println!("  ev {:?}", e); } } }
        Ok(_) => {}
        Err(e) => println!("seed {} ERROR {}", e.seed, e.message),
    });
    println!("{} seeds {} failures {:.1}/s ratio {:.0} check {:.3} {:?}", summary.seeds, summary.failures, summary.seeds_per_second(), summary.sim_ratio(), summary.checker_share(), summary.by_invariant);
}
#[cfg(not(madsim))]
fn main() {}

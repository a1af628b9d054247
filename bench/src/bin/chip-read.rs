//! The chip read alone: APDUs and bytes against the protocol's minimum, and the terminal side's
//! time per read (the same rows `bench-compare` puts in its table).

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Complete reads per kind of reader (the median time is reported).
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let reads = bhyt_bench::chip::chip_reads(args.runs);
    println!("{}", serde_json::to_string_pretty(&reads)?);
    Ok(())
}

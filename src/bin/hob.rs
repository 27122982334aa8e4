//! The hob command line.

use std::io::{self, BufReader, BufWriter};

use anyhow::Context;
use clap::{Parser, Subcommand};

use hob::match_tool::{self, MatchConfig};

#[derive(Parser)]
#[command(name = "hob", version, about = "Hybrid order book exchange engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Match orders read as JSON lines on stdin; write events as JSON lines on stdout.
    Match {
        /// Price step, a positive decimal (e.g. 0.01).
        #[arg(long)]
        tick: String,
        /// Size step, a positive decimal (e.g. 0.001).
        #[arg(long)]
        lot: String,
        /// Maker fee rate in basis points.
        #[arg(long, default_value_t = 0)]
        maker_fee_bps: u16,
        /// Taker fee rate in basis points.
        #[arg(long, default_value_t = 0)]
        taker_fee_bps: u16,
        /// Smallest order size, in lots.
        #[arg(long, default_value_t = 1)]
        min_qty_lots: u64,
        /// Largest order size, in lots.
        #[arg(long, default_value_t = u64::MAX)]
        max_qty_lots: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Match { tick, lot, maker_fee_bps, taker_fee_bps, min_qty_lots, max_qty_lots } => {
            let config = MatchConfig { tick, lot, maker_fee_bps, taker_fee_bps, min_qty_lots, max_qty_lots };
            let stdin = BufReader::new(io::stdin().lock());
            let stdout = BufWriter::new(io::stdout().lock());
            match_tool::run(&config, stdin, stdout).context("hob match")?;
        }
    }
    Ok(())
}

//! `troupe eval`: runs the evaluation suites (see `eval` and docs/EVALUATION.md) and prints a
//! table, or `--json`. Progress goes to stderr; Ctrl+C stops the run and prints what was
//! measured.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use crate::app::vocabulary::{Better, EvalOptions, Metric, Report, Suite};
use crate::app::{Cancel, EvalRequest, Evaluation, Troupe};

/// `troupe eval`'s options.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A Character to evaluate (repeatable; default: the nine built-ins).
    #[arg(long = "character", value_name = "ID")]
    pub characters: Vec<String>,
    /// Suites, comma-separated: memory, consistency, repetition, rolebench, bfi, speed; or
    /// `quick` (the first three and speed) or `all`. Default: all with --data, else quick.
    #[arg(long, value_delimiter = ',')]
    pub suites: Vec<String>,
    /// How to prompt and sample: troupe (default), naive (the paper's baseline: the profile as
    /// a static system prompt and the most recent turns that fit), no-penalty (no repetition
    /// penalty) or a sampling preset.
    #[arg(long, default_value = "troupe")]
    pub setup: String,
    /// Run the same suites on a second setup, or on another model (a .gguf file), and print
    /// both with the difference and its bootstrap 95% interval.
    #[arg(long, value_name = "SETUP|FILE.gguf")]
    pub vs: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The sampling seed of every reply.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The longest reply, in tokens.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Turns of the repetition chat.
    #[arg(long, default_value_t = 20)]
    pub turns: usize,
    /// RoleBench: roles, and questions per role.
    #[arg(long, default_value_t = 4)]
    pub roles: usize,
    #[arg(long, default_value_t = 5)]
    pub questions: usize,
    /// BFI: InCharacter characters interviewed.
    #[arg(long, default_value_t = 4)]
    pub bfi_characters: usize,
    /// The folder with the benchmarks' files: rolebench/*.jsonl and incharacter/ (also:
    /// TROUPE_EVAL_DATA).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Your own probes: a JSON script of turns and checks (see docs/EVALUATION.md).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// A judge for the paper's seven 1–5 metrics and, with --vs, pairwise win/tie/lose:
    /// `remote` (the server in settings) or a .gguf file.
    #[arg(long, value_name = "remote|FILE.gguf")]
    pub judge: Option<String>,
    /// Seconds one judge answer may take.
    #[arg(long, default_value_t = 120)]
    pub judge_timeout: u64,
}

pub async fn eval(troupe: &Troupe, model: Option<PathBuf>, args: EvalArgs) -> anyhow::Result<()> {
    let data = args
        .data
        .clone()
        .or_else(|| std::env::var_os("TROUPE_EVAL_DATA").map(PathBuf::from));
    let suites = suites(&args.suites, data.is_some())?;
    let settings = troupe.settings();
    troupe.eval_setup(&settings, &args.setup)?;
    troupe.start_engine(&settings, model.as_deref()).await?;
    let req = EvalRequest {
        characters: args.characters.clone(),
        setup: args.setup.clone(),
        options: EvalOptions {
            suites,
            seed: args.seed,
            max_tokens: args.max_tokens,
            turns: args.turns,
            roles: args.roles,
            questions: args.questions,
            bfi_characters: args.bfi_characters,
        },
        model: None,
        vs: args.vs.clone(),
        data,
        script: args.script.clone(),
        judge: args.judge.clone(),
        judge_timeout: Duration::from_secs(args.judge_timeout),
    };
    let cancel = Cancel::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    let quiet = args.json;
    let evaluation = troupe
        .evaluate(&settings, &req, &cancel, &mut |p| {
            if !p.item.is_empty() && !quiet {
                eprintln!("[{}/{}] {}", p.done + 1, p.total, p.item);
            }
        })
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        print_table(&evaluation);
    }
    Ok(())
}

fn suites(names: &[String], with_data: bool) -> anyhow::Result<Vec<Suite>> {
    if names.is_empty() {
        return Ok(if with_data {
            Suite::ALL.to_vec()
        } else {
            Suite::QUICK.to_vec()
        });
    }
    let mut out = Vec::new();
    for n in names {
        match n.trim() {
            "all" => out.extend(Suite::ALL),
            "quick" => out.extend(Suite::QUICK),
            other => match Suite::parse(other).filter(|s| Suite::ALL.contains(s)) {
                Some(s) => out.push(s),
                None => bail!(
                    "no suite named \"{other}\"; use memory, consistency, repetition, rolebench, bfi, speed, quick or all"
                ),
            },
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn value(m: &Metric) -> String {
    match m.unit.as_str() {
        "share" => format!("{:.0}%", m.value * 100.0),
        "ms" | "messages" | "words" => format!("{:.0}", m.value),
        _ => format!("{:.2}", m.value),
    }
}

fn print_table(e: &Evaluation) {
    let r = &e.report;
    let title = match &e.vs {
        Some(b) => format!("{} vs {}", label(r), label(b)),
        None => label(r),
    };
    println!(
        "troupe eval: {title}; {} characters, seed {}, {:.0} s{}",
        r.characters.len(),
        r.options.seed,
        r.seconds + e.vs.as_ref().map_or(0.0, |b| b.seconds),
        if r.cancelled { " (stopped early)" } else { "" }
    );
    println!();
    match &e.vs {
        None => {
            println!("{:<12} {:<26} {:>9} {:>6}", "suite", "metric", "value", "n");
            for m in &r.metrics {
                println!(
                    "{:<12} {:<26} {:>9} {:>6}{}",
                    m.suite.as_str(),
                    m.name,
                    value(m),
                    m.samples.len(),
                    arrow(m.better)
                );
            }
        }
        Some(b) => {
            // Setups with sampling changes have long names: the columns say A and B.
            println!("A: {}\nB: {}", label(r), label(b));
            println!(
                "{:<12} {:<26} {:>9} {:>9} {:>24}",
                "suite", "metric", "A", "B", "difference [95% CI]"
            );
            for d in &e.differences {
                let m = r
                    .metric(d.suite, &d.name)
                    .expect("a difference has its metric");
                let mb = b.metric(d.suite, &d.name).expect("and its other side");
                let scale = if m.unit == "share" { 100.0 } else { 1.0 };
                println!(
                    "{:<12} {:<26} {:>9} {:>9} {:>+8.1} [{:+.1}, {:+.1}]{}",
                    d.suite.as_str(),
                    d.name,
                    value(m),
                    value(mb),
                    d.difference * scale,
                    d.low * scale,
                    d.high * scale,
                    arrow(d.better)
                );
            }
        }
    }
    for m in &e.pairwise {
        println!("{:<12} {:<26} {:>9}", "judge", m.name, value(m));
    }
    let problems: Vec<_> = std::iter::once(r)
        .chain(e.vs.as_ref())
        .flat_map(|x| x.problems.iter().map(move |p| (x, p)))
        .chain(e.pairwise_problems.iter().map(|p| (r, p)))
        .collect();
    if !problems.is_empty() {
        println!("\nnot scored:");
        for (x, p) in problems {
            println!("  [{}] {}: {}", x.setup.name, p.item, p.error);
        }
    }
}

fn label(r: &Report) -> String {
    format!("{} ({})", r.setup.name, r.model)
}

fn arrow(b: Better) -> &'static str {
    match b {
        Better::Higher => "  \u{2191}",
        Better::Lower => "  \u{2193}",
        Better::Neither => "",
    }
}

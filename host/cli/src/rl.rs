//! `keel rl …`: SAC-SVG(H) on the core's environments, and the evaluation of an exported policy
//! with the core's own policy and environment code (what runs on the controller).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use keel::checkpoint::Options;
use keel::error::{Error, Result};
use keel::output::Outputs;
use keel::rl::agent::Config;
use keel::rl::env;
use keel::rl::export::{policy_bytes, value_bytes};
use keel::rl::train::{train, Diagnostics, Outcome, Progress, Run, Trained};
use keel_core::random::Xoshiro256PlusPlus;
use keel_core::rl::{Acrobot, CartPoleSwingUp, Env, Pendulum, Policy, ValueModel};
use serde_json::json;

#[derive(Subcommand)]
pub enum RlCommand {
    /// Train SAC-SVG(H) (SAC at --horizon 0) on an environment and export the policy.
    Train(TrainArgs),
    /// Run an exported policy's deterministic action for whole episodes with the core's code.
    Eval(EvalArgs),
    /// Compare runs: the JSON lines of `keel rl train --json` grouped by environment, horizon
    /// and length — mean evaluation return over seeds at each step, best and last — and a plot.
    Curves(CurvesArgs),
}

#[derive(Args)]
pub struct CurvesArgs {
    /// Files of `keel rl train --json` lines (one run per line).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Draw each group's mean learning curve to this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// The core's environments.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EnvArg {
    Pendulum,
    Cartpole,
    Acrobot,
}

super::values::display_as_typed!(EnvArg);

#[derive(Args)]
pub struct TrainArgs {
    /// Environment.
    #[arg(long, value_enum)]
    env: EnvArg,
    /// Model horizon H (0: SAC, model-free).
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    horizon: i64,
    /// Environment steps.
    #[arg(long, default_value_t = 30_000, value_parser = super::values::at_least_one)]
    steps: usize,
    /// Seed of the networks, the environment and the replay.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A sweep: one run per seed, e.g. `0-4` or `0,3,7` (with --horizons, one per pair). Runs
    /// split over MPI ranks (run i on rank i mod N); with --json, one line per run in order —
    /// the input of `keel rl curves`. Output paths of a sweep name each run's file with
    /// `{seed}` (and `{horizon}`).
    #[arg(long, conflicts_with = "seed")]
    seeds: Option<String>,
    /// A sweep over model horizons, e.g. `0,1,3` (see --seeds).
    #[arg(long, conflicts_with = "horizon")]
    horizons: Option<String>,
    /// Hidden width of every network.
    #[arg(long, default_value_t = 128, value_parser = super::values::at_least_one)]
    hidden: usize,
    /// Single-step batch size.
    #[arg(long, default_value_t = 1024, value_parser = super::values::at_least_one)]
    batch: usize,
    /// Steps of uniform random actions before learning starts.
    #[arg(long, default_value_t = 1000)]
    seed_steps: usize,
    /// Steps before the model-based actor objective (SAC's before).
    #[arg(long, default_value_t = 2000)]
    warmup: usize,
    /// Target entropy (constant; Keel's small-scale Pendulum setting).
    #[arg(long, default_value_t = -1.0, allow_hyphen_values = true)]
    target_entropy: f64,
    /// Survival weights [1, q0, q0·q1, …] instead of the reference's [q0, q0², q0²·q1, …].
    #[arg(long)]
    corrected_survival: bool,
    /// Evaluate (--eval-episodes deterministic episodes) every this many steps (0: only at the
    /// end).
    #[arg(long, default_value_t = 1000)]
    eval_every: usize,
    /// Episodes per evaluation.
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    eval_episodes: usize,
    /// Write a checkpoint here (atomically) at the first episode end after every
    /// --checkpoint-every steps, and at the end.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Environment steps between checkpoints.
    #[arg(long, default_value_t = 5000, value_parser = super::values::at_least_one)]
    checkpoint_every: usize,
    /// Continue from --checkpoint if it exists (same settings required, except that a larger
    /// --steps extends a run); the resumed run ends with the same numbers as an uninterrupted
    /// one.
    #[arg(long)]
    resume: bool,
    /// Stop at the first episode end after this many steps of this invocation (checkpointing
    /// first); continue with --resume.
    #[arg(long, value_parser = super::values::at_least_one)]
    stop_after: Option<usize>,
    /// Write the policy (for `keel rl eval` and `keel_core::rl::Policy`).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Write the whole agent — actor, critic, reward, done and world model — for the
    /// model-based value estimate (`keel rl eval --value`, `keel_core::rl::ValueModel`).
    #[arg(long)]
    export_value: Option<PathBuf>,
    /// Draw the learning curve (training episodes and evaluations), one deterministic episode
    /// of the trained policy (observations, action, reward) and the updates' diagnostics (model
    /// error beside a no-change model's, reward-model error, critic loss, α) to this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Where the networks train: auto, cpu, cuda, cuda:N (the environments and the replay stay
    /// on the host).
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A policy written by `keel rl train --export`.
    #[arg(long)]
    policy: PathBuf,
    /// Environment (must match the policy's sizes).
    #[arg(long, value_enum)]
    env: EnvArg,
    /// Episodes.
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    episodes: usize,
    /// Seed of the initial states. `keel rl train --seed S` evaluates from seed S + 1000003
    /// (`eval_seed` in its JSON): pass that number to run the training's evaluation episodes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A value file (`keel rl train --export-value`): at every step, the core's model-based
    /// value estimate V̂_H of the state beside the discounted return that followed.
    #[arg(long)]
    value: Option<PathBuf>,
    /// Draw the first episode (rewards; with --value, V̂_H and the return that followed) to
    /// this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: &RlCommand) -> Result<()> {
    match cmd {
        RlCommand::Train(a) => train_cmd(a),
        RlCommand::Eval(a) => eval_cmd(a),
        RlCommand::Curves(a) => curves_cmd(a),
    }
}

/// The most runs one sweep may hold.
const MAX_RUNS: usize = 4096;

/// A list of whole numbers: `a,b,c` and ranges `a-b` (inclusive), at most [`MAX_RUNS`].
fn number_list(flag: &str, text: &str) -> Result<Vec<u64>> {
    let bad = |why: &str| Error::invalid(flag, text, why.to_string());
    let mut out = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let number = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| bad("expected whole numbers and ranges, e.g. 0-4 or 0,3,7"))
        };
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(item)?, number(item)?),
        };
        if hi < lo {
            return Err(bad("a range runs from low to high, e.g. 0-4"));
        }
        if hi - lo >= MAX_RUNS as u64 || out.len() + (hi - lo) as usize >= MAX_RUNS {
            return Err(bad(&format!("more than {MAX_RUNS} runs")));
        }
        for v in lo..=hi {
            if out.contains(&v) {
                return Err(bad(&format!("{v} is listed twice")));
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// One run of a sweep: its horizon and seed.
#[derive(Clone, Copy)]
struct RunId {
    horizon: usize,
    seed: u64,
}

/// `path` for run `id`: `{seed}` and `{horizon}` replaced. A sweep over several seeds
/// (horizons) needs `{seed}` (`{horizon}`) in the path, so that its runs' files differ.
fn run_path(flag: &str, path: &Path, id: RunId, seeds: usize, horizons: usize) -> Result<PathBuf> {
    let text = path.to_string_lossy();
    for (n, key, what) in [
        (seeds, "{seed}", "seeds"),
        (horizons, "{horizon}", "horizons"),
    ] {
        if n > 1 && !text.contains(key) {
            return Err(Error::invalid(
                flag,
                path.display(),
                format!("a sweep over {n} {what} writes one file per run: put {key} in the path (e.g. policy-h{{horizon}}-s{{seed}}.safetensors)"),
            ));
        }
    }
    if !text.contains('{') {
        return Ok(path.to_path_buf());
    }
    Ok(PathBuf::from(
        text.replace("{seed}", &id.seed.to_string())
            .replace("{horizon}", &id.horizon.to_string()),
    ))
}

/// What one run of `keel rl train` leaves for rank 0 to write and print.
struct RunOutput {
    /// The report (`--json`).
    report: serde_json::Value,
    /// The lines printed without `--json`.
    text: String,
    /// Output files and their bytes.
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl RunOutput {
    /// Length-prefixed (u64, little-endian) report, text, and per file its path and bytes.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |b: &[u8]| {
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        };
        put(self.report.to_string().as_bytes());
        put(self.text.as_bytes());
        put(&(self.files.len() as u64).to_le_bytes());
        for (p, bytes) in &self.files {
            put(p.to_string_lossy().as_bytes());
            put(bytes);
        }
        out
    }

    /// A list of [`RunOutput::encode`]'s, concatenated, back.
    fn decode_all(mut bytes: &[u8]) -> Result<Vec<RunOutput>> {
        let bad = || Error::invalid("ranks", "gathered runs", "a rank sent a malformed run");
        let take = |bytes: &mut &[u8]| -> Result<Vec<u8>> {
            let (len, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
            let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| bad())?;
            let (item, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
            *bytes = rest;
            Ok(item.to_vec())
        };
        let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| bad());
        let mut runs = Vec::new();
        while !bytes.is_empty() {
            let report = serde_json::from_slice(&take(&mut bytes)?).map_err(|_| bad())?;
            let printed = text(take(&mut bytes)?)?;
            let count = <[u8; 8]>::try_from(take(&mut bytes)?.as_slice()).map_err(|_| bad())?;
            let mut files = Vec::new();
            for _ in 0..u64::from_le_bytes(count) {
                let path = PathBuf::from(text(take(&mut bytes)?)?);
                files.push((path, take(&mut bytes)?));
            }
            runs.push(RunOutput {
                report,
                text: printed,
                files,
            });
        }
        Ok(runs)
    }
}

/// The per-run output paths of `keel rl train`.
struct RunPaths {
    export: Option<PathBuf>,
    export_value: Option<PathBuf>,
    plot: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
}

fn train_cmd(a: &TrainArgs) -> Result<()> {
    let horizons: Vec<usize> = match &a.horizons {
        Some(list) => number_list("--horizons", list)?
            .into_iter()
            .map(|h| usize::try_from(h).map_err(|_| Error::invalid("--horizons", h, "too large")))
            .collect::<Result<_>>()?,
        None => vec![usize::try_from(a.horizon)
            .map_err(|_| Error::invalid("--horizon", a.horizon, "must be 0 or more"))?],
    };
    let seeds = match &a.seeds {
        Some(list) => number_list("--seeds", list)?,
        None => vec![a.seed],
    };
    let runs: Vec<RunId> = horizons
        .iter()
        .flat_map(|&horizon| seeds.iter().map(move |&seed| RunId { horizon, seed }))
        .collect();
    let task = env::make(&a.env.to_string())?;
    if a.steps == 0 {
        return Err(Error::invalid("--steps", 0, "must be positive"));
    }
    if a.eval_episodes == 0 {
        return Err(Error::invalid("--eval-episodes", 0, "must be positive"));
    }
    if !a.target_entropy.is_finite() {
        return Err(Error::invalid(
            "--target-entropy",
            a.target_entropy,
            "must be a number",
        ));
    }
    if a.checkpoint.is_none() && (a.resume || a.stop_after.is_some()) {
        let flag = if a.resume { "--resume" } else { "--stop-after" };
        return Err(Error::invalid(flag, "set", "needs --checkpoint FILE"));
    }
    // Every run's paths, checked before anything runs.
    let mut paths = Vec::with_capacity(runs.len());
    for &id in &runs {
        let path = |flag: &str, p: &Option<PathBuf>| -> Result<Option<PathBuf>> {
            p.as_deref()
                .map(|p| run_path(flag, p, id, seeds.len(), horizons.len()))
                .transpose()
        };
        let rp = RunPaths {
            export: path("--export", &a.export)?,
            export_value: path("--export-value", &a.export_value)?,
            plot: path("--plot", &a.plot)?,
            checkpoint: path("--checkpoint", &a.checkpoint)?,
        };
        for (flag, p) in [
            ("--export", &rp.export),
            ("--export-value", &rp.export_value),
            ("--checkpoint", &rp.checkpoint),
        ] {
            if let Some(p) = p {
                keel::output::check_writable(flag, p)?;
            }
        }
        if let Some(p) = &rp.plot {
            keel::output::check_plot("--plot", p)?;
        }
        paths.push(rp);
    }
    let base = Config {
        hidden: a.hidden,
        batch: a.batch,
        seed_steps: a.seed_steps,
        warmup: a.warmup,
        entropy: (a.target_entropy, a.target_entropy, 1.0),
        corrected_survival: a.corrected_survival,
        ..Config::default()
    };
    for &horizon in &horizons {
        Config {
            horizon,
            ..base.clone()
        }
        .check()?;
    }
    let (device, notice) = crate::ranks::device(&a.device)?.resolve()?;
    let w = crate::ranks::world();
    if w.size() > runs.len() {
        return Err(Error::invalid(
            "--seeds",
            runs.len(),
            format!(
                "over MPI ranks each rank trains whole runs: at least one run per rank ({} ranks); sweep more seeds or horizons",
                w.size()
            ),
        ));
    }
    crate::ranks::start(keel::distributed::fingerprint(task.name().as_bytes()))?;
    if let (Some(n), true) = (notice, crate::ranks::prints()) {
        eprintln!("{n}");
    }
    // Run i trains on rank i mod N; rank 0 gathers every run's report and files.
    let mut mine = Vec::new();
    for i in keel::distributed::round_robin(runs.len(), w.rank(), w.size()) {
        let label = match runs.len() {
            1 => String::new(),
            n => format!(" seed {} ({}/{n})", runs[i].seed, i + 1),
        };
        let cfg = Config {
            horizon: runs[i].horizon,
            ..base.clone()
        };
        mine.push(one_run(a, cfg, runs[i].seed, &paths[i], device, &label)?);
        crate::ranks::fail_point("after its first run")?;
    }
    let outputs: Vec<RunOutput> = if w.size() == 1 {
        mine
    } else {
        let bytes: Vec<u8> = mine.iter().flat_map(RunOutput::encode).collect();
        let Some(all) = w.gather(&bytes)? else {
            return Ok(());
        };
        let per_rank = all
            .iter()
            .map(|b| RunOutput::decode_all(b))
            .collect::<Result<Vec<_>>>()?;
        keel::distributed::interleave(per_rank, runs.len())?
    };
    let mut files = Outputs::new();
    for o in &outputs {
        for (p, bytes) in &o.files {
            files.bytes(p, bytes)?;
        }
    }
    files.commit()?;
    for o in &outputs {
        if a.json {
            super::report::json(&o.report)?;
        } else {
            print!("{}", o.text);
        }
    }
    Ok(())
}

/// One run: trains, and returns its report, its printed lines and its files' bytes.
fn one_run(
    a: &TrainArgs,
    cfg: Config,
    seed: u64,
    paths: &RunPaths,
    device: keel::backend::Device,
    label: &str,
) -> Result<RunOutput> {
    let horizon = cfg.horizon;
    let task = env::make(&a.env.to_string())?;
    let ckpt = Options {
        path: paths.checkpoint.clone(),
        every: a.checkpoint_every,
        resume: a.resume,
        stop_after: a.stop_after,
    };
    let run = Run {
        env: a.env.to_string(),
        steps: a.steps,
        seed,
        eval_every: a.eval_every,
        eval_episodes: a.eval_episodes,
    };
    let bar = super::progress::counted_bar(
        !a.quiet && !a.json,
        a.steps,
        format!("{} {}{label}", method(horizon), a.env),
        "steps",
    );
    let start = Instant::now();
    let outcome = train(cfg, &run, &ckpt, device, |p: &Progress| {
        if let Some(r) = p.last_return {
            bar.set_message(format!("last episode return {r:.1}"));
        }
        bar.set_position(p.step as u64);
    })?;
    bar.finish_and_clear();
    let trained = match outcome {
        Outcome::Finished(t) => *t,
        Outcome::Stopped { step } => {
            let path = ckpt.path.as_deref().map(|p| p.display().to_string());
            return Ok(RunOutput {
                report: json!({"partial": true, "stopped_after": step, "steps": a.steps,
                    "seed": seed, "horizon": horizon, "checkpoint": path}),
                text: format!(
                    "stopped after {step} steps; continue with --resume --checkpoint {}\n",
                    path.unwrap_or_default()
                ),
                files: Vec::new(),
            });
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut files = Vec::new();
    if let Some(path) = &paths.export {
        files.push((
            path.clone(),
            policy_bytes(&trained.agent, &trained.replay, task.name(), &task.limits())?,
        ));
    }
    if let Some(path) = &paths.export_value {
        files.push((
            path.clone(),
            value_bytes(&trained.agent, &trained.replay, task.name())?,
        ));
    }
    if let Some(path) = &paths.plot {
        files.push((path.clone(), plot_bytes(path, &trained, a, seed, horizon)?));
    }
    let last = trained
        .evaluations
        .last()
        .ok_or_else(|| Error::invalid("--steps", a.steps, "no evaluation was run"))?;
    let curve: Vec<_> = trained
        .evaluations
        .iter()
        .map(|e| {
            let mut v = json!({"step": e.step, "return_mean": e.mean, "return_std": e.std});
            for (name, x) in e.diagnostics.named() {
                v[name] = json!(x);
            }
            v
        })
        .collect();
    let report = json!({
        "env": a.env.to_string(), "horizon": horizon, "steps": a.steps, "seed": seed,
        "batch": a.batch, "hidden": a.hidden, "partial": false,
        "eval_seed": keel::rl::train::eval_seed(seed),
        "eval_return_mean": last.mean, "eval_return_std": last.std,
        "train_seconds": seconds, "episodes": trained.episodes.len(),
        "device": device.to_string(), "update_seconds": trained.update_seconds,
        "evaluations": curve,
        "export": paths.export.as_deref().map(|p| p.display().to_string()),
        "export_value": paths.export_value.as_deref().map(|p| p.display().to_string()),
    });
    let mut text = format!(
        "{} on {}{}: {} steps in {seconds:.0} s ({device}); evaluation return {:.1} ± {:.1} ({} episodes)\n",
        method(horizon),
        a.env,
        if a.seeds.is_some() { format!(", seed {seed}") } else { String::new() },
        a.steps,
        last.mean,
        last.std,
        a.eval_episodes
    );
    if let Some(p) = &paths.export {
        text += &format!("policy written to {}\n", p.display());
    }
    if let Some(p) = &paths.export_value {
        text += &format!("value model written to {}\n", p.display());
    }
    Ok(RunOutput {
        report,
        text,
        files,
    })
}

/// The learning curve, one deterministic episode and the updates' diagnostics, drawn as a PNG
/// (through a temporary file next to `path`, removed afterwards) and returned as bytes.
fn plot_bytes(
    path: &Path,
    trained: &Trained,
    a: &TrainArgs,
    seed: u64,
    horizon: usize,
) -> Result<Vec<u8>> {
    let curve = vec![
        (
            "training episodes".to_string(),
            trained
                .episodes
                .iter()
                .map(|&(s, r)| (s as f64, r))
                .collect(),
        ),
        (
            "evaluation (deterministic)".to_string(),
            trained
                .evaluations
                .iter()
                .map(|e| (e.step as f64, e.mean))
                .collect(),
        ),
    ];
    let rollout = rollout(trained, &a.env.to_string(), seed)?;
    let title = format!("{} on {}, seed {seed}", method(horizon), a.env);
    let rollout_title = format!("one deterministic episode after training ({})", a.env);
    // The updates' diagnostics per evaluation interval, on a log scale.
    let diag = |name: &str, get: fn(&Diagnostics) -> Option<f64>| {
        let pts = trained
            .evaluations
            .iter()
            .filter_map(|e| get(&e.diagnostics).map(|v| (e.step as f64, v)))
            .collect();
        (name.to_string(), pts)
    };
    let diagnostics: Lines = vec![
        diag("model multi-step MSE", |d| d.model.get()),
        diag("MSE of predicting no change (one step)", |d| {
            d.model_baseline.get()
        }),
        diag("reward-model MSE", |d| d.reward.get()),
        diag("critic loss", |d| d.critic.get()),
        diag("temperature α", |d| d.alpha.get()),
    ];
    let mut staged = Outputs::new();
    let mut bytes = Vec::new();
    staged.with(path, |tmp| {
        keel::plot::plot_line_and_log_panels(
            tmp,
            &[
                (&title, "environment steps", "episode return", &curve),
                (&rollout_title, "step", "value", &rollout),
            ],
            &[(
                "updates, mean per evaluation interval",
                "environment steps",
                "value",
                &diagnostics,
            )],
        )?;
        bytes = keel::output::read(tmp)?;
        Ok(())
    })?;
    // Dropped uncommitted: the temporary file is removed.
    drop(staged);
    Ok(bytes)
}

/// The method's name: SAC at `H = 0`, else SAC-SVG(H).
fn method(horizon: usize) -> String {
    match horizon {
        0 => "SAC".into(),
        h => format!("SAC-SVG({h})"),
    }
}

/// Named `(x, y)` lines for a plot panel.
type Lines = Vec<(String, Vec<(f64, f64)>)>;

/// One deterministic episode of the trained policy from a seeded start: each observation
/// component, the action (normalised) and the reward per step.
fn rollout(trained: &Trained, env: &str, seed: u64) -> Result<Lines> {
    let mut task = env::make(env)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(7));
    let mut obs = task.reset(&mut rng)?;
    let (o, a) = (task.observations(), task.actions());
    let mut series: Lines = (0..o)
        .map(|i| (format!("observation {i}"), Vec::new()))
        .chain((0..a).map(|i| (format!("action {i}"), Vec::new())))
        .chain([("reward".to_string(), Vec::new())])
        .collect();
    let std = trained.replay.stats.std();
    for t in 0..task.max_steps() {
        let mut x = Vec::with_capacity(o);
        trained.replay.stats.normalize_into(&obs, &std, &mut x);
        let action = trained.agent.act_deterministic(&x)?;
        let s = task.step(&action)?;
        let values = obs.iter().chain(&action).chain([&s.reward]);
        for (line, v) in series.iter_mut().zip(values) {
            line.1.push((t as f64, *v));
        }
        obs = s.observation;
        if s.terminated || s.truncated {
            break;
        }
    }
    Ok(series)
}

/// One episode seen by `keel rl eval`: the rewards, and the value estimate at each step.
struct Episode {
    rewards: Vec<f64>,
    values: Vec<f64>,
}

/// Checks that a file's model takes `O` observations and gives `A` actions.
fn check_sizes<const O: usize, const A: usize>(
    flag: &str,
    path: &Path,
    what: &str,
    (o, a): (usize, usize),
    env: &str,
) -> Result<()> {
    if o == O && a == A {
        return Ok(());
    }
    Err(Error::invalid(
        flag,
        path.display(),
        format!("the {what} takes {o} observations and gives {a} actions; {env} has {O} and {A}"),
    ))
}

/// Episodes of `policy`'s deterministic action on `env` (core code, f64), with the value
/// model's estimate of every state visited when one is given.
fn episodes<E: Env<f64, O, A>, const O: usize, const A: usize>(
    env: &mut E,
    policy: &Policy<'_, 8>,
    value: Option<&ValueModel<'_, 8>>,
    a: &EvalArgs,
) -> Result<Vec<Episode>> {
    let sizes = (policy.observations(), policy.actions());
    check_sizes::<O, A>("--policy", &a.policy, "policy", sizes, E::NAME)?;
    if let (Some(v), Some(path)) = (value, &a.value) {
        let sizes = (v.observations(), v.actions());
        check_sizes::<O, A>("--value", path, "value model", sizes, E::NAME)?;
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(a.seed);
    let mut scratch = vec![0.0; policy.scratch_len()];
    let mut value_scratch = vec![0.0; value.map_or(0, ValueModel::scratch_len)];
    let mut out = Vec::with_capacity(a.episodes);
    for _ in 0..a.episodes {
        let mut obs = env.reset(&mut rng).map_err(Error::core("reset"))?;
        let mut ep = Episode {
            rewards: Vec::new(),
            values: Vec::new(),
        };
        loop {
            if let Some(v) = value {
                let estimate = v
                    .value(&obs, &mut value_scratch)
                    .map_err(Error::core("value estimate"))?;
                ep.values.push(estimate);
            }
            let mut action = [0.0; A];
            policy
                .act(&obs, &mut action, &mut scratch)
                .map_err(Error::core("policy"))?;
            let s = env.step(&action).map_err(Error::core("environment step"))?;
            ep.rewards.push(s.reward);
            obs = s.observation;
            if s.terminated || s.truncated {
                break;
            }
        }
        out.push(ep);
    }
    Ok(out)
}

/// `G_t = Σ_{k ≥ t} γ^{k−t} r_k` to the end of the episode.
fn returns_to_go(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut g = vec![0.0; rewards.len()];
    let mut acc = 0.0;
    for (t, r) in rewards.iter().enumerate().rev() {
        acc = r + gamma * acc;
        g[t] = acc;
    }
    g
}

/// How the value estimates compare with the returns that followed, over the first half of
/// each episode (later the return is cut short by the time limit): means, mean absolute
/// difference, correlation.
fn value_report(episodes: &[Episode], gamma: f64) -> serde_json::Value {
    let (mut v, mut g) = (Vec::new(), Vec::new());
    for ep in episodes {
        let half = ep.rewards.len() / 2;
        let togo = returns_to_go(&ep.rewards, gamma);
        v.extend_from_slice(&ep.values[..half.min(ep.values.len())]);
        g.extend_from_slice(&togo[..half]);
    }
    let n = v.len().max(1) as f64;
    let (mv, mg) = (v.iter().sum::<f64>() / n, g.iter().sum::<f64>() / n);
    let mad = v.iter().zip(&g).map(|(a, b)| (a - b).abs()).sum::<f64>() / n;
    let cov: f64 = v.iter().zip(&g).map(|(a, b)| (a - mv) * (b - mg)).sum();
    let sv = v.iter().map(|a| (a - mv).powi(2)).sum::<f64>().sqrt();
    let sg = g.iter().map(|b| (b - mg).powi(2)).sum::<f64>().sqrt();
    json!({
        "gamma": gamma, "states": v.len(), "value_mean": mv, "return_to_go_mean": mg,
        "mean_abs_difference": mad, "correlation": cov / (sv * sg),
    })
}

fn eval_cmd(a: &EvalArgs) -> Result<()> {
    if a.episodes == 0 {
        return Err(Error::invalid("--episodes", 0, "must be positive"));
    }
    env::make(&a.env.to_string())?;
    let bytes = keel::output::read(&a.policy)?;
    let malformed = Error::malformed(&a.policy);
    let st = keel_core::io::SafeTensors::<64>::parse(&bytes).map_err(&malformed)?;
    let policy = Policy::<8>::from_safetensors(&st).map_err(&malformed)?;
    if let Some(p) = &a.plot {
        keel::output::check_plot("--plot", p)?;
    }
    let value_file = match &a.value {
        Some(path) => Some((path, keel::output::read(path)?)),
        None => None,
    };
    let value_st = match &value_file {
        Some((path, bytes)) => Some((
            path,
            keel_core::io::SafeTensors::<128>::parse(bytes).map_err(Error::malformed(path))?,
        )),
        None => None,
    };
    let value = match &value_st {
        Some((path, st)) => {
            Some(ValueModel::<8>::from_safetensors(st).map_err(Error::malformed(path))?)
        }
        None => None,
    };
    let v = value.as_ref();
    let eps = match a.env {
        EnvArg::Pendulum => episodes(&mut Pendulum::new(), &policy, v, a)?,
        EnvArg::Cartpole => episodes(&mut CartPoleSwingUp::new(), &policy, v, a)?,
        EnvArg::Acrobot => episodes(
            &mut Acrobot::new().map_err(Error::core("acrobot"))?,
            &policy,
            v,
            a,
        )?,
    };
    let n = a.episodes;
    let returns: Vec<f64> = eps.iter().map(|e| e.rewards.iter().sum()).collect();
    let report = v.map(|v| value_report(&eps, v.gamma()));
    if let Some(path) = &a.plot {
        plot_episode(path, &eps[0], v, &a.env.to_string())?;
    }
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    let std =
        (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / returns.len() as f64).sqrt();
    if a.json {
        super::report::json(
            &json!({"env": a.env.to_string(), "episodes": n, "seed": a.seed, "return_mean": mean, "return_std": std,
                   "returns": returns, "value": report}),
        )?;
    } else {
        println!("{} episodes of {}: return {mean:.1} ± {std:.1}", n, a.env);
        if let (Some(r), Some(v)) = (&report, v) {
            println!(
                "value estimate V̂_{} over the first half of each episode: mean {:.1} against a \
                 discounted return of {:.1} that followed (mean |difference| {:.1}, correlation \
                 {:.3})",
                v.horizon(),
                r["value_mean"].as_f64().unwrap_or(f64::NAN),
                r["return_to_go_mean"].as_f64().unwrap_or(f64::NAN),
                r["mean_abs_difference"].as_f64().unwrap_or(f64::NAN),
                r["correlation"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    Ok(())
}

/// The first episode: reward per step, and with a value model its estimate beside the
/// discounted return that followed.
fn plot_episode(
    path: &Path,
    ep: &Episode,
    value: Option<&ValueModel<'_, 8>>,
    env: &str,
) -> Result<()> {
    let line = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().map(|(t, &y)| (t as f64, y)).collect()
    };
    let rewards: Lines = vec![("reward".to_string(), line(&ep.rewards))];
    let title = format!("one deterministic episode ({env}): rewards");
    match value {
        Some(v) => {
            let togo = returns_to_go(&ep.rewards, v.gamma());
            let lines: Lines = vec![
                (
                    format!("value estimate V̂_{}", v.horizon()),
                    line(&ep.values),
                ),
                (
                    "discounted return that followed (to the time limit)".to_string(),
                    line(&togo),
                ),
            ];
            let value_title = format!("model-based value vs the return that followed ({env})");
            keel::plot::plot_line_panels(
                path,
                &[
                    (&title, "step", "reward", &rewards),
                    (&value_title, "step", "value", &lines),
                ],
            )
        }
        None => keel::plot::plot_line_panels(path, &[(&title, "step", "reward", &rewards)]),
    }
}

/// One run read back from `keel rl train --json`.
struct RunCurve {
    env: String,
    horizon: u64,
    steps: u64,
    seed: u64,
    seconds: f64,
    curve: Vec<(usize, f64)>,
}

fn read_runs(paths: &[PathBuf]) -> Result<Vec<RunCurve>> {
    let mut runs = Vec::new();
    for path in paths {
        let text = String::from_utf8(keel::output::read(path)?).map_err(|_| Error::Malformed {
            path: path.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = |why: &str| Error::Malformed {
                path: path.clone(),
                reason: format!("line {}: {why}", i + 1),
            };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
            if v.get("stopped_after").is_some() {
                continue; // an interrupted invocation's line
            }
            let num = |k: &str| {
                v[k].as_u64()
                    .ok_or_else(|| bad(&format!("no integer `{k}`")))
            };
            let curve = v["evaluations"]
                .as_array()
                .ok_or_else(|| bad("no `evaluations`"))?
                .iter()
                .map(|e| match (e["step"].as_u64(), e["return_mean"].as_f64()) {
                    (Some(s), Some(r)) if r.is_finite() => Ok((s as usize, r)),
                    _ => Err(bad("an evaluation without a step and a finite return_mean")),
                })
                .collect::<Result<Vec<_>>>()?;
            runs.push(RunCurve {
                env: v["env"]
                    .as_str()
                    .ok_or_else(|| bad("no `env`"))?
                    .to_string(),
                horizon: num("horizon")?,
                steps: num("steps")?,
                seed: num("seed")?,
                seconds: v["train_seconds"].as_f64().unwrap_or(f64::NAN),
                curve,
            });
        }
    }
    if runs.is_empty() {
        return Err(Error::invalid("runs", paths.len(), "no run in the files"));
    }
    Ok(runs)
}

fn curves_cmd(a: &CurvesArgs) -> Result<()> {
    if let Some(p) = &a.plot {
        keel::output::check_plot("--plot", p)?;
    }
    let runs = read_runs(&a.runs)?;
    // Groups by (env, horizon, steps), the runs in seed order; a seed run twice counts once (the
    // last line).
    type Key = (String, u64, u64);
    let mut groups: std::collections::BTreeMap<Key, Vec<&RunCurve>> = Default::default();
    for r in &runs {
        let g = groups
            .entry((r.env.clone(), r.horizon, r.steps))
            .or_default();
        g.retain(|o| o.seed != r.seed);
        g.push(r);
    }
    let mut out = Vec::new();
    let mut lines: Lines = Vec::new();
    for ((env, horizon, total), g) in &mut groups {
        g.sort_by_key(|r| r.seed);
        // Steps every run of the group evaluated at.
        let mut steps: Vec<usize> = g[0].curve.iter().map(|e| e.0).collect();
        steps.retain(|s| g.iter().all(|r| r.curve.iter().any(|e| e.0 == *s)));
        let at =
            |r: &RunCurve, s: usize| r.curve.iter().find(|e| e.0 == s).map_or(f64::NAN, |e| e.1);
        let n = g.len() as f64;
        let mean: Vec<(f64, f64)> = steps
            .iter()
            .map(|&s| (s as f64, g.iter().map(|r| at(r, s)).sum::<f64>() / n))
            .collect();
        let best: Vec<f64> = g
            .iter()
            .map(|r| r.curve.iter().map(|e| e.1).fold(f64::MIN, f64::max))
            .collect();
        let last: Vec<f64> = g
            .iter()
            .map(|r| r.curve.last().map_or(f64::NAN, |e| e.1))
            .collect();
        let label = match horizon {
            0 => format!("SAC (H = 0), {total} steps"),
            h => format!("SVG({h}), {total} steps"),
        };
        lines.push((format!("{label}, mean of {} seeds", g.len()), mean.clone()));
        out.push(json!({
            "env": env, "horizon": horizon, "total_steps": total,
            "seeds": g.iter().map(|r| r.seed).collect::<Vec<_>>(),
            "steps": steps, "mean_return": mean.iter().map(|p| p.1).collect::<Vec<_>>(),
            "best_return": best, "last_return": last,
            "train_seconds": g.iter().map(|r| r.seconds).collect::<Vec<_>>(),
        }));
        if !a.json {
            println!(
                "{env}, {label}: seeds {:?}",
                g.iter().map(|r| r.seed).collect::<Vec<_>>()
            );
            let row: Vec<String> = mean
                .iter()
                .map(|p| format!("{}k {:.0}", p.0 / 1000.0, p.1))
                .collect();
            println!("  mean evaluation return: {}", row.join(", "));
            let fmt = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "  best per seed: {}; last per seed: {}",
                fmt(&best),
                fmt(&last)
            );
        }
    }
    if let Some(path) = &a.plot {
        let envs: Vec<&String> = groups.keys().map(|k| &k.0).collect();
        let title = format!("mean evaluation return over seeds ({})", envs[0]);
        keel::plot::plot_line_panels(path, &[(&title, "environment steps", "return", &lines)])?;
    }
    if a.json {
        super::report::json(&json!({ "groups": out }))?;
    }
    Ok(())
}

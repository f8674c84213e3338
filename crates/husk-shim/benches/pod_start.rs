//! Pod start as the kubelet sees it, for the three runtime handlers of the
//! CRI lab (see tests/support): RunPodSandbox + 2 x (CreateContainer +
//! StartContainer) until both containers run, as one interleaved series
//! (the handlers take turns, in a rotating order). Then, in a second lab
//! whose runtime binaries, shim `start`s and CNI plugins run under a
//! timing wrapper (and husk's shim logs each call's duration), the same
//! series again, split into the runtime's share (shim + husk or runc), the
//! CNI plugins' and the rest (containerd). Last, the memory of the
//! runtime's processes for an idle pod of two containers.
//!
//! `cargo bench -p husk-shim --bench pod_start -- [--runs N] [--out FILE]`
//! (build the husk binary first: `cargo build --release -p husk`).
//! bench/run.sh runs it and puts the table in docs/benchmarks.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant, SystemTime};

use support::*;

struct Args {
    runs: usize,
    warmup: usize,
    out: Option<std::path::PathBuf>,
    handlers: Vec<String>,
}

fn args() -> Option<Args> {
    let argv: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs benches without --bench: nothing to do.
    if !argv.iter().any(|a| a == "--bench") {
        return None;
    }
    let mut a = Args {
        runs: 12,
        warmup: 2,
        out: None,
        handlers: HANDLERS.iter().map(|s| s.to_string()).collect(),
    };
    let mut it = argv.iter().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.runs),
            "--warmup" => a.warmup = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.warmup),
            "--out" => a.out = it.next().map(Into::into),
            "--handlers" => {
                a.handlers = it
                    .next()
                    .map(|v| v.split(',').map(String::from).collect())
                    .unwrap_or(a.handlers)
            }
            _ => {}
        }
    }
    Some(a)
}

fn ns_of(t: SystemTime) -> i128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// One pod start; returns (start, end) wall-clock and the pod id.
async fn pod_start(lab: &Lab, handler: &str) -> Result<(SystemTime, SystemTime, String), String> {
    let cfg = lab.pod_config("bench", false);
    let t0 = SystemTime::now();
    let pod = lab.run_pod(handler, &cfg).await?;
    let mut ids = Vec::new();
    for n in ["a", "b"] {
        ids.push(
            lab.create_start(
                &pod,
                &cfg,
                lab.container_config(n, &["sleep", "100000"], 0, false),
            )
            .await?,
        );
    }
    for id in &ids {
        lab.wait_state(
            id,
            k8s_cri::v1::ContainerState::ContainerRunning,
            Duration::from_secs(30),
        )
        .await?;
    }
    let t1 = SystemTime::now();
    Ok((t0, t1, pod))
}

/// A series: `runs` rounds, each handler once per round, in a rotating
/// order; returns per handler the (start, end) of each measured run.
async fn series(
    lab: &Lab,
    handlers: &[String],
    warmup: usize,
    runs: usize,
) -> Result<Vec<Vec<(SystemTime, SystemTime)>>, String> {
    let mut out = vec![Vec::new(); handlers.len()];
    for round in 0..warmup + runs {
        for k in 0..handlers.len() {
            let i = (k + round) % handlers.len();
            let (t0, t1, pod) = pod_start(lab, &handlers[i]).await?;
            lab.remove_pod(&pod).await?;
            if round >= warmup {
                out[i].push((t0, t1));
            }
            // Let the node settle between runs (shims exit, cgroups go).
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(out)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// What ran, when (ns): (kind "runtime" | "cni", label, start, end).
/// Labels: "shim start", "create", "start", "other".
fn intervals(lab: &Lab) -> Vec<(&'static str, &'static str, i128, i128)> {
    const VERBS: [&str; 12] = [
        "create", "start", "delete", "kill", "state", "exec", "ps", "pause", "resume", "update",
        "events", "features",
    ];
    let mut out = Vec::new();
    let times = std::fs::read_to_string(lab.dir.join("times.log")).unwrap_or_default();
    for l in times.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let (Some(tag), Some(a), Some(b), Some(argv0)) = (f.first(), f.get(1), f.get(2), f.get(3))
        else {
            continue;
        };
        let (Ok(a), Ok(b)) = (a.parse::<i128>(), b.parse::<i128>()) else {
            continue;
        };
        if *tag == "cni" {
            out.push(("cni", "cni", a, b));
            continue;
        }
        let args = &f[4..];
        let label = if argv0.ends_with("-v2") {
            if args.last() == Some(&"start") {
                "shim start"
            } else {
                "other"
            }
        } else {
            match args.iter().find(|a| VERBS.contains(a)) {
                Some(&"create") => "create",
                Some(&"start") => "start",
                _ => "other",
            }
        };
        out.push(("runtime", label, a, b));
    }
    // husk's shim: `time="<rfc3339>" level=debug msg="rpc <name> <id>: <ms> ms"`.
    let log = std::fs::read_to_string(lab.dir.join("husk-shim.log")).unwrap_or_default();
    for l in log.lines() {
        let Some(msg) = l.split("msg=\"rpc ").nth(1) else {
            continue;
        };
        let name = msg.split(' ').next().unwrap_or("");
        if name == "wait" {
            continue; // blocks until the process exits
        }
        let Some(time) = l.strip_prefix("time=\"").and_then(|r| r.split('"').next()) else {
            continue;
        };
        let Ok(end) = humantime::parse_rfc3339(time) else {
            continue;
        };
        let Some(ms) = msg
            .rsplit(": ")
            .next()
            .and_then(|m| m.split(' ').next())
            .and_then(|m| m.parse::<f64>().ok())
        else {
            continue;
        };
        let end = ns_of(end);
        let label = match name {
            "create" => "create",
            "start" => "start",
            _ => "other",
        };
        out.push(("runtime", label, end - (ms * 1e6) as i128, end));
    }
    out
}

/// Total length of the union of `ivs` clipped to [a, b].
fn covered(ivs: &[(i128, i128)], a: i128, b: i128) -> i128 {
    let mut v: Vec<(i128, i128)> = ivs
        .iter()
        .map(|&(x, y)| (x.max(a), y.min(b)))
        .filter(|(x, y)| x < y)
        .collect();
    v.sort();
    let mut total = 0;
    let mut cur: Option<(i128, i128)> = None;
    for (x, y) in v {
        match cur {
            Some((cx, cy)) if x <= cy => cur = Some((cx, cy.max(y))),
            Some((cx, cy)) => {
                total += cy - cx;
                cur = Some((x, y));
            }
            None => cur = Some((x, y)),
        }
    }
    if let Some((cx, cy)) = cur {
        total += cy - cx;
    }
    total
}

/// PSS and RSS (KiB) of the runtime's processes (shim, worker, boot,
/// stand-ins: everything whose command line names the lab, except
/// containerd) while a 2-container pod idles.
async fn idle_memory(lab: &Lab, handler: &str) -> Result<(u64, u64, usize), String> {
    let (_, _, pod) = pod_start(lab, handler).await?;
    // The shim trims its memory after half a second of quiet.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let dir = lab.dir.display().to_string();
    let ctd = lab.containerd_pid().map(|p| p as i32);
    let (mut pss, mut rss, mut n) = (0, 0, 0);
    for pid in pids() {
        if Some(pid) == ctd {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains(&dir) {
            continue;
        }
        let roll = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let field = |k: &str| {
            roll.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        pss += field("Pss:");
        rss += field("Rss:");
        n += 1;
    }
    lab.remove_pod(&pod).await?;
    Ok((pss, rss, n))
}

fn main() {
    let Some(a) = args() else {
        println!(
            "pod_start: a benchmark; run it with `cargo bench -p husk-shim --bench pod_start`"
        );
        return;
    };
    if let Some(why) = missing() {
        say(&format!("SKIPPED: {why}"));
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let started = Instant::now();
    let hs = a.handlers.clone();
    let result: Result<String, String> = rt.block_on(async {
        say("plain lab: headline series");
        let lab = Lab::start("pb", LabOptions::default()).await?;
        let plain = series(&lab, &hs, a.warmup, a.runs).await?;
        let mut mem = Vec::new();
        for h in &hs {
            mem.push(idle_memory(&lab, h).await?);
        }
        drop(lab);
        say("timed lab: breakdown series");
        let lab = Lab::start(
            "pt",
            LabOptions {
                shim_debug: true,
                timed: true,
            },
        )
        .await?;
        let timed = series(&lab, &hs, a.warmup, a.runs).await?;
        let ivs = intervals(&lab);
        drop(lab);

        let ms = |t0: SystemTime, t1: SystemTime| {
            t1.duration_since(t0).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
        };
        let mut totals = Vec::new();
        for runs in &plain {
            let mut v: Vec<f64> = runs.iter().map(|&(x, y)| ms(x, y)).collect();
            let (min, max) = (
                v.iter().cloned().fold(f64::INFINITY, f64::min),
                v.iter().cloned().fold(0.0, f64::max),
            );
            totals.push((median(&mut v), min, max));
        }
        let runc = hs.iter().position(|h| h == "runc").map(|i| totals[i].0);
        let hrs = hs.iter().position(|h| h == "husk-runc-shim").map(|i| totals[i].0);
        let pick = |f: &dyn Fn(&str, &str) -> bool| -> Vec<(i128, i128)> {
            ivs.iter()
                .filter(|i| f(i.0, i.1))
                .map(|i| (i.2, i.3))
                .collect()
        };
        let rt_iv = pick(&|k, _| k == "runtime");
        let cni_iv = pick(&|k, _| k == "cni");
        let all_iv = pick(&|_, _| true);
        let parts: Vec<(&str, Vec<(i128, i128)>)> = ["shim start", "create", "start", "other"]
            .iter()
            .map(|l| (*l, pick(&|k, x| k == "runtime" && x == *l)))
            .collect();
        let mut t = String::new();
        t += &format!(
            "| handler | pod start, median of {} | min – max | × runc | × husk-runc-shim |\n|---|---|---|---|---|\n",
            a.runs
        );
        for (i, h) in hs.iter().enumerate() {
            let (med, min, max) = totals[i];
            let ratio = |base: Option<f64>| {
                base.map(|b| format!("{:.2}×", med / b))
                    .unwrap_or("-".into())
            };
            t += &format!(
                "| {h} | {med:.0} ms | {min:.0} – {max:.0} ms | {} | {} |\n",
                ratio(runc),
                ratio(hrs)
            );
        }
        t += "\nWhere the time goes (timed lab, medians of per-run sums):\n\n";
        t += "| handler | total | runtime | ↳ shim start | ↳ create ×3 | ↳ start ×3 | ↳ other calls | CNI | containerd (the rest) |\n|---|---|---|---|---|---|---|---|---|\n";
        for (i, h) in hs.iter().enumerate() {
            let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 4 + parts.len()];
            for &(x, y) in &timed[i] {
                let (xa, yb) = (ns_of(x), ns_of(y));
                let ms = |v: i128| v as f64 / 1e6;
                let total = ms(yb - xa);
                cols[0].push(total);
                cols[1].push(ms(covered(&rt_iv, xa, yb)));
                for (j, (_, iv)) in parts.iter().enumerate() {
                    cols[2 + j].push(ms(covered(iv, xa, yb)));
                }
                cols[2 + parts.len()].push(ms(covered(&cni_iv, xa, yb)));
                cols[3 + parts.len()].push(total - ms(covered(&all_iv, xa, yb)));
            }
            t += &format!("| {h} |");
            for c in cols.iter_mut() {
                t += &format!(" {:.0} ms |", median(c));
            }
            t += "\n";
        }
        t += "\n| handler | runtime processes of an idle 2-container pod | PSS | RSS |\n|---|---|---|---|\n";
        for (i, h) in hs.iter().enumerate() {
            let (pss, rss, n) = mem[i];
            t += &format!(
                "| {h} | {n} | {:.2} MiB | {:.2} MiB |\n",
                pss as f64 / 1024.0,
                rss as f64 / 1024.0
            );
        }
        Ok(t)
    });
    match result {
        Ok(t) => {
            println!("{t}");
            say(&format!("done in {:.0} s", started.elapsed().as_secs_f64()));
            if let Some(p) = a.out {
                let _ = std::fs::write(p, &t);
            }
        }
        Err(e) => {
            eprintln!("pod_start: {e}");
            std::process::exit(1);
        }
    }
}

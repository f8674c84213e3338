//! Kubernetes through the CRI, as the kubelet drives it, against a real
//! containerd (Debian's 1.6) started here with its own root, state and
//! socket, for three runtime handlers: `husk` (husk's own shim),
//! `husk-runc-shim` (containerd's runc shim with husk as its binary) and
//! `runc`. See `support` for the lab.
//!
//! Per handler: a pod whose container A serves HTTP on :8080 and whose
//! container B fetches 127.0.0.1:8080 (one network for the pod); ExecSync;
//! per-container memory stats; an OOM kill; an exit code; the pod's net,
//! IPC and UTS namespaces shared and not the host's, a pid namespace per
//! container (and one for the pod with shareProcessNamespace); stop and
//! removal; a pod whose shim is SIGKILLed (containerd's cleanup must leave
//! nothing), a pod whose husk boot is SIGKILLed (every container must be
//! reported exited); nothing left behind; then 10 pods of 2 containers
//! created and removed concurrently.
//!
//! `HUSK_CRI_HANDLERS=husk,runc` runs only those; `HUSK_CRI_KEEP=1` keeps
//! the lab's directory.

mod support;

use std::time::{Duration, Instant};

use k8s_cri::v1::*;
use support::*;

/// The whole test, whatever happens.
const LIMIT: Duration = Duration::from_secs(900);

macro_rules! check {
    ($out:ident, $name:expr, $body:expr) => {{
        let r: Result<String, String> = $body;
        let failed = r.is_err();
        $out.push(($name, r));
        failed
    }};
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

async fn wait_log(
    cfg: &PodSandboxConfig,
    log: &str,
    needle: &str,
    limit: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    loop {
        let text = log_text(cfg, log);
        if text.contains(needle) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{log} has no {needle:?} after {}s: {text:?}",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Memory usage (bytes) and working set of a container, from the CRI.
async fn memory(lab: &Lab, id: &str) -> Result<(u64, u64), String> {
    let mut rt = lab.rt();
    let s = call(
        "ContainerStats",
        rt.container_stats(ContainerStatsRequest {
            container_id: id.into(),
        }),
    )
    .await?
    .stats
    .ok_or("ContainerStats: no stats")?;
    let m = s.memory.ok_or("ContainerStats: no memory")?;
    let usage = m.usage_bytes.map(|v| v.value).unwrap_or(0);
    let ws = m.working_set_bytes.map(|v| v.value).unwrap_or(0);
    Ok((usage, ws))
}

async fn scenario(lab: &Lab, handler: &str) -> Outcomes {
    let mut out: Outcomes = Vec::new();
    let mut uids = Vec::new();
    let mut pods = Vec::new();
    let web = lab.pod_config("web", false);
    uids.push(
        web.metadata
            .as_ref()
            .map(|m| m.uid.clone())
            .unwrap_or_default(),
    );

    // RunPodSandbox + 2 x (Create + Start) until both run.
    let t0 = Instant::now();
    let started: Result<(String, String, String), String> = async {
        let pod = lab.run_pod(handler, &web).await?;
        pods.push(pod.clone());
        let a = lab
            .create_start(
                &pod,
                &web,
                lab.container_config(
                    "a",
                    &[
                        "sh",
                        "-c",
                        "echo A-first; mkdir -p /www; echo hello-from-A > /www/index.html; exec httpd -f -p 8080 -h /www",
                    ],
                    0,
                    false,
                ),
            )
            .await?;
        let b = lab
            .create_start(
                &pod,
                &web,
                lab.container_config(
                    "b",
                    &[
                        "sh",
                        "-c",
                        "echo B-first; until wget -q -O /tmp/got http://127.0.0.1:8080/; do sleep 0.05; done; \
                         echo got $(cat /tmp/got); x=$(head -c 24000000 /dev/zero | tr '\\0' b); \
                         echo holding ${#x}; while :; do sleep 3600; done",
                    ],
                    0,
                    false,
                ),
            )
            .await?;
        lab.wait_state(&a, ContainerState::ContainerRunning, Duration::from_secs(30)).await?;
        lab.wait_state(&b, ContainerState::ContainerRunning, Duration::from_secs(30)).await?;
        Ok((pod, a, b))
    }
    .await;
    let elapsed = t0.elapsed();
    if check!(
        out,
        "pod start",
        started
            .as_ref()
            .map(|_| format!("{} ms", elapsed.as_millis()))
            .map_err(Clone::clone)
    ) {
        cleanup(lab, &mut out, &pods, &uids).await;
        return out;
    }
    let (pod, a, b) = started.expect("checked");
    let uid = &uids[0];

    check!(
        out,
        "pod network (B gets A's page)",
        async {
            wait_log(&web, "b.log", "got hello-from-A", Duration::from_secs(30)).await?;
            let a_log = wait_log(&web, "a.log", "A-first", Duration::from_secs(5)).await?;
            ensure(a_log.lines().next() == Some("A-first"), || {
                format!("a.log: {a_log:?}")
            })?;
            Ok(String::new())
        }
        .await
    );

    check!(
        out,
        "namespaces",
        (|| {
            let pa = lab.process_of(uid, &a, "httpd")?;
            let pb = lab.process_of(uid, &b, "sh -c echo B-first")?;
            let sandbox_marker = if lab.pause_is_busybox {
                "sleep"
            } else {
                "pause"
            };
            let pp = lab.process_of(uid, &pod, sandbox_marker)?;
            let me = std::process::id() as i32;
            for kind in ["net", "ipc", "uts"] {
                let (a, b, p, host) = (ns(pa, kind)?, ns(pb, kind)?, ns(pp, kind)?, ns(me, kind)?);
                ensure(a == b && b == p, || {
                    format!("{kind}: A {a}, B {b}, pause {p} differ")
                })?;
                ensure(a != host, || {
                    format!("{kind}: the pod's is the host's ({host})")
                })?;
            }
            let (a, b, p, host) = (
                ns(pa, "pid")?,
                ns(pb, "pid")?,
                ns(pp, "pid")?,
                ns(me, "pid")?,
            );
            ensure(a != b && a != p && b != p, || {
                format!("pid: A {a}, B {b}, pause {p} are not three")
            })?;
            ensure(a != host && b != host, || {
                "pid: a container has the host's".into()
            })?;
            Ok(String::new())
        })()
    );

    check!(
        out,
        "ExecSync",
        async {
            let mut rt = lab.rt();
            let r = call(
                "ExecSync",
                rt.exec_sync(ExecSyncRequest {
                    container_id: a.clone(),
                    cmd: vec![
                        "sh".into(),
                        "-c".into(),
                        "echo out; echo err >&2; exit 7".into(),
                    ],
                    timeout: 20,
                }),
            )
            .await?;
            let (so, se) = (
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr),
            );
            ensure(r.exit_code == 7 && so == "out\n" && se == "err\n", || {
                format!("exit {} stdout {so:?} stderr {se:?}", r.exit_code)
            })?;
            Ok(String::new())
        }
        .await
    );

    check!(
        out,
        "ContainerStats per container",
        async {
            wait_log(&web, "b.log", "holding", Duration::from_secs(30)).await?;
            let (ua, wa) = memory(lab, &a).await?;
            let (ub, _) = memory(lab, &b).await?;
            ensure(ua > 0 && wa > 0, || {
                format!("A: usage {ua}, working set {wa}")
            })?;
            // B holds a 24 MB string; A serves a page.
            ensure(ub > ua + (16 << 20), || {
                format!("A {ua} B {ub}: B is not the one holding 24 MB")
            })?;
            ensure(ub < (512 << 20), || {
                format!("B {ub}: not the container's own cgroup")
            })?;
            Ok(format!("A {} MiB, B {} MiB", ua >> 20, ub >> 20))
        }
        .await
    );

    check!(
        out,
        "UpdateContainerResources",
        async {
            let mut rt = lab.rt();
            let limit: i64 = 200 << 20;
            call(
                "UpdateContainerResources",
                rt.update_container_resources(UpdateContainerResourcesRequest {
                    container_id: a.clone(),
                    linux: Some(LinuxContainerResources {
                        memory_limit_in_bytes: limit,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            )
            .await?;
            let rel = format!("{}/{a}", lab.cgroup_parent(uid));
            let got = cgroup_dirs(&rel)
                .iter()
                .find_map(|d| {
                    ["memory.limit_in_bytes", "memory.max"]
                        .iter()
                        .find_map(|f| std::fs::read_to_string(d.join(f)).ok())
                })
                .ok_or_else(|| format!("no memory limit file for cgroup {rel}"))?;
            ensure(got.trim() == limit.to_string(), || {
                format!("memory limit of A is {}, not {limit}", got.trim())
            })?;
            Ok(String::new())
        }
        .await
    );

    check!(out, "OOMKilled (32 Mi limit)", async {
        let id = lab
            .create_start(
                &pod,
                &web,
                lab.container_config(
                    "oom",
                    &["sh", "-c", "echo eating; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}"],
                    32 << 20,
                    false,
                ),
            )
            .await?;
        let s = lab.wait_state(&id, ContainerState::ContainerExited, Duration::from_secs(60)).await?;
        ensure(s.reason == "OOMKilled" && s.exit_code == 137, || {
            format!("exit {} reason {:?}", s.exit_code, s.reason)
        })?;
        Ok(String::new())
    }
    .await);

    check!(
        out,
        "exit code 3",
        async {
            let id = lab
                .create_start(
                    &pod,
                    &web,
                    lab.container_config("three", &["sh", "-c", "echo bye; exit 3"], 0, false),
                )
                .await?;
            let s = lab
                .wait_state(
                    &id,
                    ContainerState::ContainerExited,
                    Duration::from_secs(30),
                )
                .await?;
            ensure(s.exit_code == 3 && s.reason == "Error", || {
                format!("exit {} reason {:?}", s.exit_code, s.reason)
            })?;
            // Printed in its first millisecond, by a process that is gone.
            wait_log(&web, "three.log", "bye", Duration::from_secs(5)).await?;
            Ok(String::new())
        }
        .await
    );

    check!(
        out,
        "Stop/RemoveContainer",
        async {
            let mut rt = lab.rt();
            call(
                "StopContainer",
                rt.stop_container(StopContainerRequest {
                    container_id: a.clone(),
                    timeout: 2,
                }),
            )
            .await?;
            let s = lab.status(&a).await?;
            ensure(s.state == ContainerState::ContainerExited as i32, || {
                format!("A state {}", s.state)
            })?;
            for id in [&a, &b] {
                call(
                    "RemoveContainer",
                    rt.remove_container(RemoveContainerRequest {
                        container_id: id.clone(),
                    }),
                )
                .await?;
            }
            let left = call(
                "ListContainers",
                rt.list_containers(ListContainersRequest::default()),
            )
            .await?;
            ensure(
                !left.containers.iter().any(|c| c.id == a || c.id == b),
                || "A or B still listed".into(),
            )?;
            Ok(String::new())
        }
        .await
    );

    check!(
        out,
        "shareProcessNamespace",
        async {
            let shared = lab.pod_config("shared", true);
            let suid = shared
                .metadata
                .as_ref()
                .map(|m| m.uid.clone())
                .unwrap_or_default();
            uids.push(suid.clone());
            let sp = lab.run_pod(handler, &shared).await?;
            pods.push(sp.clone());
            let c = lab
                .create_start(
                    &sp,
                    &shared,
                    lab.container_config("peek", &["sleep", "100000"], 0, true),
                )
                .await?;
            lab.wait_state(
                &c,
                ContainerState::ContainerRunning,
                Duration::from_secs(30),
            )
            .await?;
            let mut rt = lab.rt();
            let r = call(
                "ExecSync",
                rt.exec_sync(ExecSyncRequest {
                    container_id: c.clone(),
                    cmd: vec!["cat".into(), "/proc/1/cmdline".into()],
                    timeout: 20,
                }),
            )
            .await?;
            let one = String::from_utf8_lossy(&r.stdout).replace('\0', " ");
            let marker = if lab.pause_is_busybox {
                "sleep"
            } else {
                "pause"
            };
            ensure(one.contains(marker), || {
                format!("pid 1 in the container is {one:?}, not the pause")
            })?;
            let pc = lab.process_of(&suid, &c, "sleep 100000")?;
            let pp = lab.process_of(&suid, &sp, marker)?;
            ensure(ns(pc, "pid")? == ns(pp, "pid")?, || {
                "the container's pid namespace is not the pod's".into()
            })?;
            lab.remove_pod(&sp).await?;
            Ok(String::new())
        }
        .await
    );

    check!(
        out,
        "Stop/RemovePodSandbox",
        async {
            lab.remove_pod(&pod).await?;
            let mut rt = lab.rt();
            let left = call(
                "ListPodSandbox",
                rt.list_pod_sandbox(ListPodSandboxRequest::default()),
            )
            .await?;
            ensure(left.items.is_empty(), || {
                format!("{} pods still listed", left.items.len())
            })?;
            Ok(String::new())
        }
        .await
    );

    // containerd's own shim leaves its socket behind when it is killed;
    // husk's `delete` removes it.
    if handler == "husk" {
        check!(
            out,
            "shim SIGKILLed: containerd cleans up",
            async {
                let (pod, ids, pause) =
                    sleeping_pod(lab, handler, "crash", &mut uids, &mut pods).await?;
                let cuid = uids.last().cloned().unwrap_or_default();
                let shim = ancestor(pause, |comm, _| comm.starts_with("containerd-shim"))
                    .ok_or("no shim above the pause process")?;
                kill9(shim);
                for id in &ids {
                    lab.wait_state(id, ContainerState::ContainerExited, Duration::from_secs(30))
                        .await?;
                }
                lab.remove_pod(&pod).await?;
                let left = lab.leftovers(&[cuid], &[pod]);
                ensure(left.is_empty(), || format!("left: {}", left.join("; ")))?;
                Ok(String::new())
            }
            .await
        );
    }

    if handler.starts_with("husk") {
        check!(
            out,
            "boot SIGKILLed: every exit reported",
            async {
                let (pod, ids, pause) =
                    sleeping_pod(lab, handler, "bootkill", &mut uids, &mut pods).await?;
                let buid = uids.last().cloned().unwrap_or_default();
                let boot = ancestor(pause, |_, cmd| cmd.contains(" boot "))
                    .ok_or("no husk boot above the pause process")?;
                kill9(boot);
                for id in &ids {
                    let s = lab
                        .wait_state(id, ContainerState::ContainerExited, Duration::from_secs(30))
                        .await?;
                    ensure(s.exit_code == 137, || {
                        format!("{id}: exit {} after its sandbox died", s.exit_code)
                    })?;
                }
                lab.remove_pod(&pod).await?;
                let left = lab.leftovers(&[buid], &[pod]);
                ensure(left.is_empty(), || format!("left: {}", left.join("; ")))?;
                Ok(String::new())
            }
            .await
        );
    }

    check!(out, "nothing left", {
        let left = lab.leftovers(&uids, &pods);
        if left.is_empty() {
            Ok(String::new())
        } else {
            Err(left.join("; "))
        }
    });

    check!(
        out,
        "10 pods x 2, concurrently",
        async {
            let t = Instant::now();
            let mut cfgs = Vec::new();
            for i in 0..10 {
                let cfg = lab.pod_config(&format!("many{i}"), false);
                uids.push(
                    cfg.metadata
                        .as_ref()
                        .map(|m| m.uid.clone())
                        .unwrap_or_default(),
                );
                cfgs.push(cfg);
            }
            let mut tasks = Vec::new();
            for cfg in &cfgs {
                tasks.push(async move {
                    let pod = lab.run_pod(handler, cfg).await?;
                    let mut ids = Vec::new();
                    for n in ["one", "two"] {
                        ids.push(
                            lab.create_start(
                                &pod,
                                cfg,
                                lab.container_config(n, &["sleep", "100000"], 0, false),
                            )
                            .await?,
                        );
                    }
                    for id in &ids {
                        lab.wait_state(
                            id,
                            ContainerState::ContainerRunning,
                            Duration::from_secs(60),
                        )
                        .await?;
                    }
                    lab.remove_pod(&pod).await?;
                    Ok::<String, String>(pod)
                });
            }
            let results = futures_join_all(tasks).await;
            let mut errors = Vec::new();
            for r in results {
                match r {
                    Ok(p) => pods.push(p),
                    Err(e) => errors.push(e),
                }
            }
            ensure(errors.is_empty(), || errors.join("; "))?;
            let left = lab.leftovers(&uids, &pods);
            ensure(left.is_empty(), || format!("left: {}", left.join("; ")))?;
            Ok(format!("{} ms", t.elapsed().as_millis()))
        }
        .await
    );

    cleanup(lab, &mut out, &pods, &uids).await;
    out
}

/// `ctr` (no CRI) with husk's shim: what the kubelet does not use of the
/// task API — stdin, terminals, Pids, Pause/Resume, Metrics, Checkpoint,
/// exec with a terminal, and shims grouped by annotation.
fn ctr_checks(lab: &Lab) -> Outcomes {
    let mut out: Outcomes = Vec::new();
    let sock = lab.sock().display().to_string();
    let cfgpath = lab.dir.join("husk-shim.toml").display().to_string();
    // A namespace of our own: ctr puts containers in cgroup /<ns>/<id>.
    let ns = format!("hctr{}", std::process::id());
    lab.extra_cgroups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ns.clone());
    let ctr = |args: &[&str], stdin: Option<&str>| -> Result<(i32, String), String> {
        let mut c = std::process::Command::new("ctr");
        c.args(["--address", &sock, "-n", &ns]).args(args);
        bounded(c, stdin)
    };
    // Under script(1): a terminal for `-t`.
    let ctr_tty = |args: &str| -> Result<(i32, String), String> {
        let mut c = std::process::Command::new("script");
        c.args([
            "-qec",
            &format!("ctr --address {sock} -n {ns} {args}"),
            "/dev/null",
        ]);
        bounded(c, None)
    };
    let image = lab.dir.join("images/busybox.tar").display().to_string();
    let imported = ctr(&["images", "import", &image], None)
        .and_then(|(code, o)| ensure(code == 0, || format!("import: {o}")));
    if let Err(e) = imported {
        out.push(("import the image", Err(e)));
        return out;
    }
    let rt = format!("--runtime io.containerd.husk.v2 --runtime-config-path {cfgpath}");
    let rt: Vec<&str> = rt.split(' ').collect();
    let id = |p: &str| format!("{p}-{}", std::process::id());

    check!(
        out,
        "run: output, exit code",
        (|| {
            let mut args = vec!["run", "--rm"];
            args.extend(&rt);
            let n = id("exit");
            args.extend([BUSYBOX_IMAGE, &n, "sh", "-c", "echo out; exit 3"]);
            let (code, o) = ctr(&args, None)?;
            ensure(code == 3 && o.contains("out"), || {
                format!("exit {code}: {o:?}")
            })?;
            Ok(String::new())
        })()
    );
    check!(
        out,
        "stdin, CloseIO",
        (|| {
            let mut args = vec!["run", "--rm"];
            args.extend(&rt);
            let n = id("stdin");
            args.extend([BUSYBOX_IMAGE, &n, "sh", "-c", "cat; echo eof"]);
            let (code, o) = ctr(&args, Some("from-stdin\n"))?;
            ensure(
                code == 0 && o.contains("from-stdin") && o.contains("eof"),
                || format!("exit {code}: {o:?}"),
            )?;
            Ok(String::new())
        })()
    );
    check!(
        out,
        "terminal (run -t)",
        (|| {
            let n = id("tty");
            let (code, o) = ctr_tty(&format!(
                "run --rm -t {} {BUSYBOX_IMAGE} {n} sh -c 'tty; exit 4'",
                rt.join(" ")
            ))?;
            ensure(code == 4 && o.contains("/dev/pts/"), || {
                format!("exit {code}: {o:?}")
            })?;
            Ok(String::new())
        })()
    );
    let d = id("daemon");
    check!(
        out,
        "Pids, Pause/Resume, Metrics, exec, exec -t, Checkpoint",
        (|| {
            let mut args = vec!["run", "-d"];
            args.extend(&rt);
            args.extend([BUSYBOX_IMAGE, &d, "sleep", "100000"]);
            ctr(&args, None)?;
            let state = |want: &str| -> Result<(), String> {
                let (_, o) = ctr(&["task", "ls"], None)?;
                let line = o.lines().find(|l| l.starts_with(d.as_str())).unwrap_or("");
                ensure(line.contains(want), || {
                    format!("task ls: {line:?}, not {want}")
                })
            };
            state("RUNNING")?;
            let (_, ps) = ctr(&["task", "ps", &d], None)?;
            ensure(ps.lines().count() >= 2, || format!("task ps: {ps:?}"))?;
            ctr(&["task", "pause", &d], None)?;
            state("PAUSED")?;
            ctr(&["task", "resume", &d], None)?;
            state("RUNNING")?;
            let (_, m) = ctr(&["task", "metrics", &d], None)?;
            ensure(m.contains("memory") && m.contains("pids"), || {
                format!("metrics: {m:?}")
            })?;
            let (code, o) = ctr(
                &[
                    "task",
                    "exec",
                    "--exec-id",
                    "x1",
                    &d,
                    "sh",
                    "-c",
                    "echo in-exec; exit 5",
                ],
                None,
            )?;
            ensure(code == 5 && o.contains("in-exec"), || {
                format!("exec: exit {code}: {o:?}")
            })?;
            let (code, o) = ctr_tty(&format!(
                "task exec -t --exec-id x2 {d} sh -c 'tty; exit 2'"
            ))?;
            ensure(code == 2 && o.contains("/dev/pts/"), || {
                format!("exec -t: exit {code}: {o:?}")
            })?;
            let (code, o) = ctr(&["task", "checkpoint", &d], None)?;
            ensure(code != 0 && o.contains("not supported"), || {
                format!("checkpoint: exit {code}: {o:?}")
            })?;
            ctr(&["task", "kill", "-s", "KILL", &d], None)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while state("STOPPED").is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            state("STOPPED")?;
            Ok(String::new())
        })()
    );
    let _ = ctr(&["task", "rm", "-f", &d], None);
    let _ = ctr(&["container", "rm", &d], None);
    let (g1, g2) = (id("grouped1"), id("grouped2"));
    check!(
        out,
        "one shim for a group",
        (|| {
            let group = format!("io.containerd.husk.v2.group=g-{}", std::process::id());
            for n in [&g1, &g2] {
                let mut args = vec!["run", "-d", "--annotation", &group];
                args.extend(&rt);
                args.extend([BUSYBOX_IMAGE, n.as_str(), "sleep", "100000"]);
                ctr(&args, None)?;
            }
            let shims = pids()
                .into_iter()
                .filter(|p| {
                    let comm =
                        std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    comm.trim_end() == "containerd-shim"
                        && String::from_utf8_lossy(&cmd).contains(&sock)
                        && String::from_utf8_lossy(&cmd).contains(&format!("-namespace\0{ns}\0"))
                })
                .count();
            ensure(shims == 1, || {
                format!("{shims} shim processes for the group")
            })?;
            Ok(String::new())
        })()
    );
    for n in [&g1, &g2] {
        let _ = ctr(&["task", "kill", "-s", "KILL", n], None);
    }
    std::thread::sleep(Duration::from_millis(300));
    for n in [&g1, &g2] {
        let _ = ctr(&["task", "rm", "-f", n], None);
        let _ = ctr(&["container", "rm", n], None);
    }
    check!(out, "nothing left", {
        let mut left = lab.leftovers(&[], &[]);
        for top in cgroup_dirs(&ns) {
            if let Ok(rd) = std::fs::read_dir(&top) {
                for e in rd.flatten().filter(|e| e.path().is_dir()) {
                    left.push(format!("cgroup {}", e.path().display()));
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(lab.dir.join("husk-state").join(&ns)) {
            for e in rd.flatten() {
                left.push(format!("husk state {}", e.file_name().to_string_lossy()));
            }
        }
        if left.is_empty() {
            Ok(String::new())
        } else {
            Err(left.join("; "))
        }
    });
    out
}

/// Run a command (30 s at most); its exit code and output (both streams).
fn bounded(mut c: std::process::Command, stdin: Option<&str>) -> Result<(i32, String), String> {
    use std::io::Write as _;
    c.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("{c:?}: {e}"))?;
    if let (Some(text), Some(mut i)) = (stdin, child.stdin.take()) {
        let _ = i.write_all(text.as_bytes());
    }
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    let guard = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.load(std::sync::atomic::Ordering::SeqCst) {
            if Instant::now() > deadline {
                kill9(pid);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let o = child.wait_with_output().map_err(|e| e.to_string());
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = guard.join();
    let o = o?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok((o.status.code().unwrap_or(-1), text))
}

/// A pod of two `sleep` containers, for the checks that kill its shim or
/// boot: its id, its containers' ids and the pid of its pause process. Its
/// uid and id are recorded for cleanup as soon as they exist.
async fn sleeping_pod(
    lab: &Lab,
    handler: &str,
    name: &str,
    uids: &mut Vec<String>,
    pods: &mut Vec<String>,
) -> Result<(String, Vec<String>, i32), String> {
    let cfg = lab.pod_config(name, false);
    let uid = cfg
        .metadata
        .as_ref()
        .map(|m| m.uid.clone())
        .unwrap_or_default();
    uids.push(uid.clone());
    let pod = lab.run_pod(handler, &cfg).await?;
    pods.push(pod.clone());
    let mut ids = Vec::new();
    for n in ["one", "two"] {
        ids.push(
            lab.create_start(
                &pod,
                &cfg,
                lab.container_config(n, &["sleep", "100000"], 0, false),
            )
            .await?,
        );
    }
    let marker = if lab.pause_is_busybox {
        "sleep"
    } else {
        "pause"
    };
    let pause = lab.process_of(&uid, &pod, marker)?;
    Ok((pod, ids, pause))
}

/// The nearest ancestor of `pid` (comm, command line) that `is` says yes to.
fn ancestor(pid: i32, is: impl Fn(&str, &str) -> bool) -> Option<i32> {
    let mut p = pid;
    for _ in 0..16 {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let ppid: i32 = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
        if ppid <= 1 {
            return None;
        }
        let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if is(comm.trim_end(), &cmd) {
            return Some(ppid);
        }
        p = ppid;
    }
    None
}

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Run futures concurrently on the current task, in order of their results.
async fn futures_join_all<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = fs.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// After a failure: remove what the handler left, and say what it was.
async fn cleanup(lab: &Lab, out: &mut Outcomes, pods: &[String], uids: &[String]) {
    let failed = out.iter().any(|(_, r)| r.is_err());
    if failed {
        lab.remove_all_pods().await;
        let left = lab.leftovers(uids, pods);
        if !left.is_empty() {
            out.push(("left after the failure", Err(left.join("; "))));
        }
    }
}

#[test]
fn cri_pods_for_each_handler() {
    if let Some(why) = missing() {
        say(&format!("SKIPPED: {why}"));
        return;
    }
    let handlers: Vec<String> = match std::env::var("HUSK_CRI_HANDLERS") {
        Ok(v) => v.split(',').map(String::from).collect(),
        Err(_) => HANDLERS.iter().map(|s| s.to_string()).collect(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let rows = rt.block_on(async {
        let lab = match tokio::time::timeout(
            Duration::from_secs(120),
            Lab::start(
                "cri",
                LabOptions {
                    shim_debug: true,
                    timed: false,
                },
            ),
        )
        .await
        {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => panic!("the lab did not start: {e}"),
            Err(_) => panic!("the lab did not start in 120 s"),
        };
        let deadline = Instant::now() + LIMIT;
        let mut rows = Vec::new();
        for h in &handlers {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = match tokio::time::timeout(left, scenario(&lab, h)).await {
                Ok(r) => r,
                Err(_) => vec![("time", Err(format!("over {}s in all", LIMIT.as_secs())))],
            };
            say(&format!(
                "{h}: {} checks, {} failed",
                r.len(),
                r.iter().filter(|(_, r)| r.is_err()).count()
            ));
            rows.push((h.clone(), r));
        }
        if handlers.iter().any(|h| h == "husk") {
            let r = ctr_checks(&lab);
            say(&format!(
                "husk (ctr): {} checks, {} failed",
                r.len(),
                r.iter().filter(|(_, r)| r.is_err()).count()
            ));
            rows.push(("husk (ctr)".into(), r));
        }
        rows
    });
    let t = table(&rows);
    say(&t);
    let failed: Vec<String> = rows
        .iter()
        .flat_map(|(h, o)| {
            o.iter()
                .filter(|(_, r)| r.is_err())
                .map(move |(n, _)| format!("[{h}] {n}"))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} check(s) failed: {}",
        failed.len(),
        failed.join(", ")
    );
}

//! OCI hooks: run each hook of a stage with its args and env, the container
//! state JSON on stdin, and its timeout.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Error, Result};
use crate::state::OciState;
use husk_sys::process::{pidfd_open, pidfd_wait_exit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::CreateContainer => "createContainer",
            Stage::StartContainer => "startContainer",
            Stage::Poststart => "poststart",
            Stage::Poststop => "poststop",
        }
    }

    pub fn hooks(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            #[allow(deprecated)]
            Stage::Prestart => hooks.prestart(),
            Stage::CreateRuntime => hooks.create_runtime(),
            Stage::CreateContainer => hooks.create_container(),
            Stage::StartContainer => hooks.start_container(),
            Stage::Poststart => hooks.poststart(),
            Stage::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// Whether any hook is configured for `stage`.
pub fn has(hooks: Option<&Hooks>, stage: Stage) -> bool {
    hooks.is_some_and(|h| !stage.hooks(h).is_empty())
}

/// Run every hook of `stage` in order; the first failure stops the stage.
pub fn run(hooks: Option<&Hooks>, stage: Stage, state: &OciState) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let list = stage.hooks(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).map_err(|e| Error::Invalid(e.to_string()))?;
    for (i, hook) in list.iter().enumerate() {
        run_one(hook, &input).map_err(|msg| {
            Error::Invalid(format!(
                "{} hook #{i} ({}): {msg}",
                stage.name(),
                hook.path().display()
            ))
        })?;
    }
    Ok(())
}

/// Run the hooks of a stage whose failures are only logged.
pub fn run_logged(hooks: Option<&Hooks>, stage: Stage, state: &OciState) {
    if let Err(e) = run(hooks, stage, state) {
        tracing::warn!("{e}");
    }
}

/// An anonymous in-memory file: hooks read their input from one and write
/// their output to another, so no pipe can fill up and stall either side,
/// and a hook's leftover child holding its output does not keep us waiting.
fn memfile(name: &std::ffi::CStr, contents: &[u8]) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom};
    let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(contents)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

fn run_one(hook: &Hook, input: &[u8]) -> std::result::Result<(), String> {
    let err = |e: std::io::Error| crate::error::errno_text(&e);
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let stdin = memfile(c"husk-hook-state", input).map_err(err)?;
    let out = memfile(c"husk-hook-output", b"").map_err(err)?;
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out.try_clone().map_err(err)?))
        .stderr(Stdio::from(out.try_clone().map_err(err)?));
    let mut child = cmd.spawn().map_err(err)?;
    let pidfd = pidfd_open(nix::unistd::Pid::from_raw(child.id() as i32)).ok();
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    if let (Some(deadline), Some(pidfd)) = (deadline, pidfd.as_ref()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let exited = pidfd_wait_exit(pidfd.as_fd(), left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(true);
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "timed out after {}s",
                hook.timeout().unwrap_or_default()
            ));
        }
    }
    let status = child.wait().map_err(err)?;
    if status.success() {
        return Ok(());
    }
    let mut msg = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    // The last line the hook printed says best why it failed.
    let mut text = Vec::new();
    let len = out.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(4096);
    text.resize((len - start) as usize, 0);
    let _ = std::os::unix::fs::FileExt::read_exact_at(&out, &mut text, start);
    let text = String::from_utf8_lossy(&text);
    if let Some(line) = text.trim().lines().last() {
        msg.push_str(": ");
        msg.extend(line.chars().take(200));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks_json(v: serde_json::Value) -> Hooks {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_and_env() {
        let dir = std::env::temp_dir().join(format!("husk-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = hooks_json(serde_json::json!({
            "poststart": [{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("cat > {} && echo \"$FOO\" >> {}", out.display(), out.display())],
                "env": ["FOO=bar"]
            }]
        }));
        let st = OciState {
            id: "hk".into(),
            ..Default::default()
        };
        run(Some(&h), Stage::Poststart, &st).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("\"id\":\"hk\""), "{text}");
        assert!(text.ends_with("bar\n"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failing_hook_names_stage_and_reason() {
        let h = hooks_json(serde_json::json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]
        }));
        let err = run(Some(&h), Stage::CreateRuntime, &OciState::default())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "createRuntime hook #0 (/bin/sh): exit status 3: nope");
    }

    #[test]
    fn chatty_hook_with_a_lingering_child_does_not_stall() {
        // 200 KiB on stdout (more than a pipe holds), and a background child
        // that keeps the output open after the hook exits.
        let h = hooks_json(serde_json::json!({
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c",
                "head -c 204800 /dev/zero; (sleep 30 &) ; exit 0"]}]
        }));
        let t = Instant::now();
        run(Some(&h), Stage::Poststart, &OciState::default()).unwrap();
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn hook_timeout_kills_it() {
        let h = hooks_json(serde_json::json!({
            "prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]
        }));
        let t = Instant::now();
        let err = run(Some(&h), Stage::Prestart, &OciState::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out after 1s"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}

//! Which processes are Codex: the matching rules on a process's own name, executable path and
//! command line, and the short command summary shown for it (prompts and flags left out).

use std::ffi::OsString;
use std::path::Path;

use regex::Regex;
use sysinfo::Pid;

use crate::config::ProcessesConfig;

/// Characters kept of a process's command summary.
const COMMAND_CHARS: usize = 60;
/// What a process's own attributes say (ancestry aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMatch {
    /// Matched by name, executable path or command line.
    Codex,
    /// The npm `node …/codex` launcher.
    Wrapper,
}

/// The matching rules, compiled once.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub(super) names: Vec<String>,
    pub(super) exe_paths: Vec<String>,
    pub(super) cmdline: Option<Regex>,
    pub(super) npm_wrapper: bool,
    pub(super) ancestor_pid: Option<Pid>,
    pub(super) ancestor_names: Vec<String>,
    /// The agent's PID when its children are to be left out.
    pub(super) agent_pid: Option<Pid>,
}

/// Linux truncates comm to 15 bytes: compare a configured name the same way.
fn comm_of(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

impl Matcher {
    pub fn new(cfg: &ProcessesConfig) -> Result<Self, regex::Error> {
        Ok(Matcher {
            names: cfg.names.iter().map(|n| comm_of(n).to_string()).collect(),
            exe_paths: cfg.exe_paths.clone(),
            cmdline: cfg.cmdline_regex.as_deref().map(Regex::new).transpose()?,
            npm_wrapper: cfg.npm_wrapper,
            ancestor_pid: cfg.ancestor_pid.map(Pid::from_u32),
            ancestor_names: cfg
                .ancestor_names
                .iter()
                .map(|n| comm_of(n).to_string())
                .collect(),
            agent_pid: cfg
                .exclude_agent_children
                .then(|| Pid::from_u32(std::process::id())),
        })
    }

    /// Whether discovery must read command lines (only then are they kept in memory).
    pub fn needs_cmd(&self) -> bool {
        self.cmdline.is_some() || self.npm_wrapper
    }

    pub fn needs_exe(&self) -> bool {
        !self.exe_paths.is_empty()
    }

    pub(super) fn has_ancestor_rule(&self) -> bool {
        self.ancestor_pid.is_some() || !self.ancestor_names.is_empty()
    }

    /// The rules on the process's own name, executable and command line.
    pub fn own_match(&self, name: &str, exe: Option<&Path>, cmd: &[OsString]) -> Option<OwnMatch> {
        if self.names.iter().any(|n| n == name) {
            return Some(OwnMatch::Codex);
        }
        if let Some(exe) = exe.and_then(Path::to_str) {
            let hit = self.exe_paths.iter().any(|p| {
                if p.ends_with('/') {
                    exe.starts_with(p.as_str())
                } else {
                    exe == p
                }
            });
            if hit {
                return Some(OwnMatch::Codex);
            }
        }
        if let Some(re) = &self.cmdline {
            if !cmd.is_empty() && re.is_match(&join_cmd(cmd)) {
                return Some(OwnMatch::Codex);
            }
        }
        if self.npm_wrapper && is_npm_wrapper(name, cmd) {
            return Some(OwnMatch::Wrapper);
        }
        None
    }
}

/// `node /…/bin/codex.js …` or `node /…/.bin/codex …` (the npm shim, run through its
/// `#!/usr/bin/env node` line): the launcher of the native binary.
pub fn is_npm_wrapper(name: &str, cmd: &[OsString]) -> bool {
    if !(name == "node" || name == "nodejs") {
        return false;
    }
    let Some(script) = cmd.get(1).and_then(|s| s.to_str()) else {
        return false;
    };
    matches!(basename(script), "codex" | "codex.js")
}

fn join_cmd(cmd: &[OsString]) -> String {
    let mut s = String::new();
    for (i, part) in cmd.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&part.to_string_lossy());
    }
    s
}

/// Name and subcommand, never the rest: command lines carry prompts, paths and tokens.
pub fn command_summary(name: &str, wrapper: bool, cmd: &[OsString]) -> String {
    fn word(s: Option<&OsString>) -> Option<&str> {
        s.and_then(|s| s.to_str()).filter(|w| {
            !w.is_empty()
                && w.len() <= 24
                && w.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
    }
    let mut out = name.to_string();
    let (script, sub) = if wrapper {
        (
            cmd.get(1).and_then(|s| s.to_str()).map(basename),
            word(cmd.get(2)),
        )
    } else {
        (None, word(cmd.get(1)))
    };
    for part in [script, sub].into_iter().flatten() {
        out.push(' ');
        out.push_str(part);
    }
    out.chars().take(COMMAND_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(parts: &[&str]) -> Vec<OsString> {
        parts.iter().map(OsString::from).collect()
    }

    fn cfg() -> ProcessesConfig {
        ProcessesConfig::default()
    }

    #[test]
    fn default_rules_match_native_binary_and_npm_wrapper_only() {
        let m = Matcher::new(&cfg()).unwrap();
        assert_eq!(
            m.own_match("codex", None, &cmd(&["/x/bin/codex", "exec", "hi"])),
            Some(OwnMatch::Codex)
        );
        assert_eq!(
            m.own_match(
                "node",
                None,
                &cmd(&["node", "/app/node_modules/.bin/codex", "exec", "hi"])
            ),
            Some(OwnMatch::Wrapper)
        );
        assert_eq!(
            m.own_match(
                "node",
                None,
                &cmd(&[
                    "/usr/bin/node",
                    "/usr/lib/node_modules/@openai/codex/bin/codex.js"
                ])
            ),
            Some(OwnMatch::Wrapper)
        );
        // The application itself (a node server) and a codex-named file as data are not Codex.
        assert_eq!(
            m.own_match("node", None, &cmd(&["node", "server.js"])),
            None
        );
        assert_eq!(m.own_match("cat", None, &cmd(&["cat", "codex"])), None);
        assert_eq!(m.own_match("codex-helper", None, &[]), None);
    }

    #[test]
    fn long_names_compare_as_the_kernel_truncates_them() {
        let c = ProcessesConfig {
            names: vec!["codex-sentinel-worker".into()],
            ..cfg()
        };
        let m = Matcher::new(&c).unwrap();
        assert_eq!(
            m.own_match("codex-sentinel-", None, &[]),
            Some(OwnMatch::Codex)
        );
    }

    #[test]
    fn exe_paths_and_cmdline_regex() {
        let c = ProcessesConfig {
            names: vec![],
            npm_wrapper: false,
            exe_paths: vec!["/opt/codex/".into(), "/usr/bin/codex-exact".into()],
            cmdline_regex: Some(r"^python3 .*codex_shim\.py".into()),
            ..cfg()
        };
        let m = Matcher::new(&c).unwrap();
        let exe = |p: &str| m.own_match("x", Some(Path::new(p)), &[]);
        assert_eq!(exe("/opt/codex/bin/codex"), Some(OwnMatch::Codex));
        assert_eq!(exe("/usr/bin/codex-exact"), Some(OwnMatch::Codex));
        assert_eq!(exe("/usr/bin/codex-exactly"), None);
        assert_eq!(
            m.own_match(
                "python3",
                None,
                &cmd(&["python3", "/srv/codex_shim.py", "-v"])
            ),
            Some(OwnMatch::Codex)
        );
        assert_eq!(
            m.own_match("node", None, &cmd(&["node", "/x/.bin/codex"])),
            None,
            "wrapper rule off"
        );
    }

    #[test]
    fn command_summary_hides_prompts_and_flags() {
        assert_eq!(
            command_summary("codex", false, &cmd(&["/x/codex", "exec", "secret prompt"])),
            "codex exec"
        );
        assert_eq!(
            command_summary("codex", false, &cmd(&["/x/codex", "--api-key=sk-123"])),
            "codex"
        );
        assert_eq!(
            command_summary(
                "node",
                true,
                &cmd(&["node", "/a/node_modules/.bin/codex", "exec", "TOKEN=abc"])
            ),
            "node codex exec"
        );
    }
}

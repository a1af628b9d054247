//! Clean-up that happens even when the test process is killed.
//!
//! Drop does not run for statics (the shared PostgreSQL cluster) nor when a test binary is killed
//! (a CI timeout, Ctrl-C). A small shell waits for end-of-file on a pipe whose only writer is this
//! process; the kernel closes that pipe however the process ends, and the shell then runs the
//! clean-up. (The pipe's write end is close-on-exec, so no other child keeps it open.)

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};

pub struct ExitGuard {
    shell: Child,
    pipe: Option<ChildStdin>,
}

impl ExitGuard {
    /// Runs `action` (a shell command) through `sh`, a `Command` for the shell (so the caller
    /// chooses the user it runs as), when this process ends or the guard is fired or dropped.
    pub fn spawn(mut sh: Command, action: &str) -> Self {
        // Ctrl-C, a closed terminal and `timeout` signal the whole process group: the guard
        // ignores them, outlives the test process and then acts.
        let script = format!(
            "trap '' INT HUP TERM; read -r word; [ \"$word\" = cancel ] || {{ {action}; }}"
        );
        let mut shell = sh
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh starts");
        let pipe = shell.stdin.take();
        Self { shell, pipe }
    }

    /// Runs the clean-up now and waits until it is done.
    pub fn fire(mut self) {
        self.finish(None);
    }

    /// Ends the guard without running its clean-up.
    pub fn cancel(mut self) {
        self.finish(Some(b"cancel\n"));
    }

    fn finish(&mut self, word: Option<&[u8]>) {
        if let Some(mut pipe) = self.pipe.take() {
            if let Some(word) = word {
                let _ = pipe.write_all(word);
            }
            drop(pipe);
            let _ = self.shell.wait();
        }
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.finish(None);
    }
}

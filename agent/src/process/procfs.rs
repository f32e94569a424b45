//! Seeding the [`ProcessTree`] with the processes already running, from
//! `/proc`, so that the ancestry of processes started before the agent is
//! known too.
//!
//! For each `/proc/<pid>` it reads `stat` (parent, command name, process
//! group, session, terminal, start), `cmdline` (at most [`ARGS_MAX_BYTES`], as
//! the exec sensor does), the `exe` and `cwd` links, the inode and times of
//! the file `exe` leads to, the identity of the `root` directory, and `status`
//! (the real uid), then `stat` again: a process
//! that ended meanwhile, or whose pid was reused, is skipped and counted as
//! vanished. The links cannot be read for kernel threads and zombies, nor for
//! other users' processes without privileges; they are then left empty.
//!
//! `stat` gives the start in clock ticks since boot (`sysconf(_SC_CLK_TCK)`,
//! usually 100 a second), which the kernel computes by rounding
//! `start_boottime` down. So a seeded process started somewhere within one
//! tick of its recorded start; the tree matches kernel events anywhere in that
//! tick (see [`ProcessTree::on_seed`]). The agent must see the host's `/proc`
//! and run in the host's time namespace for the two clocks to agree.

use std::{
    fs::{self, File},
    io::{self, Read},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use super::tree::{Args, ExeFile, ExecInfo, JobIds, ProcessTree, RootId};

/// The most bytes of `cmdline` read for each process: the exec sensor's
/// bound on argv.
pub const ARGS_MAX_BYTES: usize = 4096;

/// Why `/proc` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    /// The directory of processes could not be listed.
    #[error("cannot list processes in {path}")]
    List {
        /// The `/proc` directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The clock tick is unknown.
    #[error("sysconf(_SC_CLK_TCK) returned {value}, not a clock rate")]
    ClockTick {
        /// What sysconf returned.
        value: libc::c_long,
    },
    /// A file of one process could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A file of one process is not what the kernel writes.
    #[error("{path}: {what}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
    /// The process ended, or its pid was reused, while it was read.
    #[error("process {pid} ended while it was read")]
    Vanished {
        /// Its pid.
        pid: u32,
    },
}

impl ProcfsError {
    /// Whether this says the process is gone rather than unreadable.
    fn is_vanished(&self) -> bool {
        match self {
            Self::Vanished { .. } => true,
            Self::Read { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
                    || source.raw_os_error() == Some(libc::ESRCH)
            }
            _ => false,
        }
    }
}

/// What [`seed_from_proc`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedStats {
    /// Processes handed to the tree.
    pub seeded: u64,
    /// Processes that ended while they were read, skipped.
    pub vanished: u64,
    /// Processes whose files could not be read or made no sense, skipped
    /// (each logged at debug level).
    pub failed: u64,
}

/// The length of a clock tick of `/proc/<pid>/stat`, in nanoseconds.
pub fn clock_tick_ns() -> Result<u64, ProcfsError> {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    match u64::try_from(hz) {
        Ok(rate @ 1..=1_000_000_000) => Ok(1_000_000_000 / rate),
        _ => Err(ProcfsError::ClockTick { value: hz }),
    }
}

/// Adds every process under `proc_root` (normally `/proc`) to `tree` with
/// [`ProcessTree::on_seed`]; `now_ns` is the `CLOCK_BOOTTIME` now. Processes
/// already in the tree are left as they are. Processes that vanish or cannot
/// be read are skipped and counted; only a `proc_root` that cannot be listed
/// is an error.
pub fn seed_from_proc(
    tree: &mut ProcessTree,
    proc_root: &Path,
    now_ns: u64,
) -> Result<SeedStats, ProcfsError> {
    let tick_ns = clock_tick_ns()?;
    let list_error = |source| ProcfsError::List {
        path: proc_root.to_owned(),
        source,
    };
    let mut stats = SeedStats::default();
    for dirent in fs::read_dir(proc_root).map_err(list_error)? {
        let dirent = dirent.map_err(list_error)?;
        let name = dirent.file_name();
        let Some(pid) = name.to_str().and_then(parse_pid) else {
            continue;
        };
        match read_process(&dirent.path(), pid, tick_ns) {
            Ok(process) => {
                tree.on_seed(process, tick_ns, now_ns);
                stats.seeded += 1;
            }
            Err(error) if error.is_vanished() => stats.vanished += 1,
            Err(error) => {
                tracing::debug!(pid, error = %error, "skipping a process in /proc");
                stats.failed += 1;
            }
        }
    }
    Ok(stats)
}

/// Adds one process to the tree from `/proc/PID`, for a process the tree
/// never saw start (it forked outside the observed cgroups, or before an
/// event was lost). Returns whether it could be read.
pub fn seed_one(tree: &mut ProcessTree, proc_root: &Path, pid: u32, now_ns: u64) -> bool {
    let Ok(tick_ns) = clock_tick_ns() else {
        return false;
    };
    match read_process(&proc_root.join(pid.to_string()), pid, tick_ns) {
        Ok(process) => {
            tree.on_seed(process, tick_ns, now_ns);
            true
        }
        Err(error) => {
            tracing::debug!(pid, error = %error, "cannot read a process the tree does not know");
            false
        }
    }
}

fn parse_pid(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn read_process(dir: &Path, pid: u32, tick_ns: u64) -> Result<ExecInfo, ProcfsError> {
    let stat_path = dir.join("stat");
    let stat = read_stat(&stat_path)?;
    let args = read_cmdline(&dir.join("cmdline"))?;
    let exe = read_link(&dir.join("exe"));
    let cwd = read_link(&dir.join("cwd"));
    let uid = read_uid(&dir.join("status"))?;
    let exe_file = fs::metadata(dir.join("exe")).ok().map(|m| exe_file(&m));
    let root = root_id(&dir.join("root"));
    if read_stat(&stat_path)?.start_ticks != stat.start_ticks {
        return Err(ProcfsError::Vanished { pid });
    }
    let start_ns = stat
        .start_ticks
        .checked_mul(tick_ns)
        .ok_or(ProcfsError::Parse {
            path: stat_path,
            what: "start time out of range",
        })?;
    Ok(ExecInfo {
        pid,
        ppid: stat.ppid,
        start_ns,
        comm: stat.comm,
        exe: exe.into(),
        args: Args::new(args),
        cwd: cwd.into(),
        uid,
        job: JobIds {
            pgid: stat.pgrp,
            sid: stat.session,
            tty: stat.tty_nr,
        },
        exe_file,
        root,
    })
}

/// The inode and times of a file, as an exec event gives them for its
/// executable.
pub fn exe_file(metadata: &fs::Metadata) -> ExeFile {
    let ns = |sec: i64, nsec: i64| sec.saturating_mul(1_000_000_000).saturating_add(nsec);
    ExeFile {
        ino: metadata.ino(),
        mtime_ns: ns(metadata.mtime(), metadata.mtime_nsec()),
        ctime_ns: ns(metadata.ctime(), metadata.ctime_nsec()),
    }
}

/// The identity of the directory `path` leads to (such as `/proc/PID/root`);
/// `None` when it cannot be reached.
pub fn root_id(path: &Path) -> Option<RootId> {
    fs::metadata(path).ok().map(|m| RootId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// What `stat` tells.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    comm: String,
    ppid: u32,
    /// Process group id, in the PID namespace of this `/proc`.
    pgrp: u32,
    /// Session id, likewise.
    session: u32,
    /// Controlling terminal in `new_encode_dev` form; 0 for none.
    tty_nr: u32,
    start_ticks: u64,
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`'s
/// `starttime`); with the pid it names one process.
pub fn start_ticks(proc_root: &Path, pid: u32) -> Result<u64, ProcfsError> {
    read_stat(&proc_root.join(pid.to_string()).join("stat")).map(|stat| stat.start_ticks)
}

fn read_file(path: &Path) -> Result<Vec<u8>, ProcfsError> {
    fs::read(path).map_err(|source| ProcfsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `pid (comm) state ppid … starttime …`, where comm may hold spaces and
/// parentheses, so the fields start after the last `)`.
fn read_stat(path: &Path) -> Result<Stat, ProcfsError> {
    let bytes = read_file(path)?;
    parse_stat(&String::from_utf8_lossy(&bytes)).map_err(|what| ProcfsError::Parse {
        path: path.to_owned(),
        what,
    })
}

fn parse_stat(text: &str) -> Result<Stat, &'static str> {
    let open = text.find('(').ok_or("no command name")?;
    let close = text.rfind(')').ok_or("no command name")?;
    let comm = text.get(open + 1..close).ok_or("no command name")?;
    let rest = text.get(close + 1..).unwrap_or_default();
    // Fields counted from 3 (state): ppid is field 4, pgrp 5, session 6,
    // tty_nr 7, starttime 22.
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(20).collect();
    let number = |index: usize, what| {
        fields
            .get(index)
            .and_then(|f| f.parse::<u32>().ok())
            .ok_or(what)
    };
    let ppid = number(1, "no parent pid")?;
    let pgrp = number(2, "no process group")?;
    let session = number(3, "no session")?;
    // Printed as a signed int; the bits are the device number.
    let tty_nr = fields
        .get(4)
        .and_then(|f| f.parse::<i32>().ok())
        .map(|n| n as u32)
        .ok_or("no terminal")?;
    let start_ticks = fields
        .get(19)
        .and_then(|f| f.parse().ok())
        .ok_or("no start time")?;
    Ok(Stat {
        comm: comm.to_owned(),
        ppid,
        pgrp,
        session,
        tty_nr,
        start_ticks,
    })
}

/// argv, NUL-separated; at most [`ARGS_MAX_BYTES`], keeping a cut last
/// argument as the exec sensor does. Empty for kernel threads and zombies.
fn read_cmdline(path: &Path) -> Result<Vec<String>, ProcfsError> {
    let read_error = |source| ProcfsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(read_error)?
        .take(ARGS_MAX_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(bytes
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect())
}

/// The target of `exe` or `cwd`; empty when it cannot be read.
fn read_link(path: &Path) -> String {
    fs::read_link(path)
        .map(|target| target.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The real uid: the first number of the `Uid:` line of `status`.
fn read_uid(path: &Path) -> Result<u32, ProcfsError> {
    let bytes = read_file(path)?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_ascii_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .ok_or_else(|| ProcfsError::Parse {
            path: path.to_owned(),
            what: "no Uid line",
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::process::TreeLimits;

    /// A directory under the system's temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("guardrails-procfs-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("create the temp dir");
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    struct FakeProcess<'a> {
        pid: u32,
        ppid: u32,
        comm: &'a str,
        start_ticks: u64,
        cmdline: &'a [u8],
        exe: Option<&'a str>,
        cwd: &'a str,
        uid: u32,
    }

    fn write(root: &Path, p: &FakeProcess<'_>) {
        let dir = root.join(p.pid.to_string());
        fs::create_dir_all(&dir).expect("create the pid dir");
        let stat = format!(
            "{} ({}) S {} 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {} 1000000 100 18446744073709551615\n",
            p.pid, p.comm, p.ppid, p.start_ticks
        );
        fs::write(dir.join("stat"), stat).expect("write stat");
        fs::write(dir.join("cmdline"), p.cmdline).expect("write cmdline");
        let status = format!(
            "Name:\t{}\nState:\tS (sleeping)\nUid:\t{}\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
            p.comm, p.uid
        );
        fs::write(dir.join("status"), status).expect("write status");
        if let Some(exe) = p.exe {
            symlink(exe, dir.join("exe")).expect("link exe");
        }
        symlink(p.cwd, dir.join("cwd")).expect("link cwd");
    }

    #[test]
    fn seeding_a_fake_proc_builds_the_right_parents_and_skips_a_vanished_pid() {
        let root = TempDir::new("fake");
        let tick = clock_tick_ns().expect("a clock tick");
        let processes = [
            FakeProcess {
                pid: 1,
                ppid: 0,
                comm: "systemd",
                start_ticks: 1,
                cmdline: b"/sbin/init\0splash\0",
                exe: Some("/usr/lib/systemd/systemd"),
                cwd: "/",
                uid: 0,
            },
            FakeProcess {
                pid: 2,
                ppid: 0,
                comm: "kthreadd",
                start_ticks: 1,
                cmdline: b"",
                exe: None,
                cwd: "/",
                uid: 0,
            },
            FakeProcess {
                pid: 100,
                ppid: 1,
                comm: "bash",
                start_ticks: 500,
                cmdline: b"-bash\0",
                exe: Some("/usr/bin/bash"),
                cwd: "/home/ada",
                uid: 1000,
            },
            FakeProcess {
                pid: 200,
                ppid: 100,
                comm: "my (odd) app",
                start_ticks: 700,
                cmdline: b"./app\0--port\0 80\0",
                exe: Some("/opt/app/bin/app"),
                cwd: "/opt/app",
                uid: 1000,
            },
        ];
        for p in &processes {
            write(&root.0, p);
        }
        // Ended between the listing and the reads: its directory is empty.
        fs::create_dir_all(root.0.join("77")).expect("create 77");
        // Not what the kernel writes.
        fs::create_dir_all(root.0.join("88")).expect("create 88");
        fs::write(root.0.join("88/stat"), "88 (x S").expect("write stat");
        // Not processes.
        fs::create_dir_all(root.0.join("sys")).expect("create sys");
        symlink("100", root.0.join("self")).expect("link self");

        let mut tree = ProcessTree::new(TreeLimits::default());
        let stats = seed_from_proc(&mut tree, &root.0, 0).expect("seeds");
        assert_eq!(
            stats,
            SeedStats {
                seeded: 4,
                vanished: 1,
                failed: 1
            }
        );
        assert_eq!(tree.len(), 4);

        // A kernel event names the app with its exact start, inside tick 700.
        let exact = 700 * tick + tick / 2;
        let app = tree.get(200, exact).expect("the app");
        assert_eq!(
            (app.ppid, app.comm(), app.exe(), app.cwd(), app.uid),
            (100, "my (odd) app", "/opt/app/bin/app", "/opt/app", 1000)
        );
        assert_eq!(app.args(), &["./app", "--port", " 80"][..]);
        assert_eq!(app.start_ns, 700 * tick);

        let ancestors = tree.ancestors(200, exact, 10);
        let summary: Vec<_> = ancestors
            .iter()
            .map(|a| (a.pid, a.comm(), a.exe(), a.args().to_vec()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (100, "bash", "/usr/bin/bash", vec!["-bash".to_owned()]),
                (
                    1,
                    "systemd",
                    "/usr/lib/systemd/systemd",
                    vec!["/sbin/init".to_owned(), "splash".to_owned()]
                ),
            ]
        );

        let kthreadd = tree.get(2, tick).expect("kthreadd");
        assert_eq!((kthreadd.exe(), kthreadd.args().len()), ("", 0));
        assert!(tree.get(77, 0).is_none());
    }

    #[test]
    fn a_long_cmdline_is_cut_at_the_sensors_bound() {
        let root = TempDir::new("long");
        let long = vec![b'x'; ARGS_MAX_BYTES * 2];
        write(
            &root.0,
            &FakeProcess {
                pid: 5,
                ppid: 1,
                comm: "x",
                start_ticks: 3,
                cmdline: &long,
                exe: Some("/x"),
                cwd: "/",
                uid: 0,
            },
        );
        let mut tree = ProcessTree::new(TreeLimits::default());
        seed_from_proc(&mut tree, &root.0, 0).expect("seeds");
        let p = tree.generations(5).next().expect("seeded");
        assert_eq!(p.args().get(0).map(str::len), Some(ARGS_MAX_BYTES));
    }

    #[test]
    fn stat_gives_the_group_session_and_terminal_even_with_odd_command_names() {
        let line = "4242 (a) b (c)) S 4200 4242 4100 34817 4242 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987 1000 10 1";
        assert_eq!(
            parse_stat(line),
            Ok(Stat {
                comm: "a) b (c)".into(),
                ppid: 4200,
                pgrp: 4242,
                session: 4100,
                tty_nr: 34817,
                start_ticks: 987,
            })
        );
        // A terminal number with the top bit set is printed negative.
        let high = "1 (x) S 0 1 1 -2147483647 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(high).map(|s| s.tty_nr), Ok(0x8000_0001));
        assert_eq!(parse_stat("1 (x) S 0 1"), Err("no session"));
        assert_eq!(parse_stat("1 x S"), Err("no command name"));
    }

    #[test]
    fn listing_a_missing_proc_root_is_an_error_that_names_it() {
        let mut tree = ProcessTree::new(TreeLimits::default());
        let error = seed_from_proc(&mut tree, Path::new("/nonexistent/proc"), 0)
            .expect_err("no such directory");
        assert_eq!(
            error.to_string(),
            "cannot list processes in /nonexistent/proc"
        );
    }

    #[test]
    fn seeding_the_real_proc_finds_this_test_process_and_its_ancestors() {
        let mut tree = ProcessTree::new(TreeLimits::default());
        let stats = seed_from_proc(&mut tree, Path::new("/proc"), 0).expect("seeds /proc");
        assert!(stats.seeded >= 2, "{stats:?}");

        let me = tree
            .generations(std::process::id())
            .next_back()
            .expect("this process is in the tree");
        let exe = std::env::current_exe().expect("the test binary");
        assert_eq!(Path::new(me.exe()), exe);
        let file_name = exe
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a file name");
        assert!(file_name.starts_with(me.comm()), "{}", me.comm());
        assert!(me.args().get(0).is_some());
        // SAFETY: getpgrp and getsid have no preconditions.
        let (pgrp, sid) = unsafe { (libc::getpgrp(), libc::getsid(0)) };
        assert_eq!(
            (i64::from(me.job.pgid), i64::from(me.job.sid)),
            (i64::from(pgrp), i64::from(sid))
        );
        let file = fs::metadata(&exe).expect("stat the test binary");
        let seen = me.image.exe_file().expect("the exe's inode and times");
        assert_eq!(seen, exe_file(&file));
        assert_eq!(me.image.root(), root_id(Path::new("/")));

        let ancestors = tree.ancestors(me.pid, me.start_ns, 64);
        assert_eq!(
            ancestors.first().map(|a| a.pid),
            Some(std::os::unix::process::parent_id())
        );
        let root = ancestors.last().expect("at least the parent");
        let root = tree.get(root.pid, root.start_ns).expect("the root");
        assert!(
            root.pid == 1 || root.ppid == 0,
            "the walk ends at the root of the pid namespace: {root:?}"
        );
    }
}

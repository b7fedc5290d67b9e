//! `cargo xtask slurm-test`: the shipped Slurm job scripts run on a real one-node cluster.
//!
//! It starts munge and a one-node Slurm cluster (`slurmctld`, `slurmd`) in a temporary folder,
//! with a private configuration (`SLURM_CONF`, a private munge socket and key, ports picked
//! free), so a system cluster is never touched; it refuses to start while any Slurm daemon is
//! already running. Then it submits `deploy/slurm/explain-array.sbatch` as a 4-task array job
//! over 40 test images with one shard's output blocked (that task must fail, naming its shard),
//! checks that `merge.sbatch` names the missing shard, resubmits the array (only the missing
//! shard may be computed), merges, and compares the merged file with one local run, bit for
//! bit. Every daemon it started is stopped by pid when it ends, whatever happened (a guard's
//! `Drop`, also on a panic or Ctrl-C), and every wait has a time limit.
//!
//! It needs Debian's `slurmd slurmctld slurm-client munge` and root (the daemons run as root,
//! munged as `munge`); without them it says why and counts as skipped, never as passed.

use crate::sh;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Images explained (test indices `0..IMAGES`) and array tasks.
const IMAGES: usize = 40;
const SHARDS: usize = 4;
/// The shard whose output is blocked in the first submission.
const BROKEN: usize = 2;
/// Limits: a daemon to become ready, one array job (all its tasks), one client command.
const START_LIMIT: Duration = Duration::from_secs(30);
const JOB_LIMIT: Duration = Duration::from_secs(300);
const COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// Programs the test runs (Debian packages `munge`, `slurmctld`, `slurmd`, `slurm-client`;
/// `setpriv` is util-linux's).
const PROGRAMS: [&str; 11] = [
    "munged",
    "munge",
    "unmunge",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sinfo",
    "squeue",
    "scontrol",
    "scancel",
    "setpriv",
];

/// Why the test cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    if !Path::new("/etc/debian_version").is_file() {
        return Some(
            "not a Debian system (the test uses Debian's Slurm and munge packages)".into(),
        );
    }
    if !sh::is_root() {
        return Some("not root (slurmd and munged must be started as root)".into());
    }
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|p| !on_path_or_sbin(p))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "{} not installed (apt-get install -y slurmd slurmctld slurm-client munge)",
            missing.join(", ")
        ));
    }
    None
}

fn on_path_or_sbin(program: &str) -> bool {
    sh::on_path(program) || Path::new("/usr/sbin").join(program).is_file()
}

/// `cargo xtask test`'s step: run the test, print one line, say whether it passed (`false`
/// when skipped).
pub fn test_step() -> Result<bool> {
    eprintln!("==> cargo xtask slurm-test (a Slurm array job on a one-node cluster)");
    if let Some(why) = cannot_run() {
        eprintln!("    SKIPPED (not passed): {why}");
        return Ok(false);
    }
    run_test()?;
    Ok(true)
}

/// `cargo xtask slurm-test`.
pub fn run() -> Result<()> {
    test_step().map(|_| ())
}

fn run_test() -> Result<()> {
    sh::catch_interrupts();
    refuse_running_daemons()?;
    let cli = sh::build_cli(&[])?;
    let dir = std::env::temp_dir().join(format!("shap-slurm-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    set_mode(&dir, 0o755)?;
    let result = Cluster::start(&dir).and_then(|cluster| scenario(&cluster, &cli, &dir));
    // Keep the folder (logs, parts) when something failed; messages point into it.
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result.with_context(|| {
        format!(
            "slurm-test failed (logs and parts kept in {})",
            dir.display()
        )
    })
}

/// Refuse while any Slurm daemon runs here: it may be a real cluster's.
fn refuse_running_daemons() -> Result<()> {
    for entry in std::fs::read_dir("/proc")?.filter_map(|e| e.ok()) {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if matches!(comm.trim(), "slurmctld" | "slurmd" | "slurmstepd") {
            bail!(
                "a Slurm daemon is already running here ({} pid {}): slurm-test starts its own \
                 one-node cluster and never shares a machine with another; stop it first",
                comm.trim(),
                entry.file_name().to_string_lossy()
            );
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// A daemon this test started, with the log its messages go to.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// The one-node cluster; dropping it stops every daemon it started, by pid.
struct Cluster {
    dir: PathBuf,
    daemons: Vec<Daemon>,
}

impl Cluster {
    /// munged, then slurmctld, then slurmd, each waited for.
    fn start(dir: &Path) -> Result<Cluster> {
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            daemons: Vec::new(),
        };
        cluster.start_munge()?;
        write_config(dir, &cluster.munge_socket())?;
        let conf = cluster.conf();
        let mut ctld = Command::new(sbin("slurmctld"));
        ctld.args(["-D", "-c", "-f"]).arg(&conf);
        cluster.spawn("slurmctld", ctld, dir.join("slurmctld.log"))?;
        cluster.wait_for("starting slurmctld", "slurmctld", |c| {
            Ok(c.capture("scontrol", &["ping"])?.contains("is UP"))
        })?;
        let mut slurmd = Command::new(sbin("slurmd"));
        slurmd.args(["-D", "-f"]).arg(&conf);
        cluster.spawn("slurmd", slurmd, dir.join("slurmd.log"))?;
        cluster.wait_for(
            "starting slurmd (the node must become idle)",
            "slurmd",
            |c| Ok(c.capture("sinfo", &["-h", "-o", "%T"])?.trim() == "idle"),
        )?;
        eprintln!("    slurm-test: one-node cluster up ({})", dir.display());
        Ok(cluster)
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    fn munge_socket(&self) -> PathBuf {
        self.dir.join("munge").join("munge.socket")
    }

    /// A private key and socket; munged runs as the `munge` user, as Debian's
    /// service does.
    fn start_munge(&mut self) -> Result<()> {
        let dir = self.dir.join("munge");
        std::fs::create_dir_all(&dir)?;
        let key = dir.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        std::fs::write(&key, &bytes)?;
        set_mode(&key, 0o400)?;
        set_mode(&dir, 0o755)?;
        sh::run(Command::new("chown").args(["-R", "munge:munge"]).arg(&dir))
            .context("giving the munge key to the munge user")?;
        let log = dir.join("munged.log");
        let mut c = Command::new("setpriv");
        c.args(["--reuid=munge", "--regid=munge", "--init-groups"])
            .arg(sbin("munged"))
            .arg("--foreground")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", self.munge_socket().display()))
            .arg(format!("--pid-file={}", dir.join("munged.pid").display()))
            .arg(format!("--seed-file={}", dir.join("munged.seed").display()))
            .arg(format!("--log-file={}", log.display()));
        self.spawn("munged", c, log)?;
        let socket = self.munge_socket();
        self.wait_for("starting munged", "munged", move |_| munge_works(&socket))
    }

    /// Start a daemon in its own process group (the terminal's Ctrl-C reaches xtask, whose
    /// guard stops it), its output appended to `<name>.out` in the folder.
    fn spawn(&mut self, name: &'static str, mut cmd: Command, log: PathBuf) -> Result<()> {
        let out = std::fs::File::create(self.dir.join(format!("{name}.out")))?;
        cmd.env("SLURM_CONF", self.conf())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: could not run {cmd:?}"))?;
        eprintln!("    slurm-test: started {name} (pid {})", child.id());
        self.daemons.push(Daemon { name, child, log });
        Ok(())
    }

    /// Poll `ready` until it holds, at most [`START_LIMIT`]; fail naming the step and the
    /// daemon's log when a daemon exits or time runs out.
    fn wait_for(
        &mut self,
        step: &str,
        daemon: &str,
        mut ready: impl FnMut(&Cluster) -> Result<bool>,
    ) -> Result<()> {
        let t0 = Instant::now();
        let log = self.log_of(daemon);
        loop {
            if sh::interrupted() {
                bail!("{step}: interrupted");
            }
            for d in &mut self.daemons {
                if let Some(status) = d.child.try_wait()? {
                    bail!(
                        "{step}: {} exited ({status}); see {}",
                        d.name,
                        d.log.display()
                    );
                }
            }
            if ready(self).unwrap_or(false) {
                return Ok(());
            }
            if t0.elapsed() > START_LIMIT {
                bail!(
                    "{step}: not ready after {} s; see {} (and {})",
                    START_LIMIT.as_secs(),
                    log.display(),
                    self.dir.join(format!("{daemon}.out")).display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log_of(&self, daemon: &str) -> PathBuf {
        self.daemons
            .iter()
            .find(|d| d.name == daemon)
            .map(|d| d.log.clone())
            .unwrap_or_else(|| self.dir.join(format!("{daemon}.log")))
    }

    /// A Slurm client command against this cluster.
    fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf())
            .env_remove("SLURM_JOB_ID")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX");
        c
    }

    /// Run a client command under [`COMMAND_LIMIT`] and return its stdout (any exit status).
    fn capture(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut c = self.client(program);
        c.args(args).stderr(Stdio::null());
        let mut text = String::new();
        match sh::run_lines(&mut c, COMMAND_LIMIT, |l| {
            text.push_str(l);
            text.push('\n');
        })? {
            sh::Ended::Exited(_) => Ok(text),
            sh::Ended::TimedOut => {
                bail!("{program} {args:?} did not answer within {COMMAND_LIMIT:?}")
            }
        }
    }
}

impl Drop for Cluster {
    /// Cancel what still runs, stop the daemons in reverse order (SIGTERM by pid, SIGKILL after
    /// 10 s), then kill by pid whatever the cluster left behind (job steps and their processes,
    /// recognised by this cluster's `SLURM_CONF` in their environment).
    fn drop(&mut self) {
        if self.daemons.iter().any(|d| d.name == "slurmctld") {
            self.cancel_jobs();
        }
        while let Some(mut d) = self.daemons.pop() {
            let pid = d.child.id().to_string();
            let _ = Command::new("kill").args(["-s", "TERM", &pid]).status();
            let t0 = Instant::now();
            while matches!(d.child.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = d.child.kill();
            let _ = d.child.wait();
            eprintln!("    slurm-test: stopped {} (pid {pid})", d.name);
        }
        for pid in leftovers(&self.conf()) {
            let _ = Command::new("kill").args(["-s", "KILL", &pid]).status();
            eprintln!("    slurm-test: killed pid {pid}, left behind by the cluster");
        }
    }
}

impl Cluster {
    /// `scancel` every job, then wait (at most 15 s) until none is listed.
    fn cancel_jobs(&self) {
        if self
            .capture("squeue", &["-h"])
            .is_ok_and(|q| q.trim().is_empty())
        {
            return;
        }
        let _ = self.capture("scancel", &["--user=root"]);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if self
                .capture("squeue", &["-h"])
                .is_ok_and(|q| q.trim().is_empty())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Processes whose environment holds `SLURM_CONF=conf`: only this cluster's daemons, job
/// steps and jobs have it.
fn leftovers(conf: &Path) -> Vec<String> {
    let needle = format!("SLURM_CONF={}", conf.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn sbin(program: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(program);
    if p.is_file() {
        p
    } else {
        PathBuf::from(program)
    }
}

/// `munge -n | unmunge` through `socket` says `Success` (within [`COMMAND_LIMIT`]).
fn munge_works(socket: &Path) -> Result<bool> {
    let s = format!("--socket={}", socket.display());
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("munge -n \"$1\" | unmunge \"$1\"")
        .arg("sh")
        .arg(&s)
        .stderr(Stdio::null());
    let mut success = false;
    let ended = sh::run_lines(&mut c, COMMAND_LIMIT, |l| {
        success |= l.starts_with("STATUS:") && l.contains("Success");
    })?;
    Ok(success && matches!(ended, sh::Ended::Exited(s) if s.success()))
}

/// Two free TCP ports on this machine (bound to port 0, then released).
fn free_ports() -> Result<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// `slurm.conf` for one node with every path under `dir`.
fn write_config(dir: &Path, munge_socket: &Path) -> Result<()> {
    let host = sh::output(Command::new("hostname").arg("-s"))?
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (ctld_port, slurmd_port) = free_ports()?;
    for sub in ["state", "spool"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let d = dir.display();
    let conf = format!(
        "# slurm-test's private one-node cluster (cargo xtask slurm-test)\n\
         ClusterName=shaptest\nSlurmctldHost={host}\n\
         SlurmctldPort={ctld_port}\nSlurmdPort={slurmd_port}\n\
         SlurmUser=root\nSlurmdUser=root\n\
         AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={}\n\
         StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
         JobAcctGatherType=jobacct_gather/none\nMpiDefault=none\n\
         SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n\
         NodeName={host} CPUs={cpus} State=UNKNOWN\n\
         PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
        munge_socket.display()
    );
    std::fs::write(dir.join("slurm.conf"), conf)?;
    Ok(())
}

/// The job's inputs and where it writes.
struct Job<'a> {
    cluster: &'a Cluster,
    cli: &'a Path,
    model: PathBuf,
    work: PathBuf,
}

impl Job<'_> {
    fn parts(&self) -> PathBuf {
        self.work.join("parts")
    }

    fn part(&self, i: usize) -> PathBuf {
        self.parts().join(format!("part-{i}.npz"))
    }

    /// `sbatch --wait` of a shipped script with the job's settings; returns whether it
    /// succeeded and its job id.
    fn submit(&self, script: &str, extra: &[&str]) -> Result<(bool, String)> {
        let mut c = self.cluster.client("sbatch");
        c.args(["--parsable", "--wait"])
            .arg(format!("--chdir={}", self.work.display()))
            .args(extra)
            .arg(sh::repo_root().join("deploy").join("slurm").join(script))
            .env("MODEL", &self.model)
            .env("RANGE", format!("0..{IMAGES}"))
            .env("MASKER", "blur(28,28)")
            .env("OUT", self.parts())
            .env("SHARDS", SHARDS.to_string())
            .env("MERGED", self.work.join("merged.npz"))
            .env("SHAP_CLI", self.cli);
        let mut id = String::new();
        let ended = sh::run_lines(&mut c, JOB_LIMIT, |l| {
            if id.is_empty() {
                id = l.split(';').next().unwrap_or_default().trim().to_string();
            }
        })?;
        match ended {
            sh::Ended::Exited(status) if !id.is_empty() => Ok((status.success(), id)),
            sh::Ended::Exited(status) => bail!(
                "submitting {script}: sbatch printed no job id ({status}); see {}",
                self.cluster.dir.join("slurmctld.log").display()
            ),
            sh::Ended::TimedOut => bail!(
                "{script} (job {id}) did not finish within {} s; see {} and {}",
                JOB_LIMIT.as_secs(),
                self.cluster.dir.join("slurmd.log").display(),
                self.work.display()
            ),
        }
    }

    fn array(&self) -> Result<(bool, String)> {
        // One CPU per task, so the tasks share the node's CPUs.
        self.submit(
            "explain-array.sbatch",
            &[&format!("--array=0-{}", SHARDS - 1), "--cpus-per-task=1"],
        )
    }

    fn task_log(&self, job: &str, task: usize) -> PathBuf {
        self.work.join(format!("shap-explain-{job}_{task}.log"))
    }

    fn read_log(&self, path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()))
    }
}

/// One check that held.
fn ok(what: &str) {
    eprintln!("    slurm-test: ok  {what}");
}

fn scenario(cluster: &Cluster, cli: &Path, dir: &Path) -> Result<()> {
    let job = Job {
        cluster,
        cli,
        model: sh::repo_root().join("crates/shap-onnx/fixtures/tutorial.safetensors"),
        work: dir.join("job"),
    };
    std::fs::create_dir_all(job.parts())?;
    first_run_fails_naming_the_shard(&job)?;
    let kept = rerun_redoes_only_the_missing_shard(&job)?;
    merged_equals_one_local_run(&job)?;
    for (i, before) in kept {
        if snapshot(&job.part(i))? != before {
            bail!("part {i} changed after the merge");
        }
    }
    Ok(())
}

/// Shard [`BROKEN`]'s output is a directory (an output that cannot be written): its task
/// fails naming the shard, the others finish, and the merge names the missing shard.
fn first_run_fails_naming_the_shard(job: &Job<'_>) -> Result<()> {
    std::fs::create_dir_all(job.part(BROKEN))?;
    let (success, id) = job.array()?;
    let log = job.task_log(&id, BROKEN);
    let text = job.read_log(&log);
    let named = format!("shard {BROKEN}/{SHARDS}");
    if success || !text.contains(&named) {
        bail!(
            "array job {id} with shard {BROKEN}'s output blocked: expected sbatch to fail and {} to name {named:?}; it {} and the log says: {text}",
            log.display(),
            if success { "succeeded" } else { "failed" }
        );
    }
    ok(&format!(
        "a failed task exits non-zero naming its shard ({})",
        text.lines().last().unwrap_or_default()
    ));
    for i in (0..SHARDS).filter(|&i| i != BROKEN) {
        if !job.part(i).is_file() {
            bail!(
                "task {i} wrote no {}; see {}",
                job.part(i).display(),
                job.task_log(&id, i).display()
            );
        }
    }
    let (merged, mid) = job.submit("merge.sbatch", &[])?;
    let log = job.work.join(format!("shap-merge-{mid}.log"));
    let text = job.read_log(&log);
    if merged || !text.contains(&format!("shard(s) {BROKEN} of {SHARDS}")) {
        bail!(
            "merge with part {BROKEN} missing: expected a failure naming shard {BROKEN} in {}: {text}",
            log.display()
        );
    }
    ok(&format!("merge names the missing shard ({})", text.trim()));
    Ok(())
}

/// What identifies a finished part: its bytes and modification time.
type Snapshot = (Vec<u8>, SystemTime);

/// A part's [`Snapshot`].
fn snapshot(path: &Path) -> Result<Snapshot> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((bytes, std::fs::metadata(path)?.modified()?))
}

/// Resubmit the whole array: the finished shards say they are complete and are left as they
/// were; only the missing one is computed.
fn rerun_redoes_only_the_missing_shard(job: &Job<'_>) -> Result<Vec<(usize, Snapshot)>> {
    std::fs::remove_dir(job.part(BROKEN))?;
    let mut kept = Vec::new();
    for i in (0..SHARDS).filter(|&i| i != BROKEN) {
        kept.push((i, snapshot(&job.part(i))?));
    }
    let (success, id) = job.array()?;
    if !success {
        bail!(
            "the resubmitted array job {id} failed; see {}",
            job.task_log(&id, BROKEN).display()
        );
    }
    for (i, before) in &kept {
        let log = job.task_log(&id, *i);
        let text = job.read_log(&log);
        if !text.contains("already complete") || snapshot(&job.part(*i))? != *before {
            bail!(
                "resubmitted array job {id}: shard {i} was finished, so it must say it is already complete and leave {} as it was; {} says: {text}",
                job.part(*i).display(),
                log.display()
            );
        }
    }
    if !job.part(BROKEN).is_file() {
        bail!(
            "the resubmitted array wrote no {}",
            job.part(BROKEN).display()
        );
    }
    ok(&format!(
        "resubmitting the array computes only shard {BROKEN}; the others are already complete and untouched"
    ));
    Ok(kept)
}

/// merge.sbatch's result equals `shap-cli explain` over the whole range in one process.
fn merged_equals_one_local_run(job: &Job<'_>) -> Result<()> {
    let (merged, mid) = job.submit("merge.sbatch", &[])?;
    if !merged {
        let log = job.work.join(format!("shap-merge-{mid}.log"));
        bail!("merge job {mid} failed: {}", job.read_log(&log));
    }
    let single = job.work.join("single.npz");
    let mut c = Command::new(job.cli);
    c.arg("explain")
        .arg("--model")
        .arg(&job.model)
        .args([
            "--range",
            &format!("0..{IMAGES}"),
            "--masker",
            "blur(28,28)",
            "--quiet",
        ])
        .arg("--npz")
        .arg(&single)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX");
    match sh::run_lines(&mut c, JOB_LIMIT, |l| println!("{l}"))? {
        sh::Ended::Exited(status) if status.success() => {}
        sh::Ended::Exited(status) => bail!("the single local run failed ({status}): {c:?}"),
        sh::Ended::TimedOut => bail!("the single local run took over {} s", JOB_LIMIT.as_secs()),
    }
    let a = shap_explain::Explanation::load_npz(job.work.join("merged.npz"))?;
    let b = shap_explain::Explanation::load_npz(&single)?;
    if let Some(field) = first_difference(&a, &b) {
        bail!("the merged array job differs from one local run in {field}");
    }
    ok(&format!(
        "the merged result of {SHARDS} array tasks equals one local run over {} images bit for bit",
        a.num_images
    ));
    Ok(())
}

/// The first result field in which two explanations differ (bit for bit), if any; the
/// per-process statistic `incremental_work_fraction` is not a result.
fn first_difference(
    a: &shap_explain::Explanation,
    b: &shap_explain::Explanation,
) -> Option<&'static str> {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let settings = |e: &shap_explain::Explanation| {
        let mut s = e.settings.clone();
        s.retain(|x| x.name != "incremental_work_fraction");
        s
    };
    let checks = [
        ("values", bits(&a.values) == bits(&b.values)),
        ("base_values", bits(&a.base_values) == bits(&b.base_values)),
        ("fx", bits(&a.fx) == bits(&b.fx)),
        ("output_indices", a.output_indices == b.output_indices),
        ("output_names", a.output_names == b.output_names),
        ("data", a.data == b.data),
        ("images", a.images == b.images),
        ("evals", a.evals == b.evals),
        ("settings", settings(a) == settings(b)),
    ];
    checks.into_iter().find(|(_, same)| !same).map(|(f, _)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_that_exits_while_starting_is_named_with_the_step_and_its_log() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-slurm-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("fake.log");
        let mut cluster = Cluster {
            dir: dir.clone(),
            daemons: Vec::new(),
        };
        let mut fake = Command::new("sh");
        fake.args(["-c", "exit 3"]);
        cluster.spawn("fake", fake, log.clone())?;
        let err = cluster
            .wait_for("starting fake", "fake", |_| Ok(false))
            .err()
            .context("a daemon that exits cannot be waited for")?
            .to_string();
        assert!(err.starts_with("starting fake: fake exited"), "{err}");
        assert!(err.contains(&log.display().to_string()), "{err}");
        drop(cluster);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn the_config_is_private() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-slurm-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        write_config(&dir, &dir.join("munge.socket"))?;
        let conf = std::fs::read_to_string(dir.join("slurm.conf"))?;
        for line in conf.lines().filter(|l| l.contains("=/")) {
            assert!(
                line.contains(&*dir.to_string_lossy()),
                "outside the folder: {line}"
            );
        }
        assert!(conf.contains("AuthInfo=socket="), "{conf}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

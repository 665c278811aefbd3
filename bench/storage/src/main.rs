//! Storage candidates for the webhook event journal, measured on one workload.
//!
//! Records are webhook events keyed by an increasing u64 sequence number (from 1). Every engine
//! gets the same calls through [`Engine`]: a group commit inserts a batch and deletes the
//! acknowledged keys in one durable commit; reopening returns every live record in seq order.
//! Scenarios (see `scenarios`): append+ack, the same with one stuck lane, and a backlog (append,
//! no acks) that is then drained; each is followed by a crash-like stop and a timed recovery.
//!
//! The parent process runs each phase in a child process (this binary with `--child`) that ends
//! with `process::exit` right after its last durable commit, so no destructor runs: the next
//! open sees what a killed process leaves (no clean close, no final flush or compaction).

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "Append/ack/recover/drain benchmark of journal storage engines")]
struct Args {
    /// Comma-separated: redb, redb-qr (quick repair), fjall, fjall-weak (weak tombstones), seglog.
    #[arg(long, default_value = "redb,fjall,seglog")]
    engines: String,
    /// Records appended per scenario.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Records per group commit.
    #[arg(long, default_value_t = 1_000)]
    batch: u64,
    /// Stuck-lane modulus of the stuck scenario: seq % stuck == 0 is never acknowledged.
    #[arg(long, default_value_t = 16)]
    stuck: u64,
    /// Runs of every scenario; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Parent of the data dirs (must be on the real disk, not tmpfs).
    #[arg(long, default_value = "/work/tmp-storage-bench")]
    dir: PathBuf,
    /// Skip the backlog scenario (append with no acks, recover, drain).
    #[arg(long)]
    no_drain: bool,
    /// Internal: run one phase (append | recover | drain) of `--engine` in `--path`, then exit
    /// without running destructors.
    #[arg(long, hide = true)]
    child: Option<String>,
    #[arg(long, hide = true)]
    engine: Option<String>,
    #[arg(long, hide = true)]
    path: Option<PathBuf>,
    /// Internal: stuck modulus of this child (0 = every record is acknowledged, 1 = none).
    #[arg(long, hide = true, default_value_t = 0)]
    lane: u64,
}

type Recovered = Vec<(u64, Vec<u8>)>;
type Results = BTreeMap<String, f64>;

/// What the bench needs of a journal store.
trait Engine {
    /// One durable group commit: insert `events` and delete `acks`, atomically; when this
    /// returns, both survive a crash.
    fn commit(&mut self, events: &[(u64, &[u8])], acks: &[u64]) -> Result<()>;
}

/// Opens (creating if absent) `engine` in `dir` and reads all live records in seq order.
fn open(engine: &str, dir: &Path) -> Result<(Box<dyn Engine>, Recovered)> {
    match engine {
        "redb" => Redb::open(dir, false),
        "redb-qr" => Redb::open(dir, true),
        "fjall" => Fjall::open(dir, false),
        "fjall-weak" => Fjall::open(dir, true),
        #[cfg(feature = "seglog")]
        "seglog" => SegLog::open(dir),
        other => bail!("unknown engine {other} (seglog needs the seglog feature)"),
    }
}

// ---- redb: one table u64 → bytes, one write transaction per commit, Durability::Immediate.

const EVENTS: redb::TableDefinition<'_, u64, &[u8]> = redb::TableDefinition::new("events");

struct Redb {
    db: redb::Database,
    /// `set_quick_repair(true)`: each commit also saves the allocator state (2-phase commit),
    /// so an open after a crash need not rebuild it by walking every tree.
    quick_repair: bool,
}

impl Redb {
    fn open(dir: &Path, quick_repair: bool) -> Result<(Box<dyn Engine>, Recovered)> {
        use redb::{ReadableDatabase, ReadableTable};
        let db = redb::Database::create(dir.join("journal.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(EVENTS)?; // create it on a fresh file
        tx.commit()?;
        let mut live = Vec::new();
        for row in db.begin_read()?.open_table(EVENTS)?.iter()? {
            let (k, v) = row?;
            live.push((k.value(), v.value().to_vec()));
        }
        Ok((Box::new(Redb { db, quick_repair }), live))
    }
}

impl Engine for Redb {
    fn commit(&mut self, events: &[(u64, &[u8])], acks: &[u64]) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_quick_repair(self.quick_repair);
        {
            let mut t = tx.open_table(EVENTS)?;
            for &(seq, payload) in events {
                t.insert(seq, payload)?;
            }
            for &seq in acks {
                t.remove(seq)?;
            }
        }
        tx.commit()?; // default durability: Immediate
        Ok(())
    }
}

// ---- fjall: one keyspace "events" (key = seq big-endian), one write batch per commit persisted
// with PersistMode::SyncData (fdatasync of the journal). The head cursor, the lowest live seq, is
// written in the same batch whenever it moves, under HEAD (9 bytes, sorting after every 8-byte
// seq): recovery range-scans from it, so it does not step over the tombstones of everything
// acknowledged below it. (In a second keyspace it pinned every journal: that keyspace's memtable
// never filled, so never flushed, and fjall keeps journals until all memtables are flushed.)

const HEAD: [u8; 9] = [0xff; 9];

struct Fjall {
    db: fjall::Database,
    events: fjall::Keyspace,
    /// Unacknowledged-or-not records from the head on, in seq order: (seq, acked).
    window: VecDeque<(u64, bool)>,
    head: u64,
    /// One past the highest seq written: the head once everything is acknowledged.
    next: u64,
    /// `remove_weak` (doc-hidden, experimental): the tombstone vanishes once it meets its insert
    /// in a compaction. Sound here since a seq is written once.
    weak: bool,
}

impl Fjall {
    fn open(dir: &Path, weak: bool) -> Result<(Box<dyn Engine>, Recovered)> {
        let db = fjall::Database::builder(dir).open()?;
        let events = db.keyspace("events", fjall::KeyspaceCreateOptions::default)?;
        let head = match events.get(HEAD)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().context("head cursor")?),
            None => 0,
        };
        let mut live = Vec::new();
        for kv in events.range(head.to_be_bytes()..=[0xff; 8]) {
            let (k, v) = kv.into_inner()?;
            live.push((u64::from_be_bytes(k.as_ref().try_into()?), v.to_vec()));
        }
        let window = live.iter().map(|&(s, _)| (s, false)).collect();
        let next = live.last().map_or(head, |&(s, _)| s + 1);
        let fjall = Fjall {
            db,
            events,
            window,
            head,
            next,
            weak,
        };
        Ok((Box::new(fjall), live))
    }
}

impl Engine for Fjall {
    fn commit(&mut self, events: &[(u64, &[u8])], acks: &[u64]) -> Result<()> {
        let mut b = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        for &(seq, payload) in events {
            b.insert(&self.events, &seq.to_be_bytes()[..], payload);
            self.window.push_back((seq, false));
            self.next = seq + 1;
        }
        for &seq in acks {
            let key = &seq.to_be_bytes()[..];
            if self.weak {
                b.remove_weak(&self.events, key)
            } else {
                b.remove(&self.events, key)
            }
            if let Ok(i) = self.window.binary_search_by_key(&seq, |&(s, _)| s) {
                self.window[i].1 = true;
            }
        }
        while self.window.front().is_some_and(|&(_, acked)| acked) {
            self.window.pop_front();
        }
        let head = self.window.front().map_or(self.next, |&(s, _)| s);
        if head != self.head {
            b.insert(&self.events, &HEAD[..], &head.to_be_bytes()[..]);
            self.head = head;
        }
        b.commit()?;
        Ok(())
    }
}

// ---- segment log: hookmq's own append-only, checksummed segment files
// (`hookmq_webhooks::journal`, default LogOptions: 64 MiB segments). A commit is one append
// (events, then the acks) and one sync (fdatasync; the dir is synced when segments come or go).

#[cfg(feature = "seglog")]
struct SegLog(hookmq_webhooks::journal::SegmentLog);

#[cfg(feature = "seglog")]
impl SegLog {
    fn open(dir: &Path) -> Result<(Box<dyn Engine>, Recovered)> {
        use hookmq_webhooks::journal::{LogOptions, SegmentLog};
        let (log, recovered) = SegmentLog::open(dir, LogOptions::default())?;
        Ok((Box::new(SegLog(log)), recovered.live))
    }
}

#[cfg(feature = "seglog")]
impl Engine for SegLog {
    fn commit(&mut self, events: &[(u64, &[u8])], acks: &[u64]) -> Result<()> {
        self.0.append(events, acks)?;
        Ok(self.0.sync()?)
    }
}

// ---- workload

/// Incompressible payloads without generating bytes in the timed loop: record `seq` is a window
/// of a 4 MiB xorshift pool at an offset scattered by `seq`.
struct Payloads {
    pool: Vec<u8>,
    size: usize,
}

impl Payloads {
    fn new(size: usize) -> Self {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let pool = (0..(4 << 20) + size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Payloads { pool, size }
    }
    fn get(&self, seq: u64) -> &[u8] {
        let off = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize % (4 << 20);
        &self.pool[off..off + self.size]
    }
}

/// Appends `records` in commits of `batch`; commit k also deletes the records of commit k-1
/// except the stuck lane (`seq % lane == 0`, when `lane > 0`). Returns each commit's time.
fn append(e: &mut dyn Engine, a: &Args, p: &Payloads) -> Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity((a.records / a.batch + 1) as usize);
    let (mut prev, mut events, mut acks) = (Vec::new(), Vec::new(), Vec::new());
    for start in (1..=a.records).step_by(a.batch as usize) {
        let end = (start + a.batch).min(a.records + 1);
        events.clear();
        events.extend((start..end).map(|s| (s, p.get(s))));
        acks.clear();
        acks.extend(prev.iter().filter(|&s| a.lane == 0 || s % a.lane != 0));
        let t = Instant::now();
        e.commit(&events, &acks)?;
        lat.push(t.elapsed());
        prev.clear();
        prev.extend(start..end);
    }
    Ok(lat)
}

/// Which records are live after the append+ack phase: the last commit's (acks lag one commit)
/// and the stuck lane.
fn expected_live(a: &Args) -> impl Iterator<Item = u64> + '_ {
    let last = 1 + (a.records.saturating_sub(1) / a.batch) * a.batch;
    (1..=a.records).filter(move |s| *s >= last || (a.lane > 0 && s % a.lane == 0))
}

/// Disk usage of a dir: `du -s -B1` (allocated bytes, so sparse or preallocated files count
/// as the disk sees them).
fn du(dir: &Path) -> Result<f64> {
    let out = Command::new("du").arg("-sB1").arg(dir).output()?;
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .split_whitespace()
        .next()
        .context("du output")?
        .parse::<f64>()?
        / 1048576.0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// One phase in this (child) process; prints `key=value` results, then exits without drop.
fn child(a: &Args, phase: &str) -> Result<()> {
    let (engine, dir) = (
        a.engine.as_deref().context("--engine")?,
        a.path.as_deref().context("--path")?,
    );
    let p = Payloads::new(a.size);
    let mut out = BTreeMap::<&str, f64>::new();
    match phase {
        // append+ack: records/s = records / wall time; commit latency = each durable commit.
        "append" => {
            let (mut e, live) = open(engine, dir)?;
            ensure!(live.is_empty(), "fresh dir not empty");
            let t = Instant::now();
            let mut lat = append(e.as_mut(), a, &p)?;
            let wall = t.elapsed().as_secs_f64();
            lat.sort();
            out.insert("rate", a.records as f64 / wall);
            out.insert("commits", lat.len() as f64 / wall);
            out.insert("p50", pct(&lat, 0.50));
            out.insert("p99", pct(&lat, 0.99));
        }
        // recover: open after the crash-like stop and read every live record into memory;
        // checks count, order and content against what should be live.
        "recover" => {
            let t = Instant::now();
            let (_e, live) = open(engine, dir)?;
            out.insert("ms", t.elapsed().as_secs_f64() * 1e3);
            out.insert("live", live.len() as f64);
            let seqs = live.iter().map(|&(s, _)| s);
            ensure!(seqs.eq(expected_live(a)), "{engine}: wrong live set");
            let intact = live.iter().all(|(s, v)| v == p.get(*s));
            ensure!(intact, "{engine}: a recovered payload differs");
        }
        // drain: reopen the backlog (every record live; untimed), acknowledge all of it in
        // commits of `batch` with nothing new: records/s.
        "drain" => {
            let (mut e, live) = open(engine, dir)?;
            ensure!(
                live.len() as u64 == a.records,
                "{engine}: backlog has {} records",
                live.len()
            );
            let acks: Vec<u64> = live.iter().map(|&(s, _)| s).collect();
            let t = Instant::now();
            for chunk in acks.chunks(a.batch as usize) {
                e.commit(&[], chunk)?;
            }
            out.insert("rate", a.records as f64 / t.elapsed().as_secs_f64());
        }
        other => bail!("unknown phase {other}"),
    }
    let line: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{}", line.join(" "));
    std::process::exit(0); // crash-like: no destructors, no clean close
}

/// Runs `phase` of `engine` on `dir` in a child process and parses its `key=value` line.
fn spawn(a: &Args, phase: &str, engine: &str, dir: &Path, lane: u64) -> Result<Results> {
    let (n, size, batch) = (a.records, a.size, a.batch);
    let args = format!("--child {phase} --engine {engine} --lane {lane}");
    let args = format!("{args} --records {n} --size {size} --batch {batch}");
    let out = Command::new(std::env::current_exe()?)
        .args(args.split(' '))
        .arg("--path")
        .arg(dir)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{engine} {phase} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    last.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').context("key=value")?;
            Ok((k.to_string(), v.parse()?))
        })
        .collect()
}

/// All scenarios of one engine, one run: metric name → value.
fn scenarios(a: &Args, engine: &str, run: usize) -> Result<Vec<(String, f64)>> {
    let mut m = Vec::new();
    let fresh = |name: &str| -> Result<PathBuf> {
        let d = a.dir.join(format!("{engine}-{name}-{run}"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };
    // Lane 0: every record is acknowledged one commit later; lane `stuck`: one lane of `stuck`
    // never is; lane 1: none is (a backlog behind a dead receiver), which the drain then acks.
    for (label, lane) in [("", 0), ("stuck: ", a.stuck), ("backlog: ", 1)] {
        if lane == 1 && a.no_drain {
            continue;
        }
        let d = fresh(&format!("lane{lane}"))?;
        let r = spawn(a, "append", engine, &d, lane)?;
        let mib = du(&d)?;
        let rec = spawn(a, "recover", engine, &d, lane)?;
        let k = |s: &str| format!("{label}{s}");
        let what = if lane == 1 {
            "append (no ack)"
        } else {
            "append+ack"
        };
        m.extend([
            (k(&format!("{what} records/s")), r["rate"]),
            (k("commits/s"), r["commits"]),
            (k("commit p50 ms"), r["p50"]),
            (k("commit p99 ms"), r["p99"]),
            (k("disk MiB at end"), mib),
            (k("recover ms"), rec["ms"]),
            (k("live records recovered"), rec["live"]),
        ]);
        if lane == 1 {
            let r = spawn(a, "drain", engine, &d, lane)?;
            m.push((k("drain (ack all) records/s"), r["rate"]));
            m.push((k("disk MiB after drain"), du(&d)?));
        }
        std::fs::remove_dir_all(&d)?;
    }
    Ok(m)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn fmt(metric: &str, v: f64) -> String {
    match metric {
        m if m.ends_with("records/s") => format!("{:.0}k", v / 1e3),
        m if m.ends_with("/s") || m.ends_with("recovered") => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    if let Some(phase) = a.child.clone() {
        return child(&a, &phase);
    }
    let engines: Vec<&str> = a.engines.split(',').map(str::trim).collect();
    std::fs::create_dir_all(&a.dir)?;
    // results[engine][metric] = values over runs
    let mut results: Vec<Vec<(String, Vec<f64>)>> = vec![Vec::new(); engines.len()];
    for run in 0..a.runs {
        for (i, engine) in engines.iter().enumerate() {
            eprintln!("run {}/{} {engine}…", run + 1, a.runs);
            for (j, (metric, v)) in scenarios(&a, engine, run)?.into_iter().enumerate() {
                if run == 0 {
                    results[i].push((metric, Vec::new()));
                }
                results[i][j].1.push(v);
            }
        }
    }
    println!(
        "\n{} records of {} B, commits of {}, stuck lane 1/{}; median of {} runs\n",
        a.records, a.size, a.batch, a.stuck, a.runs
    );
    println!("| metric | {} |", engines.join(" | "));
    println!("|---|{}", "---:|".repeat(engines.len()));
    for (j, (metric, _)) in results[0].iter().enumerate() {
        let cells: Vec<String> = results
            .iter()
            .map(|r| fmt(metric, median(r[j].1.clone())))
            .collect();
        println!("| {metric} | {} |", cells.join(" | "));
    }
    Ok(())
}

//! `memshelf ls`: the segments on this host (`/dev/shm/memshelf.*`).

use std::ffi::CStr;
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memshelf::OpenOptions;

use crate::output::{self, check};

const SHM_DIR: &str = "/dev/shm";
const PREFIX: &str = "memshelf.";

/// One segment, as listed.
struct Row {
    name: String,
    uid: u32,
    owner: String,
    mode: u32,
    age: Duration,
    stats: Result<memshelf::Stats, String>,
}

/// The user name of `uid`, or the number when it has none.
fn user_name(uid: u32) -> String {
    let mut pw: libc::passwd = unsafe {
        // SAFETY: `passwd` is a plain C struct of integers and pointers, for
        // which all-zero bytes are a valid (empty) value; getpwuid_r fills it.
        std::mem::zeroed()
    };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `pw` and `result` are
    // locals, `buf` is a live buffer of `buf.len()` bytes that the strings
    // in `pw` point into while `buf` lives.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pw.pw_name.is_null() {
        return uid.to_string();
    }
    // SAFETY: on success `pw_name` points to a NUL-terminated string in `buf`.
    unsafe { CStr::from_ptr(pw.pw_name) }
        .to_string_lossy()
        .into_owned()
}

fn age_of(meta: &std::fs::Metadata) -> Duration {
    let born = meta.created().unwrap_or_else(|_| {
        UNIX_EPOCH + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec().max(0) as u32)
    });
    SystemTime::now().duration_since(born).unwrap_or_default()
}

fn rows() -> Result<Vec<Row>, String> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| format!("cannot list {SHM_DIR}: {e}"))?;
    let mut rows = Vec::new();
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_prefix(PREFIX)) else {
            continue;
        };
        if memshelf::validate_name(name).is_err() {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(Path::new(SHM_DIR).join(&file)) else {
            continue; // unlinked meanwhile
        };
        if !meta.is_file() {
            continue;
        }
        let mode = meta.mode() & 0o777;
        // Attach only (never create), accepting the segment's own mode so a
        // deliberately shared segment can be listed too.
        let stats = OpenOptions::new()
            .create(false)
            .mode(mode)
            .open(name)
            .map(|c| c.stats())
            .map_err(|e| e.to_string());
        rows.push(Row {
            name: name.to_string(),
            uid: meta.uid(),
            owner: user_name(meta.uid()),
            mode,
            age: age_of(&meta),
            stats,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// Prints the table (or a JSON array with `json`).
pub fn run(json: bool) -> Result<(), String> {
    let rows = rows()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::json!({
                    "name": r.name,
                    "owner": r.owner,
                    "uid": r.uid,
                    "mode": format!("{:04o}", r.mode),
                    "age_seconds": r.age.as_secs_f64(),
                });
                match &r.stats {
                    Ok(s) => {
                        v["capacity_bytes"] = s.capacity_bytes.into();
                        v["used_bytes"] = s.used_bytes.into();
                        v["entries"] = s.entries.into();
                    }
                    Err(e) => v["error"] = e.clone().into(),
                }
                v
            })
            .collect();
        check(writeln!(out, "{}", serde_json::Value::Array(list)))?;
        return check(out.flush());
    }
    let header = [
        "NAME", "OWNER", "MODE", "CAPACITY", "USED", "ENTRIES", "AGE",
    ];
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let (cap, used, entries) = match &r.stats {
                Ok(s) => (
                    output::bytes(s.capacity_bytes),
                    output::bytes(s.used_bytes),
                    s.entries.to_string(),
                ),
                Err(_) => ("-".into(), "-".into(), "-".into()),
            };
            [
                r.name.clone(),
                r.owner.clone(),
                format!("{:04o}", r.mode),
                cap,
                used,
                entries,
                output::age(r.age.as_secs()),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &table {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            // Names and owners left-aligned, numbers right-aligned.
            if i < 3 {
                s.push_str(&format!("{c:<w$}  "));
            } else {
                s.push_str(&format!("{c:>w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    check(writeln!(out, "{}", line(&header)))?;
    for (row, r) in table.iter().zip(&rows) {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let mut l = line(&cells);
        if let Err(e) = &r.stats {
            l.push_str(&format!("  ({e})"));
        }
        check(writeln!(out, "{l}"))?;
    }
    check(out.flush())
}

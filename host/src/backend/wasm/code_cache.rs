//! Compiled code kept between runs: one uncompressed `.cwasm` file per
//! program and engine, named by the SHA-256 of the program and a hash of
//! the engine's settings, and loaded by mapping the file (no decompression
//! and no copy; wasmtime's own cache compresses its entries, and reading
//! one back was a quarter of `wmp run`'s time for a small program). It
//! owns where the cache is ([`CodeCache`]), its size cap and eviction, and
//! what the `wmp cache` command shows and clears.
//!
//! A missing, stale or unreadable entry only means compiling again. An
//! entry is written to a temporary file and renamed into place, so runs at
//! the same time never see half of one. The directory is trusted as
//! wasmtime trusts its cache: the machine code in an entry runs as it is,
//! so the directory must be writable by its user alone.
//!
//! The entries together stay within a size cap, least recently used out
//! first. A hit sets its entry's modification time to now (atime is not
//! kept on `noatime` mounts and is rarely updated on `relatime` ones, and
//! a mapped read need not touch it), so the modification time is the last
//! use. After a store that brings the directory past the cap, the entries
//! used longest ago are removed until it is within the cap again, never
//! the one just stored. Runs sharing the directory may evict at the same
//! time: an entry that is already gone counts as removed, and an entry
//! mapped by a running process stays readable to it once unlinked.

use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;

use crate::backend::wasm::program::{Artifact, Compiled};
use crate::base::error::{Error, Result};

/// Where compiled code is cached between runs: uncompressed `.cwasm`
/// files keyed by the program's hash and the engine's settings, mapped
/// when loaded.
#[derive(Clone, Debug, Default)]
pub enum CodeCache {
    /// No cache: compile every time.
    #[default]
    Off,
    /// `$XDG_CACHE_HOME/wmp/code` (else `~/.cache/wmp/code`); no cache if
    /// neither variable is set.
    System,
    /// A cache in this directory.
    Directory(PathBuf),
}

/// The size cap of a code cache unless
/// [`RuntimeBuilder::code_cache_limit`](crate::RuntimeBuilder::code_cache_limit)
/// sets another: 512 MiB, the default `files-total-size-soft-limit` of
/// wasmtime's own cache.
pub const DEFAULT_CODE_CACHE_LIMIT: u64 = 512 * 1024 * 1024;

/// What a code cache directory holds, for every engine's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeCacheUsage {
    pub entries: usize,
    /// The entries' sizes added up.
    pub bytes: u64,
}

impl CodeCache {
    /// The directory the entries are in; none if the cache is off, or if
    /// it is the system one and neither `XDG_CACHE_HOME` nor `HOME` is set.
    pub fn directory(&self) -> Option<PathBuf> {
        match self {
            CodeCache::Off => None,
            CodeCache::System => system_dir(),
            CodeCache::Directory(dir) => Some(dir.clone()),
        }
    }

    /// What the cache holds now (nothing if its directory does not exist).
    pub fn usage(&self) -> Result<CodeCacheUsage> {
        let Some(dir) = self.directory() else { return Ok(CodeCacheUsage::default()) };
        Ok(usage_of(&entries_in(&dir)?))
    }

    /// Removes every entry, of every engine's settings; returns what they
    /// were. A run compiling now still stores its entry afterwards.
    pub fn clear(&self) -> Result<CodeCacheUsage> {
        let Some(dir) = self.directory() else { return Ok(CodeCacheUsage::default()) };
        let entries = entries_in(&dir)?;
        for entry in &entries {
            entry.remove()?;
        }
        Ok(usage_of(&entries))
    }
}

/// The default place: `$XDG_CACHE_HOME/wmp/code`, else
/// `$HOME/.cache/wmp/code`; none if neither is set.
fn system_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|dir| !dir.is_empty()).map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("wmp").join("code"))
}

/// One `.cwasm` file of a cache directory.
struct Entry {
    path: PathBuf,
    bytes: u64,
    last_used: SystemTime,
}

impl Entry {
    /// Removes the file; one another run removed first counts as removed.
    fn remove(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(error) if error.kind() != ErrorKind::NotFound => Err(Error::CodeCache { path: self.path.clone(), error }),
            _ => Ok(()),
        }
    }
}

/// The entries in `dir` (temporary files being written are none); a
/// missing directory has none, and a file removed while it is listed is
/// left out.
fn entries_in(dir: &Path) -> Result<Vec<Entry>> {
    let failed = |error| Error::CodeCache { path: dir.to_owned(), error };
    let listing = match std::fs::read_dir(dir) {
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        listing => listing.map_err(failed)?,
    };
    let mut entries = Vec::new();
    for file in listing {
        let path = file.map_err(failed)?.path();
        if path.extension().is_none_or(|extension| extension != "cwasm") {
            continue;
        }
        match std::fs::metadata(&path).and_then(|metadata| Ok((metadata.len(), metadata.modified()?))) {
            Ok((bytes, last_used)) => entries.push(Entry { path, bytes, last_used }),
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(Error::CodeCache { path, error }),
        }
    }
    Ok(entries)
}

fn usage_of(entries: &[Entry]) -> CodeCacheUsage {
    CodeCacheUsage { entries: entries.len(), bytes: entries.iter().map(|entry| entry.bytes).sum() }
}

/// Compiled code for one engine's settings, kept in a directory within a
/// size cap.
pub(crate) struct CodeCacheDir {
    dir: PathBuf,
    /// The engine's settings and wmp's version, as part of every entry's name.
    engine_key: String,
    /// Most bytes all entries in `dir` may take together.
    limit: u64,
}

impl CodeCacheDir {
    pub(crate) fn new(dir: PathBuf, engine: &Engine, limit: u64) -> CodeCacheDir {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        CodeCacheDir { dir, engine_key: format!("{:016x}", hasher.finish()), limit }
    }

    fn entry(&self, wasm: &[u8]) -> PathBuf {
        let digest = Sha256::digest(wasm);
        let name: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        self.dir.join(format!("{name}-{}.cwasm", self.engine_key))
    }

    /// The compiled code of `wasm` (binary), as `place` loads it: mapped
    /// from its entry, which is marked used, or compiled by `engine` and
    /// then stored, evicting others past the cap (a failure to store or
    /// evict is only logged). An entry `place` cannot load is compiled again.
    ///
    /// `place` is given only artifacts made by [`Compiled::artifact`] of an
    /// engine with `engine`'s compilation settings: entries are written only
    /// by `store` below (the settings' hash is in their name), and the
    /// directory is trusted (see the module documentation).
    pub(crate) fn load<T>(
        &self,
        engine: &Engine,
        wasm: &[u8],
        place: impl Fn(Artifact<'_>) -> wasmtime::Result<T>,
    ) -> wasmtime::Result<T> {
        let entry = self.entry(wasm);
        if entry.exists() {
            match place(Artifact::File(&entry)) {
                Ok(compiled) => {
                    mark_used(&entry);
                    return Ok(compiled);
                }
                Err(error) => tracing::debug!(entry = %entry.display(), %error, "unusable cache entry, compiling"),
            }
        }
        let artifact = Compiled::artifact(engine, wasm)?;
        match self.store(&entry, &artifact) {
            Ok(()) => {
                if let Err(error) = self.evict_past_limit(&entry) {
                    tracing::debug!(%error, "cannot evict from the code cache");
                }
            }
            Err(error) => tracing::debug!(entry = %entry.display(), %error, "cannot store compiled code"),
        }
        place(Artifact::Bytes(&artifact))
    }

    fn store(&self, entry: &Path, artifact: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temporary = entry.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&temporary, artifact)?;
        std::fs::rename(&temporary, entry).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    }

    /// Removes the entries used longest ago, except `kept`, until all of
    /// them together are within the cap.
    fn evict_past_limit(&self, kept: &Path) -> Result<()> {
        let mut entries = entries_in(&self.dir)?;
        let mut bytes = usage_of(&entries).bytes;
        entries.sort_by_key(|entry| entry.last_used);
        for entry in entries.iter().filter(|entry| entry.path != kept) {
            if bytes <= self.limit {
                break;
            }
            entry.remove()?;
            tracing::debug!(entry = %entry.path.display(), "evicted from the code cache");
            bytes -= entry.bytes;
        }
        Ok(())
    }
}

/// Makes `entry` the most recently used (see the module documentation).
fn mark_used(entry: &Path) {
    let touched = std::fs::File::open(entry).and_then(|file| file.set_modified(SystemTime::now()));
    if let Err(error) = touched {
        tracing::debug!(entry = %entry.display(), %error, "cannot mark a cache entry used");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    impl CodeCacheDir {
        /// [`load`](CodeCacheDir::load) for `engine` alone.
        fn load_for(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Compiled> {
            // SAFETY: `load` hands over the cache's own artifacts.
            self.load(engine, wasm, |artifact| unsafe { artifact.load(engine) })
        }
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wmp-code-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A module of its own for each `n`, so each has its own entry.
    fn module(n: usize) -> Vec<u8> {
        wat::parse_str(format!("(module (func (export \"f{n}\")))")).unwrap()
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    /// Dates the entry of `wasm` as last used `hours` ago.
    fn used_hours_ago(cache: &CodeCacheDir, wasm: &[u8], hours: u64) {
        let file = std::fs::File::open(cache.entry(wasm)).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(hours * 3600)).unwrap();
    }

    #[test]
    fn a_compiled_program_is_stored_once_and_mapped_after() {
        let dir = scratch("store");
        let engine = Engine::default();
        let cache = CodeCacheDir::new(dir.clone(), &engine, u64::MAX);
        assert!(matches!(cache.load_for(&engine, MODULE).unwrap(), Compiled::Module(_)));
        let stored = entries(&dir);
        assert_eq!(stored.len(), 1, "one entry, no temporary left: {stored:?}");
        let written = std::fs::metadata(&stored[0]).unwrap().ino();
        assert!(matches!(cache.load_for(&engine, MODULE).unwrap(), Compiled::Module(_)));
        assert_eq!(std::fs::metadata(&stored[0]).unwrap().ino(), written, "read, not rewritten");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_entry_is_compiled_again_and_replaced() {
        let dir = scratch("damaged");
        let engine = Engine::default();
        let cache = CodeCacheDir::new(dir.clone(), &engine, u64::MAX);
        cache.load_for(&engine, MODULE).unwrap();
        let entry = entries(&dir).remove(0);
        std::fs::write(&entry, b"not machine code").unwrap();
        assert!(matches!(cache.load_for(&engine, MODULE).unwrap(), Compiled::Module(_)));
        assert_ne!(std::fs::read(&entry).unwrap(), b"not machine code", "replaced");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_engine_settings_use_other_entries() {
        let dir = scratch("settings");
        let plain = Engine::default();
        let fuel = Engine::new(wasmtime::Config::new().consume_fuel(true)).unwrap();
        CodeCacheDir::new(dir.clone(), &plain, u64::MAX).load_for(&plain, MODULE).unwrap();
        CodeCacheDir::new(dir.clone(), &fuel, u64::MAX).load_for(&fuel, MODULE).unwrap();
        assert_eq!(entries(&dir).len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn past_the_limit_the_least_recently_used_entries_go_until_the_rest_fit() {
        let dir = scratch("evict");
        let engine = Engine::default();
        let unlimited = CodeCacheDir::new(dir.clone(), &engine, u64::MAX);
        for n in 0..3 {
            unlimited.load_for(&engine, &module(n)).unwrap();
            used_hours_ago(&unlimited, &module(n), 3 - n as u64);
        }
        let newest_three = size(&unlimited.entry(&module(1)))
            + size(&unlimited.entry(&module(2)))
            + Compiled::artifact(&engine, &module(3)).unwrap().len() as u64;
        let capped = CodeCacheDir::new(dir.clone(), &engine, newest_three);
        capped.load_for(&engine, &module(3)).unwrap();
        let kept: Vec<bool> = (0..4).map(|n| capped.entry(&module(n)).exists()).collect();
        assert_eq!(kept, [false, true, true, true], "only the oldest goes");
        assert_eq!(CodeCache::Directory(dir.clone()).usage().unwrap().bytes, newest_three);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_hit_makes_its_entry_the_most_recently_used() {
        let dir = scratch("hit");
        let engine = Engine::default();
        let unlimited = CodeCacheDir::new(dir.clone(), &engine, u64::MAX);
        for n in 0..2 {
            unlimited.load_for(&engine, &module(n)).unwrap();
            used_hours_ago(&unlimited, &module(n), 2 - n as u64);
        }
        unlimited.load_for(&engine, &module(0)).unwrap();
        let room_for_two = size(&unlimited.entry(&module(0))) + Compiled::artifact(&engine, &module(2)).unwrap().len() as u64;
        let capped = CodeCacheDir::new(dir.clone(), &engine, room_for_two);
        capped.load_for(&engine, &module(2)).unwrap();
        let kept: Vec<bool> = (0..3).map(|n| capped.entry(&module(n)).exists()).collect();
        assert_eq!(kept, [true, false, true], "the entry not used since goes, not the older one used again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_entry_just_stored_stays_even_if_it_alone_is_past_the_limit() {
        let dir = scratch("kept");
        let engine = Engine::default();
        let cache = CodeCacheDir::new(dir.clone(), &engine, 1);
        cache.load_for(&engine, &module(0)).unwrap();
        cache.load_for(&engine, &module(1)).unwrap();
        assert_eq!(entries(&dir), [cache.entry(&module(1))]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn usage_counts_the_entries_of_every_engine_and_clear_removes_them() {
        let dir = scratch("usage");
        let cache = CodeCache::Directory(dir.clone());
        assert_eq!(cache.usage().unwrap(), CodeCacheUsage::default(), "no directory yet");
        let plain = Engine::default();
        let fuel = Engine::new(wasmtime::Config::new().consume_fuel(true)).unwrap();
        CodeCacheDir::new(dir.clone(), &plain, u64::MAX).load_for(&plain, MODULE).unwrap();
        CodeCacheDir::new(dir.clone(), &fuel, u64::MAX).load_for(&fuel, MODULE).unwrap();
        let being_written = dir.join("entry.1234.tmp");
        std::fs::write(&being_written, b"half an entry").unwrap();
        let stored = CodeCacheUsage { entries: 2, bytes: entries(&dir).iter().filter(|p| **p != being_written).map(|p| size(p)).sum() };
        assert_eq!(cache.usage().unwrap(), stored);
        assert_eq!(cache.clear().unwrap(), stored);
        assert_eq!(cache.usage().unwrap(), CodeCacheUsage::default());
        assert_eq!(entries(&dir), [being_written], "a file still being written is another run's");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

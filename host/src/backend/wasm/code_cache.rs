//! Compiled code kept between runs: one uncompressed `.cwasm` file per
//! program and engine, named by the SHA-256 of the program and a hash of
//! the engine's settings, and loaded by mapping the file (no decompression
//! and no copy; wasmtime's own cache compresses its entries, and reading
//! one back was a quarter of `wmp run`'s time for a small program).
//!
//! A missing, stale or unreadable entry only means compiling again. An
//! entry is written to a temporary file and renamed into place, so runs at
//! the same time never see half of one. The directory is trusted as
//! wasmtime trusts its cache: the machine code in an entry runs as it is,
//! so the directory must be writable by its user alone.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

use crate::backend::wasm::program::Compiled;

/// Compiled code for one engine's settings, kept in a directory.
pub(crate) struct CodeCacheDir {
    dir: PathBuf,
    /// The engine's settings and wmp's version, as part of every entry's name.
    engine_key: String,
}

impl CodeCacheDir {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> CodeCacheDir {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        CodeCacheDir { dir, engine_key: format!("{:016x}", hasher.finish()) }
    }

    /// The default place: `$XDG_CACHE_HOME/wmp/code`, else
    /// `$HOME/.cache/wmp/code`; none if neither is set.
    pub(crate) fn system_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|dir| !dir.is_empty()).map(|home| Path::new(&home).join(".cache")))?;
        Some(base.join("wmp").join("code"))
    }

    fn entry(&self, wasm: &[u8]) -> PathBuf {
        let digest = Sha256::digest(wasm);
        let name: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        self.dir.join(format!("{name}-{}.cwasm", self.engine_key))
    }

    /// The compiled code of `wasm` (binary): mapped from its entry, or
    /// compiled and then stored (a failure to store is only logged).
    pub(crate) fn load(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Compiled> {
        let entry = self.entry(wasm);
        if entry.exists() {
            // SAFETY: entries are written only by `store` below, from
            // `Compiled::artifact` of an engine with the same settings
            // (their hash is in the name); the directory is trusted (see
            // the module documentation).
            match unsafe { Compiled::from_artifact_file(engine, &entry) } {
                Ok(compiled) => return Ok(compiled),
                Err(error) => tracing::debug!(entry = %entry.display(), %error, "unusable cache entry, compiling"),
            }
        }
        let artifact = Compiled::artifact(engine, wasm)?;
        if let Err(error) = self.store(&entry, &artifact) {
            tracing::debug!(entry = %entry.display(), %error, "cannot store compiled code");
        }
        // SAFETY: the artifact was just made by this engine.
        unsafe { Compiled::from_artifact(engine, &artifact) }.expect("an artifact just made")
    }

    fn store(&self, entry: &Path, artifact: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temporary = entry.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&temporary, artifact)?;
        std::fs::rename(&temporary, entry).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn entries(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wmp-code-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_compiled_program_is_stored_once_and_mapped_after() {
        let dir = scratch("store");
        let engine = Engine::default();
        let cache = CodeCacheDir::new(dir.clone(), &engine);
        assert!(matches!(cache.load(&engine, MODULE).unwrap(), Compiled::Module(_)));
        let stored = entries(&dir);
        assert_eq!(stored.len(), 1, "one entry, no temporary left: {stored:?}");
        let written = std::fs::metadata(&stored[0]).unwrap().modified().unwrap();
        assert!(matches!(cache.load(&engine, MODULE).unwrap(), Compiled::Module(_)));
        assert_eq!(std::fs::metadata(&stored[0]).unwrap().modified().unwrap(), written, "read, not rewritten");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_entry_is_compiled_again_and_replaced() {
        let dir = scratch("damaged");
        let engine = Engine::default();
        let cache = CodeCacheDir::new(dir.clone(), &engine);
        cache.load(&engine, MODULE).unwrap();
        let entry = entries(&dir).remove(0);
        std::fs::write(&entry, b"not machine code").unwrap();
        assert!(matches!(cache.load(&engine, MODULE).unwrap(), Compiled::Module(_)));
        assert_ne!(std::fs::read(&entry).unwrap(), b"not machine code", "replaced");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_engine_settings_use_other_entries() {
        let dir = scratch("settings");
        let plain = Engine::default();
        let fuel = Engine::new(wasmtime::Config::new().consume_fuel(true)).unwrap();
        CodeCacheDir::new(dir.clone(), &plain).load(&plain, MODULE).unwrap();
        CodeCacheDir::new(dir.clone(), &fuel).load(&fuel, MODULE).unwrap();
        assert_eq!(entries(&dir).len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `wmp cache`: what the code cache of `wmp run` holds, and clearing it.

use anyhow::Context;
use wmp_host::{CodeCache, CodeCacheUsage, DEFAULT_CODE_CACHE_LIMIT};

/// Show or clear the code cache: the compiled code `wmp run` keeps between
/// runs (`$XDG_CACHE_HOME/wmp/code`, else `~/.cache/wmp/code`).
#[derive(clap::Args)]
pub struct CacheCommand {
    #[command(subcommand)]
    action: Option<CacheAction>,
}

#[derive(clap::Subcommand)]
enum CacheAction {
    /// Print the cache's directory, the number and total size of its
    /// entries, and the default size limit.
    Show,
    /// Remove every entry.
    Clear,
}

impl CacheCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let cache = CodeCache::System;
        let dir = cache.directory().context("no code cache: neither XDG_CACHE_HOME nor HOME is set")?;
        let text = match self.action.unwrap_or(CacheAction::Show) {
            CacheAction::Show => {
                let CodeCacheUsage { entries, bytes } = cache.usage()?;
                format!(
                    "directory: {}\nentries: {entries}\nsize: {}\nlimit: {} unless `wmp run --max-cache-size` sets another\n",
                    dir.display(),
                    size(bytes),
                    size(DEFAULT_CODE_CACHE_LIMIT),
                )
            }
            CacheAction::Clear => {
                let CodeCacheUsage { entries, bytes } = cache.clear()?;
                format!("cleared: {}\nentries: {entries}\nsize: {}\n", dir.display(), size(bytes))
            }
        };
        // A closed pipe (`wmp cache | head -1`) is not an error.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
        Ok(())
    }
}

/// `bytes` in MiB and exactly: `1.5 MiB (1572864 bytes)`.
fn size(bytes: u64) -> String {
    format!("{:.1} MiB ({bytes} bytes)", bytes as f64 / (1024.0 * 1024.0))
}

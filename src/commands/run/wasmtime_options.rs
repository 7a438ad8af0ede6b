//! Which of `wasmtime run`'s option groups (`-O`, `-C`, `-D`, `-W`, `-S`,
//! `-R`, parsed by wasmtime's own `wasmtime-cli-flags`) wmp honours, and
//! the reason for each it refuses. An option set on the command line that
//! this table does not name as honoured is refused by name: an option is
//! never silently ignored.
//!
//! Most honoured options reach wasmtime through the `Config` the same
//! crate builds (compiler, proposals, memory layout, debug info); the
//! limits (`fuel`, `timeout`, `max-memory-size`, …) and the WASI grants
//! (`inherit-env`, `inherit-network`, …) are read by `wmp run` itself and
//! mapped to wmp's limits and capabilities.

use anyhow::bail;
use serde_json::Value;
use wasmtime_cli_flags::CommonOptions;
use wmp_host::{GrowFailure, Limits, Runtime, RuntimeBuilder};

/// The size of wasmtime's pool when `-O pooling-allocator` does not come
/// with --max-processes (wasmtime's own default instance count).
const DEFAULT_POOL_SIZE: u32 = 1000;

/// The size of the pool without `-O pooling-allocator` (or
/// --max-processes, if lower): room for a wide tree under the main guest,
/// for about 0.1 ms of startup (mapping a slot's fiber stack and guard
/// page takes about 1.6 µs, and the library's default of
/// [`wmp_host::DEFAULT_POOL_SLOTS`] would add 0.4 ms to a 4 ms run). A
/// process past it runs on demand.
const RUN_POOL_SIZE: u32 = 32;

/// Why wmp refuses an option (or one value of it).
type Refusal = &'static str;

const GC: Refusal = "wmp is built without the GC, exceptions and stack-switching proposals";
const THREADS: Refusal = "wmp is built without the threads proposal";
const COMPONENT_ASYNC: Refusal = "wmp is built without the component model's async support";
const POOL: Refusal = "wmp sizes its instance pool from its process budget: use `-O pooling-allocator` with --max-processes";
const HOST_BOUNDS: Refusal = "wmp bounds what the host holds for a guest with --max-host-memory instead";
const LINKS_ONLY_WASI: Refusal = "wmp links WASI and its own process interface only";
const LOGS: Refusal = "wmp logs through the WMP_LOG variable (for example WMP_LOG=debug)";
const NO_DEBUGGER: Refusal = "wmp has no debugger integration";
/// The refusal of a key no arm of [`support`] decides: one wasmtime added
/// that this table has not caught up with.
const UNDECIDED: Refusal = "wmp does not support it";
const NETWORK_TOGETHER: Refusal = "wmp grants TCP, UDP and name lookup together, with `-S inherit-network`";

/// A runtime builder set as `common` asks, over wmp's own `limits`:
/// wasmtime's Config from `-O`, `-C`, `-D` and `-W`; the wasm stack; the
/// limits `-W` sets (memory, tables, fuel, timeout); and the pool
/// (`-O pooling-allocator=n` turns it off, `=y` sizes it to the process
/// budget; either way a process the pool has no room for runs on demand). `wmp
/// run` and `wmp compile` both start here, so an artifact compiled with
/// some options runs with the same ones (as with wasmtime).
pub fn runtime_builder(common: &mut CommonOptions, limits: Limits) -> anyhow::Result<RuntimeBuilder> {
    // Making the Config fills in the option groups, which are checked
    // first so that an option wmp lacks is refused with wmp's reason.
    let config = common.config(None);
    refuse_unsupported(common)?;
    let wasm = &common.wasm;
    let limits = Limits {
        max_memory: wasm.max_memory_size,
        max_table_elements: wasm.max_table_elements,
        fuel: wasm.fuel,
        timeout: wasm.timeout,
        // As wasmtime: a growth past a limit returns -1, or traps if asked.
        on_grow_failure: Some(match wasm.trap_on_grow_failure {
            Some(true) => GrowFailure::Trap,
            _ => GrowFailure::Refuse,
        }),
        ..limits
    };
    let mut builder = Runtime::builder().wasmtime_config(config?);
    if let Some(bytes) = wasm.max_wasm_stack {
        builder = builder.max_wasm_stack(bytes);
    }
    let max_processes = limits.max_processes.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    builder = builder.pooling(match common.opts.pooling_allocator {
        Some(true) => max_processes.unwrap_or(DEFAULT_POOL_SIZE),
        Some(false) => 0,
        None => max_processes.map_or(RUN_POOL_SIZE, |n| n.min(RUN_POOL_SIZE)),
    });
    Ok(builder.limits(limits))
}

/// Checks every option the command line set (the groups are filled in by
/// `CommonOptions::config`, which must have run): an error names the first
/// one wmp cannot honour, and why.
fn refuse_unsupported(common: &CommonOptions) -> anyhow::Result<()> {
    for (flag, group) in &option_groups(common)? {
        let Value::Object(options) = group else { continue };
        for (key, value) in options.iter().filter(|(_, value)| is_set(value)) {
            if let Err(reason) = support(flag, key, value) {
                bail!("{flag} {key}: wmp cannot honour it: {reason}");
            }
        }
    }
    if common.target.is_some() {
        bail!("--target: wmp cannot honour it: `wmp run` runs programs on this machine only");
    }
    if common.config.is_some() {
        bail!("--config: wmp cannot honour it: wmp reads no configuration file; pass the options as flags");
    }
    Ok(())
}

/// Each option group by its flag, in its JSON form: an object of every key
/// of the group, `null` (or `[]`) where the key is left at its default.
fn option_groups(common: &CommonOptions) -> serde_json::Result<[(&'static str, Value); 6]> {
    Ok([
        ("-O", serde_json::to_value(&common.opts)?),
        ("-C", serde_json::to_value(&common.codegen)?),
        ("-D", serde_json::to_value(&common.debug)?),
        ("-W", serde_json::to_value(&common.wasm)?),
        ("-S", serde_json::to_value(&common.wasi)?),
        ("-R", serde_json::to_value(&common.record)?),
    ])
}

/// An option the command line set: not left at its default (`None`, or
/// no entries for a list).
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(entries) => !entries.is_empty(),
        _ => true,
    }
}

/// Whether wmp honours `flag key=value`.
fn support(flag: &str, key: &str, value: &Value) -> Result<(), Refusal> {
    let on = value.as_bool();
    match (flag, key) {
        // -O: the compiler's optimisation and memory layout, all through
        // wasmtime's Config; the pool is wmp's own (sized by its budget).
        (
            "-O",
            "opt-level"
            | "regalloc-algorithm"
            | "memory-may-move"
            | "memory-reservation"
            | "memory-reservation-for-growth"
            | "memory-guard-size"
            | "guard-before-linear-memory"
            | "table-lazy-init"
            | "memory-init-cow"
            | "memory-guaranteed-dense-image-size"
            | "signals-based-traps"
            | "dynamic-memory-guard-size"
            | "static-memory-guard-size"
            | "static-memory-forced"
            | "static-memory-maximum-size"
            | "dynamic-memory-reserved-for-growth"
            | "pooling-allocator",
        ) => Ok(()),
        ("-O", key) if key.starts_with("pooling-") => Err(POOL),
        ("-O", key) if key.starts_with("gc-") => Err(GC),

        // -C: code generation, through wasmtime's Config.
        (
            "-C",
            "compiler"
            | "cranelift-debug-verifier"
            | "parallel-compilation"
            | "native-unwind-info"
            | "inlining"
            | "metadata-for-internal-asserts"
            | "cranelift",
        ) => Ok(()),
        ("-C", "cache" | "cache-config") => {
            Err("wmp keeps its own code cache: see --disable-cache and `wmp cache`")
        }
        ("-C", "collector" | "metadata-for-gc-heap-corruption") => Err(GC),

        // -D: debug information, through wasmtime's Config.
        ("-D", "debug-info" | "address-map" | "symbols" | "max-backtrace") => Ok(()),
        ("-D", "logging" | "log-to-files") => Err(LOGS),
        ("-D", "coredump") => Err("wmp writes no core dumps"),
        ("-D", _) => Err(NO_DEBUGGER),

        // -W: limits (mapped to wmp's) and proposals (through the Config).
        (
            "-W",
            "fuel"
            | "timeout"
            | "max-wasm-stack"
            | "async-stack-size"
            | "async-stack-zeroing"
            | "max-memory-size"
            | "max-table-elements"
            | "trap-on-grow-failure"
            | "nan-canonicalization"
            | "relaxed-simd-deterministic"
            | "all-proposals"
            | "bulk-memory"
            | "multi-memory"
            | "multi-value"
            | "simd"
            | "relaxed-simd"
            | "tail-call"
            | "memory64"
            | "component-model"
            | "custom-page-sizes"
            | "wide-arithmetic"
            | "branch-hinting"
            | "extended-const"
            | "component-model-error-context"
            | "component-model-map"
            | "component-model-fixed-length-lists"
            | "component-model-implements"
            | "component-model-memory64",
        ) => Ok(()),
        ("-W", "epoch-interruption") if on == Some(true) => Ok(()),
        ("-W", "epoch-interruption") => Err("wmp needs epoch interruption to stop and schedule processes"),
        ("-W", "concurrency-support" | "gc-support") if on == Some(false) => Ok(()),
        ("-W", "threads" | "shared-memory" | "shared-everything-threads") => Err(THREADS),
        ("-W", "gc" | "gc-support" | "reference-types" | "function-references" | "exceptions" | "stack-switching") => {
            Err(GC)
        }
        ("-W", "component-model-gc") => Err(GC),
        ("-W", key) if key.starts_with("component-model-") || key == "concurrency-support" => Err(COMPONENT_ASYNC),
        ("-W", "unknown-exports-allow" | "unknown-imports-trap" | "unknown-imports-default") => Err(LINKS_ONLY_WASI),
        ("-W", "max-instances" | "max-tables" | "max-memories") => {
            Err("wmp limits whole processes (--max-processes), not the instances inside one")
        }
        ("-W", "wmemcheck") => Err("wmp is built without wmemcheck"),

        // -S: WASI, mapped to wmp's capabilities.
        ("-S", "inherit-network" | "inherit-env" | "inherit-stdin" | "inherit-stdout" | "inherit-stderr") => Ok(()),
        ("-S", "cli" | "common" | "preview2") if on == Some(true) => Ok(()),
        ("-S", "cli" | "common") => Err("wmp always provides WASI to its programs"),
        ("-S", "preview2") => Err("wmp implements WASIp1 over its WASIp2 implementation only"),
        ("-S", "tcp" | "udp") if on == Some(true) => Ok(()),
        ("-S", "tcp" | "udp" | "allow-ip-name-lookup") => Err(NETWORK_TOGETHER),
        ("-S", "max-resources" | "hostcall-fuel" | "max-component-handles" | "max-random-size" | "max-http-fields-size") => {
            Err(HOST_BOUNDS)
        }
        ("-S", "listenfd" | "tcplisten") => Err("wmp passes no host sockets to its programs"),
        ("-S", "preview0") => Err("wmp does not provide the `wasi_unstable` module"),
        ("-S", "cwd") => Err("wmp does not set an initial working directory"),
        ("-S", "threads") => Err(THREADS),
        ("-S", "cli-exit-with-code" | "network-error-code" | "p3") => Err("wmp provides no unstable WASI interfaces"),
        ("-S", _) => Err("wmp provides WASI's CLI, filesystem, clocks, random and sockets only"),

        ("-R", _) => Err("wmp does not record executions"),
        _ => Err(UNDECIDED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The options `args` (wasmtime's spellings) set, checked as `wmp run`
    /// checks them.
    fn check(args: &[&str]) -> anyhow::Result<()> {
        let mut common = CommonOptions::try_parse_from(std::iter::once("wmp").chain(args.iter().copied()))?;
        runtime_builder(&mut common, Limits::new()).map(drop)
    }

    #[test]
    fn honoured_options_pass_in_wasmtimes_spellings() {
        check(&["-W", "fuel=10,timeout=1s", "-Wmax-memory-size=0x1_0000", "-O", "opt-level=s", "-C", "inlining=y"]).unwrap();
        check(&["-S", "inherit-env,inherit-network", "-D", "debug-info", "-W", "simd=n,epoch-interruption"]).unwrap();
    }

    #[test]
    fn an_option_wmp_cannot_honour_is_refused_by_name_with_the_reason() {
        let refused = |args: &[&str]| check(args).unwrap_err().to_string();
        assert_eq!(refused(&["-W", "threads"]), format!("-W threads: wmp cannot honour it: {THREADS}"));
        assert_eq!(
            refused(&["-W", "fuel=5,epoch-interruption=n"]),
            "-W epoch-interruption: wmp cannot honour it: wmp needs epoch interruption to stop and schedule processes"
        );
        assert_eq!(refused(&["-S", "http"]), "-S http: wmp cannot honour it: wmp provides WASI's CLI, filesystem, clocks, random and sockets only");
        assert_eq!(refused(&["-S", "tcp=n"]), format!("-S tcp: wmp cannot honour it: {NETWORK_TOGETHER}"));
        assert_eq!(refused(&["-O", "pooling-total-memories=4"]), format!("-O pooling-total-memories: wmp cannot honour it: {POOL}"));
        assert_eq!(refused(&["-D", "logging"]), format!("-D logging: wmp cannot honour it: {LOGS}"));
        assert!(refused(&["-C", "cache=y"]).starts_with("-C cache: wmp cannot honour it:"));
        assert!(refused(&["--target", "aarch64-unknown-linux-gnu"]).starts_with("--target: wmp cannot honour it:"));
    }

    #[test]
    fn every_option_of_every_group_is_honoured_or_refused_with_a_reason_of_its_own() {
        // A key of a group's JSON form that no arm names would fall to the
        // generic refusal: wasmtime grew an option this table has not
        // decided on.
        for (flag, group) in option_groups(&CommonOptions::new()).unwrap() {
            for key in group.as_object().unwrap().keys() {
                for value in [Value::Bool(true), Value::Bool(false), Value::from(1)] {
                    assert_ne!(support(flag, key, &value), Err(UNDECIDED), "{flag} {key}={value}");
                }
            }
        }
    }
}

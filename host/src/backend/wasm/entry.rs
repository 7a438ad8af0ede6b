//! What a process runs of its program: its command, or one exported
//! function called as `wasmtime run --invoke` calls it.
//!
//! A command is `_start` of a core module (or nothing but its
//! instantiation when it has none, a reactor or a library, as `wasmtime run`
//! does), `wasi:cli/run` of a component.
//! A [`Call`] is resolved against the program's types before anything runs:
//! for a core module, an export by name and its arguments in wasmtime's
//! syntax; for a component, a WAVE-encoded call, a bare name being searched
//! for in the exported instances. Either entry of a core module runs after
//! `_initialize` if the module exports it (a reactor), as in wasmtime. The
//! call is made in the process's store, on the same fiber and epoch checks
//! as a command, so it ends by a trap, an exit, a limit or a stop exactly
//! as a command does; what it returns is kept as wasmtime prints it.

use std::sync::{Arc, OnceLock};

use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::wasm_wave::untyped::UntypedFuncCall;
use wasmtime::component::wasm_wave::wasm::{DisplayFuncResults, WasmFunc};
use wasmtime::component::wit_parser::ItemName;
use wasmtime::component::{Component, ComponentExportIndex};
use wasmtime::{Store, Val, ValType};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandIndices;

use crate::base::error::{Error, Result};

/// A call of one exported function, checked against its type.
#[derive(Clone)]
pub(crate) struct Call {
    /// The function as it was named (for a component, the whole call).
    pub(crate) function: String,
    args: Args,
}

#[derive(Clone)]
enum Args {
    Core { params: Vec<Val>, results: usize },
    Component { export: ComponentExportIndex, params: Vec<wasmtime::component::Val>, results: usize },
}

impl Call {
    /// The call of core function `name` of `module` with `args`, as
    /// wasmtime's `invoke_func` parses them: one argument per parameter
    /// (more are ignored), an i32 or i64 in decimal or `0x` hexadecimal, an
    /// f32 or f64 as Rust parses it.
    pub(crate) fn core(module: &wasmtime::Module, name: &str, args: &[String]) -> Result<Call> {
        let Some(wasmtime::ExternType::Func(ty)) = module.get_export(name) else {
            return Err(Error::NoSuchFunction(format!("no func export named `{name}` found")));
        };
        let mut args = args.iter();
        let params = ty
            .params()
            .map(|ty| {
                let arg = args.next().ok_or_else(|| Error::InvalidArguments(format!("not enough arguments for `{name}`")))?;
                core_argument(&ty, arg).map_err(Error::InvalidArguments)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Call { function: name.to_owned(), args: Args::Core { params, results: ty.results().len() } })
    }

    /// The call `invoke` (WAVE) of a function of `component`, as
    /// wasmtime's `invoke_component` parses it.
    pub(crate) fn component(component: &Component, invoke: &str) -> Result<Call> {
        let call = UntypedFuncCall::parse(invoke).map_err(|e| {
            Error::InvalidArguments(format!(
                "Failed to parse invoke '{invoke}': See https://docs.wasmtime.dev/cli-options.html#run for syntax: {e}"
            ))
        })?;
        let name = call
            .item_name()
            .map_err(|e| Error::NoSuchFunction(format!("parsing `{}` as a wit item name: {e}", call.name())))?;
        let (export, func) = find_component_func(component, &name)?;
        let types: Vec<_> = WasmFunc::params(&func).collect();
        let params = call
            .to_wasm_params(&types)
            .map_err(|e| Error::InvalidArguments(format!("while interpreting parameters in invoke \"{invoke}\": {e}")))?;
        let args = Args::Component { export, params, results: func.results().len() };
        Ok(Call { function: invoke.to_owned(), args })
    }

    pub(crate) fn takes_arguments(&self) -> bool {
        match &self.args {
            Args::Core { params, .. } => !params.is_empty(),
            Args::Component { params, .. } => !params.is_empty(),
        }
    }

    pub(crate) fn returns_values(&self) -> bool {
        match &self.args {
            Args::Core { results, .. } | Args::Component { results, .. } => *results > 0,
        }
    }
}

/// What a process runs of its program.
pub(crate) enum Entry {
    /// Its command: `_start` (if a core module has one), `wasi:cli/run`.
    Command,
    /// One function; the lines of what it returns are kept in the cell.
    Invoke(Call, Arc<OnceLock<Vec<String>>>),
}

impl Entry {
    /// This entry, for the same program's `component` on another engine:
    /// a function is looked up again there (the index of an export is bound
    /// to the component it was found in).
    pub(crate) fn for_component(self, component: &Component) -> Result<Entry> {
        match self {
            Entry::Invoke(call, kept) if matches!(call.args, Args::Component { .. }) => {
                Ok(Entry::Invoke(Call::component(component, &call.function)?, kept))
            }
            entry => Ok(entry),
        }
    }

    /// Runs this entry of a core module's instance, after `_initialize`.
    pub(crate) async fn run_module<T: Send + 'static>(
        self,
        store: &mut Store<T>,
        instance: wasmtime::Instance,
    ) -> wasmtime::Result<()> {
        if let Some(initialize) = instance.get_func(&mut *store, "_initialize") {
            initialize.typed::<(), ()>(&*store)?.call_async(&mut *store, ()).await?;
        }
        let (call, kept) = match self {
            Entry::Command => {
                return match instance.get_func(&mut *store, "_start") {
                    Some(start) => start.typed::<(), ()>(&*store)?.call_async(store, ()).await,
                    None => Ok(()),
                };
            }
            Entry::Invoke(call, kept) => (call, kept),
        };
        let Args::Core { params, results } = &call.args else {
            wasmtime::bail!("a call of a component function cannot run in a core module");
        };
        let name = &call.function;
        let func = instance
            .get_func(&mut *store, name)
            .ok_or_else(|| wasmtime::format_err!("no func export named `{name}` found"))?;
        let mut values = vec![Val::null_func_ref(); *results];
        let called = func.call_async(&mut *store, params, &mut values).await;
        called.map_err(|e| e.context(format!("failed to invoke `{name}`")))?;
        let _ = kept.set(values.iter().map(core_result).collect());
        Ok(())
    }

    /// Runs this entry of a component's instance; `command` is where its
    /// `wasi:cli/run` is, if it exports one (else why it is no command).
    pub(crate) async fn run_component<T: Send + 'static>(
        self,
        store: &mut Store<T>,
        instance: wasmtime::component::Instance,
        command: Result<CommandIndices, String>,
    ) -> wasmtime::Result<()> {
        let (call, kept) = match self {
            Entry::Command => {
                let command = command.map_err(wasmtime::Error::msg)?.load(&mut *store, &instance)?;
                return match command.wasi_cli_run().call_run(store).await? {
                    Ok(()) => Ok(()),
                    Err(()) => Err(I32Exit(1).into()),
                };
            }
            Entry::Invoke(call, kept) => (call, kept),
        };
        let Args::Component { export, params, results } = &call.args else {
            wasmtime::bail!("a call of a core function cannot run in a component");
        };
        let func = instance
            .get_func(&mut *store, export)
            .ok_or_else(|| wasmtime::format_err!("no func export named `{}` found", call.function))?;
        let mut values = vec![wasmtime::component::Val::Bool(false); *results];
        func.call_async(&mut *store, params, &mut values).await?;
        let _ = kept.set(vec![DisplayFuncResults(&values).to_string()]);
        Ok(())
    }
}

/// `arg` as a value of type `ty`; the error is wasmtime's message.
fn core_argument(ty: &ValType, arg: &str) -> Result<Val, String> {
    let hex = arg.strip_prefix("0x").or_else(|| arg.strip_prefix("0X"));
    match ty {
        ValType::I32 => hex
            .map_or_else(|| arg.parse(), |digits| i32::from_str_radix(digits, 16))
            .map(Val::I32)
            .map_err(|e| e.to_string()),
        ValType::I64 => hex
            .map_or_else(|| arg.parse(), |digits| i64::from_str_radix(digits, 16))
            .map(Val::I64)
            .map_err(|e| e.to_string()),
        ValType::F32 => arg.parse::<f32>().map(|f| Val::F32(f.to_bits())).map_err(|e| e.to_string()),
        ValType::F64 => arg.parse::<f64>().map(|f| Val::F64(f.to_bits())).map_err(|e| e.to_string()),
        other => Err(format!("unsupported argument type {other:?}")),
    }
}

/// A core function's result as wasmtime prints it.
fn core_result(value: &Val) -> String {
    let reference = |name: &str, is_null: bool| if is_null { format!("<null {name}>") } else { format!("<{name}>") };
    match value {
        Val::I32(i) => i.to_string(),
        Val::I64(i) => i.to_string(),
        Val::F32(f) => f32::from_bits(*f).to_string(),
        Val::F64(f) => f64::from_bits(*f).to_string(),
        Val::V128(v) => v.as_u128().to_string(),
        Val::ExternRef(r) => reference("externref", r.is_none()),
        Val::FuncRef(r) => reference("funcref", r.is_none()),
        Val::AnyRef(r) => reference("anyref", r.is_none()),
        Val::ExnRef(r) => reference("exnref", r.is_none()),
        Val::ContRef(r) => reference("contref", r.is_none()),
    }
}

/// The function `name` names in `component`, as wasmtime's
/// `search_component_funcs` finds it: at the top level, else (for a bare
/// name) in exactly one exported instance.
fn find_component_func(component: &Component, name: &ItemName) -> Result<(ComponentExportIndex, ComponentFunc)> {
    if let Some((ComponentItem::ComponentFunc(func), index)) = component.get_export(None, name) {
        return Ok((index, func));
    }
    let needle = name.to_string();
    let not_found = || Error::NoSuchFunction(format!("No exported func named `{needle}` in component."));
    if name.interface.is_some() || name.package.is_some() {
        return Err(not_found());
    }
    let engine = component.engine();
    let mut found: Vec<(ComponentExportIndex, ComponentFunc, String)> = component
        .component_type()
        .exports(engine)
        .filter_map(|(instance_name, item)| {
            let ComponentItem::ComponentInstance(instance) = item.ty else { return None };
            instance.exports(engine).find_map(|(leaf, item)| match item.ty {
                ComponentItem::ComponentFunc(func) if leaf == needle => {
                    let (_, instance_index) = component.get_export(None, instance_name)?;
                    let (_, index) = component.get_export(Some(&instance_index), leaf)?;
                    Some((index, func, instance_name.to_owned()))
                }
                _ => None,
            })
        })
        .collect();
    match found.len() {
        0 => Err(not_found()),
        1 => found.pop().map(|(index, func, _)| (index, func)).ok_or_else(not_found),
        _ => {
            let candidates: Vec<String> = found
                .iter()
                .map(|(_, _, instance_name)| match instance_name.parse::<ItemName>() {
                    // As an item name, so the package's version stands where wasmtime puts it.
                    Ok(mut candidate) => {
                        candidate.interface = Some(std::mem::replace(&mut candidate.name, needle.clone()));
                        format!("`{candidate}`")
                    }
                    Err(_) => format!("`{instance_name}.{needle}`"),
                })
                .collect();
            Err(Error::NoSuchFunction(format!(
                "Multiple instances contained funcs named `{needle}`, retry with a more specific name: {}",
                candidates.join(", ")
            )))
        }
    }
}

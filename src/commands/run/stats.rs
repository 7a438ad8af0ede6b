//! `wmp run --stats`: the table of every process the run had, with what
//! each used, printed on stderr when the main process has ended.

use std::time::Duration;

use wmp_host::{ProcessInfo, Runtime};

/// Most ended processes whose records the runtime keeps for the table
/// (a few hundred bytes each); past it, the oldest are left out.
pub const KEPT_RECORDS: usize = 100_000;

/// The table of `runtime`'s processes: those that ended (as many as it
/// kept) and any still running, in pid order.
pub fn table(runtime: &Runtime) -> String {
    let mut processes = runtime.ended_processes();
    let left_out = processes.len() >= KEPT_RECORDS;
    processes.extend(runtime.process_tree());
    processes.sort_by_key(|process| process.pid);
    let mut table = render(&processes);
    if left_out {
        table.push_str(&format!("(the records of the first processes to end are left out: {KEPT_RECORDS} are kept)\n"));
    }
    table
}

/// The columns: the memory, table and host-memory peaks, and the bytes
/// sent and received over pipes and queues.
const HEADER: [&str; 11] =
    ["PID", "PARENT", "NAME", "EXIT", "CPU", "FUEL", "MEMORY", "TABLES", "HOST-MEMORY", "IPC-SENT", "IPC-RECEIVED"];

/// One line per process under a header, columns aligned (the name to the
/// left, numbers to the right).
fn render(processes: &[ProcessInfo]) -> String {
    let rows: Vec<[String; 11]> = processes.iter().map(row).collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|column| rows.iter().map(|row| row[column].len()).chain([HEADER[column].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: [&str; 11]| {
        let cells = cells.iter().enumerate().map(|(column, cell)| match column {
            2 => format!("{cell:<width$}", width = widths[column]),
            _ => format!("{cell:>width$}", width = widths[column]),
        });
        format!("{}\n", cells.collect::<Vec<_>>().join("  ").trim_end())
    };
    let mut table = line(HEADER);
    for row in &rows {
        table.push_str(&line(row.each_ref().map(String::as_str)));
    }
    table
}

fn row(process: &ProcessInfo) -> [String; 11] {
    let used = &process.metrics;
    [
        process.pid.to_string(),
        process.parent_pid.map_or("-".into(), |pid| pid.to_string()),
        process.name.clone(),
        process.exit_reason.as_ref().map_or("running".into(), |reason| reason.exitcode().to_string()),
        duration(used.cpu_time),
        used.fuel_consumed.map_or("-".into(), |fuel| fuel.to_string()),
        bytes(used.memory_peak as u64),
        used.table_elements_peak.to_string(),
        bytes(used.host_memory_peak as u64),
        bytes(used.ipc_bytes_sent),
        bytes(used.ipc_bytes_received),
    ]
}

/// `812us`, `3.4ms`, `2.31s`.
fn duration(time: Duration) -> String {
    match time.as_micros() {
        0..1_000 => format!("{}us", time.as_micros()),
        1_000..1_000_000 => format!("{:.1}ms", time.as_secs_f64() * 1e3),
        _ => format!("{:.2}s", time.as_secs_f64()),
    }
}

/// `512B`, `64.0KiB`, `1.5MiB`, `2.0GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use wmp_host::{ExitReason, HostMemory, ProcessMetrics};

    fn process(pid: u32, parent: Option<u32>, name: &str, exit: Option<ExitReason>, metrics: ProcessMetrics) -> ProcessInfo {
        ProcessInfo {
            pid,
            parent_pid: parent,
            name: name.into(),
            identity: vec![],
            daemon: false,
            stopping: false,
            exit_reason: exit,
            host_memory: HostMemory::default(),
            metrics,
        }
    }

    #[test]
    fn the_table_has_a_header_and_one_aligned_row_per_process() {
        let main = ProcessMetrics {
            cpu_time: Duration::from_micros(2500),
            fuel_consumed: Some(1234),
            memory_peak: 3 << 20,
            ipc_bytes_sent: 100,
            ..ProcessMetrics::default()
        };
        let child = ProcessMetrics { cpu_time: Duration::from_micros(12), ipc_bytes_received: 100, ..ProcessMetrics::default() };
        let table = render(&[
            process(8120, None, "MainProcess", Some(ExitReason::Exit(3)), main),
            process(4194305, Some(8120), "Process-1", None, child),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let columns = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(columns(lines[1]), ["8120", "-", "MainProcess", "3", "2.5ms", "1234", "3.0MiB", "0", "0B", "100B", "0B"]);
        assert_eq!(columns(lines[2]), ["4194305", "8120", "Process-1", "running", "12us", "-", "0B", "0", "0B", "0B", "100B"]);
        assert_eq!(lines[1].len(), lines[2].len(), "aligned:\n{table}");
    }

    #[test]
    fn sizes_and_times_read_as_people_write_them() {
        assert_eq!([bytes(512), bytes(64 << 10), bytes(3 << 29), bytes(5 << 40)], ["512B", "64.0KiB", "1.5GiB", "5120.0GiB"]);
        assert_eq!([duration(Duration::from_micros(812)), duration(Duration::from_millis(2310))], ["812us", "2.31s"]);
    }
}

/**
 * CPU time of a process (and of its descendants, e.g. the embedded chain node the server starts),
 * read from /proc/<pid>/stat (proc(5): fields 14 utime and 15 stime, in clock ticks).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of one process, in seconds (all its threads, worker threads included). */
export function processCpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  return (Number(fields[14 - 3]) + Number(fields[15 - 3])) / ticksPerSecond;
}

/** The pids of a process's live descendants (proc(5): /proc/<pid>/task/<tid>/children). */
export function descendantPids(pid: number): number[] {
  const found: number[] = [];
  const pending = [pid];
  while (pending.length > 0 && found.length < 1000) {
    const current = pending.pop()!;
    let tasks: string[] = [];
    try { tasks = fs.readdirSync(`/proc/${current}/task`); } catch { continue; }
    for (const tid of tasks) {
      let children = '';
      try { children = fs.readFileSync(`/proc/${current}/task/${tid}/children`, 'utf8'); } catch { continue; }
      for (const child of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
        found.push(child);
        pending.push(child);
      }
    }
  }
  return found;
}

export interface CpuSample { server: number; descendants: Map<number, number> }

export function sampleCpu(pid: number): CpuSample {
  const descendants = new Map<number, number>();
  for (const child of descendantPids(pid)) {
    try { descendants.set(child, processCpuSeconds(child)); } catch { /* exited meanwhile */ }
  }
  return { server: processCpuSeconds(pid), descendants };
}

/** CPU seconds spent between two samples: the server process, and its descendants together. */
export function cpuSpent(before: CpuSample, after: CpuSample): { server: number; descendants: number } {
  let descendants = 0;
  for (const [child, seconds] of after.descendants) descendants += seconds - (before.descendants.get(child) ?? 0);
  return { server: after.server - before.server, descendants };
}

/**
 * The messages on comm target "osqr", typed from osqr_nb/ui/sidebar.py's docstring.
 *
 * The kernel is the only source of truth: the sidebar shows its last snapshot and
 * sends back what the person clicked, so a kernel restart or a second window can
 * never leave two versions of a run.
 */

export const TARGET = 'osqr';
export const PROTOCOL = 2;

export interface ITaskSnapshot {
  id: string;
  title: string;
  kind: string;
  status: string;
  shown: string;
  symbol: string;
  model: string | null;
  cost: number;
  cost_text: string;
  turns: number;
  progress: number;
  progress_text: string;
  progress_note: string;
  depends_on: string[];
  worker?: string | null; // "local", or the Dask worker holding the task's files
  model_text?: string; // the model, and the worker when not local
}

export interface ICheckpointSnapshot {
  id: string;
  task: string;
  title: string;
  question: string;
  options: string[];
  recommended: string | null;
  parked: boolean;
  cell: boolean;
}

export interface IRunSnapshot {
  id: string;
  status: string;
  done: boolean;
  paused: boolean;
  request: string;
  model: string;
  cost: number;
  cost_text: string;
  counts: Record<string, number>;
  count_text: string;
  tasks: ITaskSnapshot[];
  checkpoints: ICheckpointSnapshot[];
}

export interface ISnapshotMessage {
  type: 'snapshot';
  runs: IRunSnapshot[];
  checkpoint_cells?: boolean;
}

/**
 * What changed since the last message: a new run whole; a known run as its fields,
 * with only the tasks that changed, and `task_order` when tasks came or went.
 */
export interface IRunChanges extends Partial<IRunSnapshot> {
  id: string;
  task_order?: string[];
}

export interface IChangesMessage {
  type: 'changes';
  order: string[];
  runs: IRunChanges[];
  checkpoint_cells?: boolean;
}

export interface IErrorMessage {
  type: 'error';
  message: string;
}

export type KernelToSidebar = ISnapshotMessage | IChangesMessage | IErrorMessage;

export type SidebarToKernel =
  | { action: 'hello'; extension: string; protocol: number }
  | { action: 'refresh' }
  | { action: 'resolve'; run: string; checkpoint: string; answer: string }
  | { action: 'pause' | 'resume'; run: string };

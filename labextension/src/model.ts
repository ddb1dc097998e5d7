/**
 * What the sidebar knows: one channel per kernel connection of an open notebook,
 * each holding the kernel's last snapshot of its runs.
 *
 * The comm target is registered on every notebook's kernel as soon as the kernel
 * exists (kernelChanged, and once for a kernel already there), so the kernel's
 * comm, opened by `%load_ext osqr_nb`, is never refused. A window that arrives
 * later (a page reload, a second window) opens its own comm when the kernel
 * already has osqr comms. `comm_open` reaches every window and every connection
 * to the kernel: checkpoints are announced once per window whatever the number
 * of comms, and each click goes out on one comm only.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage, Session } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import {
  ICheckpointSnapshot,
  IChangesMessage,
  IRunSnapshot,
  ITaskSnapshot,
  KernelToSidebar,
  PROTOCOL,
  SidebarToKernel,
  TARGET
} from './protocol';

export const EXTENSION_VERSION = '0.1.0';

/** A checkpoint seen for the first time in this window, and where it came from. */
export interface ICheckpointAppeared {
  channel: KernelChannel;
  run: IRunSnapshot;
  checkpoint: ICheckpointSnapshot;
  cells: boolean;
}

/** The comms to one kernel connection and the last snapshot they brought. */
export class KernelChannel {
  constructor(
    readonly kernel: Kernel.IKernelConnection,
    private readonly _changed: (channel: KernelChannel) => void
  ) {}

  runs: IRunSnapshot[] = [];
  checkpointCells = true;
  error = '';
  /** Clicks sent, not yet reflected in a snapshot: their buttons stay disabled. */
  pending = new Set<string>();

  get connected(): boolean {
    return this._comms.length > 0;
  }

  attach(comm: Kernel.IComm): void {
    if (this._comms.some(c => c.commId === comm.commId)) {
      return;
    }
    this._comms.push(comm);
    comm.onMsg = msg => this._receive(msg.content.data as unknown as KernelToSidebar);
    comm.onClose = () => this._detach(comm);
    this._send(comm, {
      action: 'hello',
      extension: EXTENSION_VERSION,
      protocol: PROTOCOL
    });
    this._changed(this);
  }

  /** After a restart the kernel has forgotten every comm and run. */
  reset(): void {
    this._comms = [];
    this.runs = [];
    this.pending.clear();
    this.error = '';
    this._changed(this);
  }

  send(message: SidebarToKernel): boolean {
    const comm = this._comms[0];
    if (!comm) {
      this.error = 'This kernel has not loaded osqr: run %load_ext osqr_nb in the notebook.';
      this._changed(this);
      return false;
    }
    return this._send(comm, message);
  }

  close(): void {
    for (const comm of this._comms) {
      if (!comm.isDisposed) {
        comm.close();
      }
    }
    this._comms = [];
  }

  private _send(comm: Kernel.IComm, message: SidebarToKernel): boolean {
    if (comm.isDisposed || this.kernel.isDisposed) {
      return false;
    }
    comm.send(message as any);
    return true;
  }

  private _receive(message: KernelToSidebar): void {
    if (message.type === 'snapshot' || message.type === 'changes') {
      this.runs = message.type === 'snapshot' ? message.runs : applyChanges(this.runs, message);
      this.checkpointCells = message.checkpoint_cells !== false;
      this.error = '';
      this.pending.clear();
    } else if (message.type === 'error') {
      this.error = message.message;
      this.pending.clear();
    }
    this._changed(this);
  }

  private _detach(comm: Kernel.IComm): void {
    this._comms = this._comms.filter(c => c !== comm);
    this._changed(this);
  }

  private _comms: Kernel.IComm[] = [];
}

/** The runs after a "changes" message: the kernel sends what changed, not every task again. */
export function applyChanges(runs: IRunSnapshot[], message: IChangesMessage): IRunSnapshot[] {
  const known = new Map(runs.map(run => [run.id, run]));
  for (const patch of message.runs) {
    const before = known.get(patch.id);
    if (!before) {
      known.set(patch.id, patch as IRunSnapshot);
      continue;
    }
    const tasks = new Map(before.tasks.map(task => [task.id, task]));
    for (const task of patch.tasks ?? []) {
      tasks.set(task.id, task);
    }
    const order = patch.task_order ?? before.tasks.map(task => task.id);
    const { task_order: _order, ...fields } = patch;
    known.set(patch.id, {
      ...before,
      ...fields,
      tasks: order.map(id => tasks.get(id)).filter((t): t is ITaskSnapshot => t !== undefined)
    });
  }
  return message.order
    .map(id => known.get(id))
    .filter((run): run is IRunSnapshot => run !== undefined);
}

/** Every channel of this window, and which one the sidebar shows. */
export class AgentsModel {
  get stateChanged(): ISignal<AgentsModel, void> {
    return this._stateChanged;
  }

  get checkpointAppeared(): ISignal<AgentsModel, ICheckpointAppeared> {
    return this._checkpointAppeared;
  }

  /** The channel of the current notebook's kernel, if it has one. */
  get current(): KernelChannel | null {
    const kernel = this._session?.session?.kernel;
    return kernel ? this._channels.get(kernel) ?? null : null;
  }

  get session(): ISessionContext | null {
    return this._session;
  }

  /** The checkpoint the sidebar was asked to show (a notification's button). */
  focused = '';

  setCurrent(session: ISessionContext | null): void {
    this._session = session;
    this._stateChanged.emit();
  }

  focus(checkpointId: string): void {
    this.focused = checkpointId;
    this._stateChanged.emit();
  }

  /** Follow a notebook's kernel for as long as the notebook is open. */
  watch(session: ISessionContext): void {
    session.kernelChanged.connect(this._onKernelChanged, this);
    if (session.session?.kernel) {
      this._connect(session.session.kernel);
    }
  }

  unwatch(session: ISessionContext): void {
    session.kernelChanged.disconnect(this._onKernelChanged, this);
    if (session.session?.kernel) {
      this._disconnect(session.session.kernel);
    }
    if (this._session === session) {
      this.setCurrent(null);
    }
  }

  resolve(run: string, checkpoint: string, answer: string): void {
    const channel = this.current;
    if (channel?.send({ action: 'resolve', run, checkpoint, answer })) {
      channel.pending.add(checkpoint);
      this._stateChanged.emit();
    }
  }

  /** Pause (or resume) every unfinished run of the current kernel; how many were asked. */
  setPaused(paused: boolean): number {
    const channel = this.current;
    if (!channel) {
      return 0;
    }
    const runs = channel.runs.filter(r => !r.done && r.paused !== paused);
    for (const run of runs) {
      channel.send({ action: paused ? 'pause' : 'resume', run: run.id });
    }
    return runs.length;
  }

  /** Close this window's comms (the kernel stops sending to them). */
  dispose(): void {
    for (const channel of this._channels.values()) {
      channel.close();
    }
  }

  private _onKernelChanged(
    _session: ISessionContext,
    change: Session.ISessionConnection.IKernelChangedArgs
  ): void {
    if (change.oldValue) {
      this._disconnect(change.oldValue);
    }
    if (change.newValue) {
      this._connect(change.newValue);
    }
    this._stateChanged.emit();
  }

  private _connect(kernel: Kernel.IKernelConnection): void {
    if (this._channels.has(kernel)) {
      return;
    }
    const channel = new KernelChannel(kernel, c => this._onChannelChanged(c));
    this._channels.set(kernel, channel);
    const target = (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg) => {
      const protocol = (msg.content.data as any)?.protocol;
      if (protocol !== undefined && protocol !== PROTOCOL) {
        channel.error = `The kernel speaks sidebar protocol ${protocol}, this sidebar ${PROTOCOL}: reinstall osqr-nb.`;
      }
      channel.attach(comm);
    };
    this._targets.set(kernel, target);
    kernel.registerCommTarget(TARGET, target);
    kernel.statusChanged.connect(this._onStatus, this);
    kernel.connectionStatusChanged.connect(this._onConnection, this);
    void this._join(channel);
  }

  private _disconnect(kernel: Kernel.IKernelConnection): void {
    const target = this._targets.get(kernel);
    if (target && !kernel.isDisposed) {
      kernel.removeCommTarget(TARGET, target);
    }
    kernel.statusChanged.disconnect(this._onStatus, this);
    kernel.connectionStatusChanged.disconnect(this._onConnection, this);
    this._targets.delete(kernel);
    this._channels.delete(kernel);
  }

  private _onStatus(kernel: Kernel.IKernelConnection, status: Kernel.Status): void {
    const channel = this._channels.get(kernel);
    // A restart from Lab says 'restarting'; one through the REST API only 'starting' (a new process).
    if (channel && ['restarting', 'autorestarting', 'starting', 'dead'].includes(status)) {
      channel.reset();
    }
  }

  private _onConnection(kernel: Kernel.IKernelConnection, status: Kernel.ConnectionStatus): void {
    const channel = this._channels.get(kernel);
    if (channel && status === 'connected') {
      void this._join(channel);
    }
  }

  /** A kernel that already has osqr comms (it loaded the extension before this window came) gets one from us too. */
  private async _join(channel: KernelChannel): Promise<void> {
    const kernel = channel.kernel;
    if (channel.connected || kernel.isDisposed || kernel.connectionStatus !== 'connected') {
      return;
    }
    try {
      const reply = await kernel.requestCommInfo({ target_name: TARGET });
      const comms = reply.content.status === 'ok' ? reply.content.comms : {};
      if (channel.connected || kernel.isDisposed || Object.keys(comms).length === 0) {
        return;
      }
      const comm = kernel.createComm(TARGET);
      channel.attach(comm);
      comm.open({ protocol: PROTOCOL });
    } catch (reason) {
      console.warn('osqr: could not reach the kernel for its runs', reason);
    }
  }

  private _onChannelChanged(channel: KernelChannel): void {
    for (const run of channel.runs) {
      for (const checkpoint of run.checkpoints) {
        if (!this._announced.has(checkpoint.id)) {
          this._announced.add(checkpoint.id);
          this._checkpointAppeared.emit({ channel, run, checkpoint, cells: channel.checkpointCells });
        }
      }
    }
    this._stateChanged.emit();
  }

  private _channels = new Map<Kernel.IKernelConnection, KernelChannel>();
  private _targets = new Map<
    Kernel.IKernelConnection,
    (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg) => void
  >();
  private _announced = new Set<string>();
  private _session: ISessionContext | null = null;
  private _stateChanged = new Signal<AgentsModel, void>(this);
  private _checkpointAppeared = new Signal<AgentsModel, ICheckpointAppeared>(this);
}

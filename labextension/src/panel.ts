/**
 * The OSQR Agents sidebar: the runs of the current notebook's kernel, their
 * tasks, and one button per option of each pending checkpoint.
 *
 * It renders the kernel's snapshot as it is (no state of its own beyond which
 * clicks are in flight), so what it shows is what the cell's card shows.
 */

import { Widget } from '@lumino/widgets';

import { agentsIcon } from './icon';
import { AgentsModel, KernelChannel } from './model';
import { ICheckpointSnapshot, IRunSnapshot, ITaskSnapshot } from './protocol';

export const PANEL_ID = 'osqr-agents';
export const CAPTION = 'OSQR Agents';

const LEGEND = '● running · ○ waiting · ⏸ paused · ✓ complete · ⚠ needs input · ✗ failed';

export class AgentsPanel extends Widget {
  constructor(readonly model: AgentsModel) {
    super();
    this.id = PANEL_ID;
    this.title.caption = CAPTION;
    this.title.icon = agentsIcon;
    this.addClass('osqr-sidebar');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', CAPTION);
    model.stateChanged.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.stateChanged.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const channel = this.model.current;
    const key = JSON.stringify([
      channel?.runs,
      channel?.error,
      channel?.connected,
      [...(channel?.pending ?? [])],
      this.model.focused,
      this.model.session?.name
    ]);
    if (key === this._shown) {
      return;
    }
    this._shown = key;
    const body = document.createElement('div');
    body.className = 'osqr-sidebar-body';
    body.appendChild(el('h2', 'osqr-sidebar-heading', CAPTION));
    for (const part of this._content(channel)) {
      body.appendChild(part);
    }
    this.node.replaceChildren(body);
    const focused = this.model.focused
      ? this.node.querySelector(`[data-checkpoint="${CSS.escape(this.model.focused)}"]`)
      : null;
    focused?.scrollIntoView({ block: 'nearest' });
  }

  private _content(channel: KernelChannel | null): HTMLElement[] {
    const session = this.model.session;
    if (!session) {
      return [el('p', 'osqr-sidebar-note', 'Open a notebook to see the agents of its kernel.')];
    }
    const parts: HTMLElement[] = [el('p', 'osqr-sidebar-note', `Kernel of ${session.name || session.path}`)];
    if (channel?.error) {
      parts.push(el('p', 'osqr-sidebar-error', channel.error));
    }
    if (!channel?.connected) {
      parts.push(el('p', 'osqr-sidebar-note', 'No osqr here yet: run %load_ext osqr_nb in this notebook.'));
      return parts;
    }
    if (channel.runs.length === 0) {
      parts.push(el('p', 'osqr-sidebar-note', 'No runs yet: start one with a %%osqr cell.'));
    }
    for (const run of channel.runs) {
      parts.push(this._run(channel, run));
    }
    return parts;
  }

  private _run(channel: KernelChannel, run: IRunSnapshot): HTMLElement {
    const section = el('section', 'osqr-sidebar-run');
    section.dataset.run = run.id;
    section.dataset.status = run.status;
    const head = el('div', 'osqr-sidebar-run-head', `${run.id} · ${run.status} · ${run.cost_text}`);
    head.title = run.request;
    section.appendChild(head);
    section.appendChild(el('div', 'osqr-sidebar-request', run.request));
    section.appendChild(el('div', 'osqr-sidebar-counts', run.count_text));
    for (const checkpoint of run.checkpoints) {
      section.appendChild(this._checkpoint(channel, run, checkpoint));
    }
    const list = el('ul', 'osqr-sidebar-tasks');
    for (const task of run.tasks) {
      list.appendChild(taskRow(task));
    }
    section.appendChild(list);
    section.appendChild(el('div', 'osqr-legend', LEGEND));
    if (!run.done) {
      const label = run.paused ? 'Resume All' : 'Pause All';
      const toggle = button(label, 'osqr-sidebar-pause');
      toggle.onclick = () =>
        channel.send({ action: run.paused ? 'resume' : 'pause', run: run.id });
      section.appendChild(toggle);
    }
    return section;
  }

  private _checkpoint(
    channel: KernelChannel,
    run: IRunSnapshot,
    checkpoint: ICheckpointSnapshot
  ): HTMLElement {
    const card = el('div', 'osqr-sidebar-checkpoint');
    card.dataset.checkpoint = checkpoint.id;
    if (checkpoint.id === this.model.focused) {
      card.classList.add('osqr-mod-focused');
    }
    card.appendChild(el('div', 'osqr-sidebar-checkpoint-title', checkpoint.title));
    card.appendChild(el('div', 'osqr-sidebar-question', checkpoint.question));
    if (checkpoint.parked) {
      card.appendChild(el('div', 'osqr-sidebar-note', 'Parked: this agent waits, the others go on.'));
    }
    const options = el('div', 'osqr-sidebar-options');
    const sent = channel.pending.has(checkpoint.id);
    for (const label of checkpoint.options) {
      const option = button(label, 'osqr-sidebar-option');
      if (label === checkpoint.recommended) {
        option.classList.add('osqr-mod-recommended');
        option.title = 'The agent proposes this';
      }
      option.disabled = sent;
      option.onclick = () => this.model.resolve(run.id, checkpoint.id, label);
      options.appendChild(option);
    }
    card.appendChild(options);
    return card;
  }

  private _shown = '';
}

function taskRow(task: ITaskSnapshot): HTMLElement {
  const row = el('li', 'osqr-task-row');
  row.dataset.task = task.id;
  row.dataset.status = task.shown;
  row.appendChild(el('span', `osqr-symbol osqr-status-${task.shown}`, task.symbol));
  const title = el('span', 'osqr-task-title', task.title);
  title.title = task.title;
  row.appendChild(title);
  const model = el('span', 'osqr-task-model', task.model_text ?? task.model ?? '');
  model.title = task.worker ?? '';
  row.appendChild(model);
  const bar = el('span', 'osqr-progress');
  bar.title = task.progress_note;
  const fill = el('span', `osqr-progress-fill osqr-status-${task.shown}`);
  fill.style.width = `${Math.round(task.progress * 100)}%`;
  bar.appendChild(fill);
  row.appendChild(bar);
  row.appendChild(el('span', 'osqr-task-percent', task.progress_text));
  row.appendChild(el('span', 'osqr-task-cost', task.cost_text));
  return row;
}

function el(tag: string, className: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function button(label: string, className: string): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = `osqr-button ${className}`;
  node.textContent = label;
  return node;
}

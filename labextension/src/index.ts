/**
 * osqr-nb's JupyterLab extension: the OSQR Agents sidebar, a notification and a
 * cell for each checkpoint, and palette commands to show the panel and pause or
 * resume every run of the current notebook's kernel.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { agentsIcon } from './icon';
import { AgentsModel, ICheckpointAppeared } from './model';
import { AgentsPanel, CAPTION } from './panel';

namespace CommandIDs {
  export const show = 'osqr-nb:show-agents';
  export const pauseAll = 'osqr-nb:pause-all';
  export const resumeAll = 'osqr-nb:resume-all';
}

const CATEGORY = 'OSQR';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'osqr-nb:plugin',
  description: 'The OSQR Agents sidebar: live agents and pending checkpoints of the notebook’s kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate
};

function activate(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null
): void {
  const model = new AgentsModel();
  const panel = new AgentsPanel(model);
  app.shell.add(panel, 'left', { rank: 900 });
  restorer?.add(panel, panel.id);

  const follow = (notebook: NotebookPanel) => {
    model.watch(notebook.sessionContext);
    notebook.disposed.connect(() => model.unwatch(notebook.sessionContext));
  };
  tracker.forEach(follow);
  tracker.widgetAdded.connect((_, notebook) => follow(notebook));
  model.setCurrent(tracker.currentWidget?.sessionContext ?? null);
  tracker.currentChanged.connect((_, notebook) =>
    model.setCurrent(notebook?.sessionContext ?? null)
  );
  model.checkpointAppeared.connect((_, appeared) => {
    announce(app, model, panel, appeared);
    if (appeared.cells && !appeared.checkpoint.cell) {
      void insertCheckpointCell(tracker, appeared);
    }
  });
  window.addEventListener('beforeunload', () => model.dispose());

  addCommands(app, model, panel);
  for (const command of Object.values(CommandIDs)) {
    palette?.addItem({ command, category: CATEGORY });
  }
}

function addCommands(app: JupyterFrontEnd, model: AgentsModel, panel: AgentsPanel): void {
  app.commands.addCommand(CommandIDs.show, {
    label: 'Show the OSQR Agents panel',
    caption: CAPTION,
    icon: agentsIcon,
    execute: () => app.shell.activateById(panel.id)
  });
  const running = () => (model.current?.runs ?? []).filter(r => !r.done);
  app.commands.addCommand(CommandIDs.pauseAll, {
    label: 'Pause all osqr runs of this kernel',
    isEnabled: () => running().some(r => !r.paused),
    execute: () => model.setPaused(true)
  });
  app.commands.addCommand(CommandIDs.resumeAll, {
    label: 'Resume all osqr runs of this kernel',
    isEnabled: () => running().some(r => r.paused),
    execute: () => model.setPaused(false)
  });
}

/** A toast for a new checkpoint; its button opens the sidebar on it. */
function announce(
  app: JupyterFrontEnd,
  model: AgentsModel,
  panel: AgentsPanel,
  { checkpoint }: ICheckpointAppeared
): void {
  Notification.warning(`${checkpoint.title}: ${checkpoint.question}`, {
    autoClose: 10000,
    actions: [
      {
        label: 'Answer in OSQR Agents',
        caption: 'Open the OSQR Agents sidebar on this checkpoint',
        callback: () => {
          model.focus(checkpoint.id);
          app.shell.activateById(panel.id);
        }
      }
    ]
  });
}

/**
 * `%osqr checkpoint <id>` below the cell the person is working in, run at once,
 * so the card stands where they are (the kernel marks it shown: one cell per
 * checkpoint, however many windows look at the kernel).
 */
async function insertCheckpointCell(
  tracker: INotebookTracker,
  { channel, checkpoint }: ICheckpointAppeared
): Promise<void> {
  const notebook = pickNotebook(tracker, channel.kernel.id);
  const model = notebook?.content.model;
  if (!notebook || !model) {
    return;
  }
  const index = Math.max(notebook.content.activeCellIndex, 0) + 1;
  model.sharedModel.insertCell(index, {
    cell_type: 'code',
    source: `%osqr checkpoint ${checkpoint.id}`,
    metadata: { osqr: { checkpoint: checkpoint.id } }
  });
  const cell = notebook.content.widgets[index];
  if (cell instanceof CodeCell) {
    await CodeCell.execute(cell, notebook.sessionContext);
  }
}

/** The notebook on that kernel the person looks at (the current one if it is), else the first. */
function pickNotebook(tracker: INotebookTracker, kernelId: string): NotebookPanel | null {
  const current = tracker.currentWidget;
  if (current?.sessionContext.session?.kernel?.id === kernelId) {
    return current;
  }
  return tracker.find(p => p.sessionContext.session?.kernel?.id === kernelId) ?? null;
}

export default plugin;

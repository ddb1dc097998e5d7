import { LabIcon } from '@jupyterlab/ui-components';

/** Three agents joined to one hub: the tab of the OSQR Agents sidebar. */
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="12" cy="5" r="3"/>
    <circle cx="5" cy="18" r="3"/>
    <circle cx="19" cy="18" r="3"/>
    <path d="M11 8h2v4.2l5 3.3-1.1 1.7-4.9-3.2-4.9 3.2-1.1-1.7 5-3.3z"/>
  </g>
</svg>`;

export const agentsIcon = new LabIcon({ name: 'osqr-nb:agents', svgstr });

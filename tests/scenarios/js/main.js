// The JS renderings of the scenarios of tests/scenarios, as one component: `wmp run js-scenarios.wasm NAME` runs
// NAME.js's main, as `python3 NAME.py` runs the reference script. A child runs its scenario's target; the targets
// of all scenarios are registered, so their names are unique across them.
import { run as runProcess } from '../../../examples/js/multiprocessing.js';
import lang_lifecycle from './lang_lifecycle.js';
import lang_listener from './lang_listener.js';
import lang_pipes from './lang_pipes.js';
import lang_queues from './lang_queues.js';
import lang_wait from './lang_wait.js';

const scenarios = { lang_lifecycle, lang_listener, lang_pipes, lang_queues, lang_wait };

function main([name]) {
  const scenario = scenarios[name];
  if (scenario === undefined) throw new Error(`no scenario ${name}; there are ${Object.keys(scenarios).join(', ')}`);
  scenario.main();
}

const targets = Object.assign({}, ...Object.values(scenarios).map((scenario) => scenario.targets));

export const run = { run: () => runProcess(main, targets) };

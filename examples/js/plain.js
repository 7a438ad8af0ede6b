// A plain WASI program in JavaScript (no wmp imports): `plain ARGS...`
// prints its arguments one a line, `plain env NAME` prints a variable (or
// <unset>), `plain exit N` exits with code 0 if N is 0 and 1 otherwise (a
// WASI 0.2 command has only ok and err).
import { getArguments, getEnvironment } from 'wasi:cli/environment@0.2.12';
import { exit } from 'wasi:cli/exit@0.2.12';

export const run = {
  run() {
    const argv = getArguments();
    if (argv.length === 3 && argv[1] === 'env') {
      const found = getEnvironment().find(([name]) => name === argv[2]);
      console.log(found ? found[1] : '<unset>');
    } else if (argv.length === 3 && argv[1] === 'exit') {
      exit(Number(argv[2]) === 0 ? { tag: 'ok' } : { tag: 'err' });
    } else {
      for (const arg of argv) console.log(arg);
    }
  },
};

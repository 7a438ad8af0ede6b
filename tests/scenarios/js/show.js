// What the JS renderings of the scenarios print with, as the Python scripts print: `show(...parts)` is
// `print(*parts, flush=True)` in one write, each part as Python's str() shows it (null as None, booleans as
// True/False, a Uint8Array as bytes b'..', an array as a list of reprs, a Process as its repr), and `failure(err)`
// is f"{type(err).__name__}: {err}".
import { getStdout } from 'wasi:cli/stdout@0.2.12';
import { isBytes } from '../../../examples/js/multiprocessing.js';

const encoder = new TextEncoder();

// The UTF-8 bytes of `text` (Python's `"text".encode()`).
export function bytes(text) {
  return encoder.encode(text);
}

// Python's ordering of bytes, for sort().
export function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

// Python's repr of a str (as code points) or of bytes (as byte values): single quotes unless the text has one
// and no double quote; bytes escape everything outside printable ASCII.
function quoted(codes, isBytes) {
  const chars = codes.map((c) => String.fromCodePoint(c));
  const quote = chars.includes("'") && !chars.includes('"') ? '"' : "'";
  const named = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\', [quote]: `\\${quote}` };
  const body = chars.map((ch, i) => {
    const code = codes[i];
    if (ch in named) return named[ch];
    if (code < 0x20 || code === 0x7f || (isBytes && code > 0x7f)) return `\\x${code.toString(16).padStart(2, '0')}`;
    return ch;
  });
  return `${isBytes ? 'b' : ''}${quote}${body.join('')}${quote}`;
}

// Python's repr() of a value.
export function repr(value) {
  if (typeof value === 'string') return quoted(Array.from(value, (ch) => ch.codePointAt(0)), false);
  if (isBytes(value)) return quoted(Array.from(value), true);
  if (Array.isArray(value)) return `[${value.map(repr).join(', ')}]`;
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  return String(value);
}

// Python's str() of a value.
export function str(value) {
  return typeof value === 'string' ? value : repr(value);
}

// print(*parts, flush=True), in one write.
export function show(...parts) {
  getStdout().blockingWriteAndFlush(encoder.encode(`${parts.map(str).join(' ')}\n`));
}

// f"{type(err).__name__}: {err}"
export function failure(err) {
  return `${err.name}: ${err.message}`;
}

// Prints what `action` returns, or its error as `Type: message`, as the scripts' attempt().
export function attempt(what, action) {
  try {
    show(what, action());
  } catch (err) {
    show(what, failure(err));
  }
}

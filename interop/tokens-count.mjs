// tokens-count.mjs: count the cl100k_base tokens of every file under DIR with
// the official tokenizer (npm tiktoken, openai/tiktoken's Rust core as WASM),
// for scripts/bench-tokens.sh.
//
//   node interop/tokens-count.mjs [--jobs N] [--out FILE] DIR
//
// Each file is read whole, decoded with Buffer.toString('utf8') (one U+FFFD
// per maximal invalid subsequence, reembed's rule) and counted with
// encode_ordinary. --jobs N runs N worker threads (default: the number of
// CPUs), each with its own encoder; files are handed out in batches as
// workers finish. --out writes "path<TAB>tokens<TAB>bytes" per file, sorted
// by path bytes. The summary goes to stdout as one key=value line like
// scripts/tokcount's; seconds run from the first read to the last count,
// after every worker has loaded its encoder.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);

if (!isMainThread) {
  const { get_encoding } = require('tiktoken');
  const enc = get_encoding('cl100k_base');
  parentPort.on('message', (batch) => {
    if (batch === null) {
      enc.free();
      process.exit(0);
    }
    const out = [];
    for (const file of batch) {
      const buf = fs.readFileSync(file);
      out.push([file, enc.encode_ordinary(buf.toString('utf8')).length, buf.length]);
    }
    parentPort.postMessage(out);
  });
  parentPort.postMessage('ready');
} else {
  const args = process.argv.slice(2);
  let jobs = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  let outFile = '';
  const rest = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--jobs') jobs = Number(args[++i]);
    else if (args[i] === '--out') outFile = args[++i];
    else rest.push(args[i]);
  }
  if (rest.length !== 1 || !(jobs >= 1)) {
    console.error('usage: node tokens-count.mjs [--jobs N] [--out FILE] DIR');
    process.exit(2);
  }
  const root = rest[0];
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };

  const workers = [];
  await Promise.all(Array.from({ length: jobs }, () => new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: null });
    w.once('message', () => resolve());
    w.once('error', reject);
    workers.push(w);
  })));

  const start = process.hrtime.bigint();
  walk(root);
  const BATCH = 16;
  let next = 0;
  const results = [];
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
    const feed = () => {
      if (next >= files.length) {
        w.postMessage(null);
        resolve();
        return;
      }
      w.postMessage(files.slice(next, next + BATCH));
      next += BATCH;
    };
    w.on('message', (out) => {
      for (const r of out) results.push(r);
      feed();
    });
    w.on('error', reject);
    feed();
  })));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;

  let bytes = 0;
  let tokens = 0;
  for (const [, t, b] of results) {
    tokens += t;
    bytes += b;
  }
  if (outFile) {
    const rows = results.map(([f, t, b]) => [path.relative(root, f).split(path.sep).join('/'), t, b]);
    rows.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
    fs.writeFileSync(outFile, ['path\ttokens\tbytes', ...rows.map((r) => r.join('\t'))].join('\n') + '\n');
  }
  // Peak RSS of this process (the main thread and its worker threads).
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const hwm = /VmHWM:\s+(\d+)/.exec(status);
  console.log(`impl=npm-tiktoken jobs=${jobs} files=${results.length} bytes=${bytes} tokens=${tokens} ` +
    `seconds=${seconds.toFixed(3)} mb_per_s=${(bytes / seconds / 1e6).toFixed(2)} peak_rss_kib=${hwm ? hwm[1] : 0}`);
}

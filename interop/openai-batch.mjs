// openai-batch.mjs: the official openai npm SDK (v6) uploads a batch input
// file (files.create, purpose "batch"), creates an embeddings batch
// (batches.create), polls it (batches.retrieve) until it ends, and downloads
// its output (files.content), against an OpenAI-compatible server such as
// `reembed simulate`.
//
// Input (stdin, JSON): {"baseURL": "http://127.0.0.1:PORT/v1", "jsonl": "<file content>",
//                       "metadata": {"k": "v"}}
// The API key comes from OPENAI_API_KEY (never printed).
// Output (stdout, JSON): {"file": <file object>, "created": <batch>, "final": <batch>,
//                         "output": "<output file content>"}
// Used by embedder/interop_batch_test.go.
import OpenAI, { toFile } from 'openai';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const client = new OpenAI({
  apiKey: process.env.OPENAI_API_KEY || 'no-key',
  baseURL: req.baseURL,
  maxRetries: 0,
  timeout: 30_000,
});

const file = await client.files.create({
  file: await toFile(Buffer.from(req.jsonl, 'utf8'), 'requests.jsonl'),
  purpose: 'batch',
});
const created = await client.batches.create({
  input_file_id: file.id,
  endpoint: '/v1/embeddings',
  completion_window: '24h',
  metadata: req.metadata,
});
let final = created;
const terminal = new Set(['completed', 'failed', 'expired', 'cancelled']);
for (let i = 0; i < 600 && !terminal.has(final.status); i++) {
  await new Promise((r) => setTimeout(r, 50));
  final = await client.batches.retrieve(created.id);
}
let output = '';
if (final.output_file_id) {
  const resp = await client.files.content(final.output_file_id);
  output = await resp.text();
}
process.stdout.write(JSON.stringify({ file, created, final, output }));

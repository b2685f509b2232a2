// openai-sdk.mjs: the official openai npm SDK (v6) calls an OpenAI-compatible
// embeddings server, such as `reembed simulate`, and prints what it got.
//
// Input (stdin, JSON): {"baseURL": "http://127.0.0.1:PORT/v1", "model": "...",
//                       "dimensions": 64, "texts": ["...", ...]}
// The API key comes from the environment variable OPENAI_API_KEY (never printed).
// Output (stdout, JSON): for each mode, {"vectors": [[...]], "usage": {...}}:
//   float   - encoding_format "float": the server's JSON numbers
//   base64  - encoding_format "base64": the raw strings, decoded here as
//             little-endian float32 (what OpenAI documents)
//   default - no encoding_format: the SDK asks for base64 and decodes itself
// Used by embedder/interop_test.go; run by hand with
//   echo '{"baseURL":"http://127.0.0.1:8080/v1","model":"text-embedding-3-small","texts":["hi"]}' | node interop/openai-sdk.mjs
import OpenAI from 'openai';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const client = new OpenAI({
  apiKey: process.env.OPENAI_API_KEY || 'no-key',
  baseURL: req.baseURL,
  maxRetries: 0,
  timeout: 30_000,
});

function decodeBase64(s) {
  const buf = Buffer.from(s, 'base64');
  const out = new Array(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(4 * i);
  return out;
}

const params = { model: req.model, input: req.texts };
if (req.dimensions) params.dimensions = req.dimensions;

const result = {};
for (const mode of ['float', 'base64', 'default']) {
  const p = { ...params };
  if (mode !== 'default') p.encoding_format = mode;
  const resp = await client.embeddings.create(p);
  const data = [...resp.data].sort((a, b) => a.index - b.index);
  result[mode] = {
    vectors: data.map((d) =>
      mode === 'base64' ? decodeBase64(d.embedding) : Array.from(d.embedding)),
    usage: resp.usage,
    model: resp.model,
  };
}
process.stdout.write(JSON.stringify(result));
